"""The crawler's rules of conduct: which addresses it may connect to, robots.txt, pacing.

In: a host name (or IP literal), robots.txt bodies, request times. Out:
:func:`resolve_public` resolves a host and refuses private, loopback, link-local,
multicast, reserved and unspecified addresses unless told otherwise (the check runs on
the resolved address *before* any connection, and the crawler then connects to exactly
that address, so a later DNS answer cannot swap in an internal one);
:class:`RobotsRules` applies one site's robots.txt for our user agent;
and :class:`HostPacer` keeps a minimum delay between two requests to the same host.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import urllib.robotparser
from collections.abc import Callable


class Refused(Exception):
    """A URL the crawler will not fetch; ``reason`` is a short, countable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def address_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` is not a public address (``loopback``, ``private``...), or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    # order matters: 127.0.0.1 is also "private" in Python's table; name the specific kind
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind
    return None


def resolve_public(host: str, port: int, allow_private: bool = False) -> str:
    """The IP address to connect to for ``host``; :class:`Refused` if it is not public.

    Every address the name resolves to must be public: a name with one internal address
    among public ones is refused, since the connection could land on either.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise Refused("dns_error", f"{host}: {err}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise Refused("dns_error", f"{host}: no address")
    if not allow_private:
        for address in addresses:
            kind = address_kind(ipaddress.ip_address(address.split("%")[0]))
            if kind:
                raise Refused("private_address",
                              f"{host} resolves to {address} ({kind}); set "
                              f"crawl.crawler.allow_private: true to crawl it")
    return addresses[0]


class RobotsRules:
    """One origin's robots.txt, read with :mod:`urllib.robotparser`.

    Status handling follows RFC 9309: 2xx -> the file's rules; 4xx -> no rules (all
    allowed); 5xx or no answer -> treat the whole site as disallowed, since the server
    could not tell us what it forbids.
    """

    def __init__(self, user_agent: str, status: int | None, body: bytes = b"") -> None:
        self.user_agent = user_agent
        self.status = status
        self._parser = urllib.robotparser.RobotFileParser()
        if status is None or status >= 500:
            self._parser.disallow_all = True
        elif 400 <= status < 500:
            self._parser.allow_all = True
        else:
            self._parser.parse(body.decode("utf-8", "replace").splitlines())

    def allowed(self, url: str) -> bool:
        return self._parser.can_fetch(self.user_agent, url)

    def crawl_delay(self) -> float:
        """The site's Crawl-delay for our agent in seconds (0 when it sets none)."""
        delay = self._parser.crawl_delay(self.user_agent)
        return float(delay) if delay else 0.0


class HostPacer:
    """At least ``delay_s`` seconds between the starts of two requests to one host."""

    def __init__(self, delay_s: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.delay_s = delay_s
        self._clock = clock
        self._sleep = sleep
        self._last: dict[str, float] = {}
        self._extra: dict[str, float] = {}
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def set_host_delay(self, host: str, delay_s: float) -> None:
        """A longer delay for one host (its robots.txt Crawl-delay); never a shorter one."""
        self._extra[host] = max(delay_s, self._extra.get(host, 0.0))

    def wait(self, host: str) -> None:
        """Block until ``host`` may be asked again, then mark the request as started."""
        with self._lock:
            delay = max(self.delay_s, self._extra.get(host, 0.0))
            last = self._last.get(host)
            now = self._clock()
            if last is not None and now - last < delay:
                pause = delay - (now - last)
                self._sleep(pause)
                self.waited_s += pause
                now = self._clock()
            self._last[host] = now

