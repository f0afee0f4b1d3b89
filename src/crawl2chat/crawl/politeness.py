"""The crawler's rules of conduct: which addresses it may connect to, robots.txt, pacing.

In: a host name (or IP literal), robots.txt bodies, request times. Out:
:func:`resolve_public` resolves a host and refuses every address that is not globally
routable (``ipaddress``'s ``is_global``), multicast, or a public-looking IPv6 form of a
non-global IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64), unless it
lies in a network the config allows; the check runs on the resolved address *before*
any connection, and the crawler then connects to exactly that address, so a later DNS
answer cannot swap in an internal one. :class:`RobotsRules` applies one site's
robots.txt for our user agent; :class:`HostPacer` keeps a minimum delay between two
requests to the same host.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import urllib.robotparser
from collections.abc import Callable, Sequence
from typing import Any

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# getaddrinfo's shape; the crawler takes another one in tests, where real DNS cannot be set
Resolver = Callable[..., list[tuple[Any, ...]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the low 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: site-local translation
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class Refused(Exception):
    """A URL the crawler will not fetch; ``reason`` is a short, countable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _embedded_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses a global-looking IPv6 address carries, that a gateway would
    deliver to (6to4, Teredo, NAT64, IPv4-compatible)."""
    found = [ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def address_kind(ip: IP) -> str | None:
    """Why ``ip`` may not be crawled (``loopback``, ``shared``...), or None if it is global."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    if not ip.is_global or ip.is_multicast:
        # 127.0.0.1 is also "private" in Python's table: name the specific kind first
        for kind in ("loopback", "link_local", "unspecified", "multicast", "private",
                     "reserved"):
            if getattr(ip, f"is_{kind}"):
                return kind
        if ip in _SHARED:
            return "shared"  # carrier-grade NAT; some clouds serve instance metadata here
        return "not_global"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return "nat64_local"
        for v4 in _embedded_v4(ip):
            kind = address_kind(v4)
            if kind:  # Python calls these global, but they reach the IPv4 address inside
                return f"{kind} via {v4}"
    return None


def allowed_networks(values: Sequence[str], where: str) -> list[Network]:
    """The networks of ``values`` (``127.0.0.0/8``, ``::1``); ValueError naming ``where``."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as err:
            raise ValueError(f"{where}: {value!r} is not an IP network ({err})") from None
    return networks


def _allowed(ip: IP, allow: Sequence[Network]) -> bool:
    candidates: list[IP] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c in net for c in candidates for net in allow if c.version == net.version)


def resolve_public(host: str, port: int, allow: Sequence[Network] = (),
                   resolver: Resolver = socket.getaddrinfo) -> str:
    """The IP address to connect to for ``host``; :class:`Refused` if it is not public.

    Every address the name resolves to must be global (or inside ``allow``): a name with
    one internal address among public ones is refused, since the connection could land
    on either.
    """
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as err:
        raise Refused("dns_error", f"{host}: {err}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise Refused("dns_error", f"{host}: no address")
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            raise Refused("dns_error", f"{host}: resolver gave {address!r}") from None
        kind = address_kind(ip)
        if kind and not _allowed(ip, allow):
            raise Refused("private_address",
                          f"{host} resolves to {address} ({kind}), which is not a global "
                          f"address; crawl.crawler.allow_private lists the networks allowed "
                          f"anyway")
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

