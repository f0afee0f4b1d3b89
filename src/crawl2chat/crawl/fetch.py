"""One HTTP GET with the standard library, to an address checked beforehand.

In: a URL, the IP address it was resolved to (see :func:`politeness.resolve_public`),
user agent, timeouts, size cap and which media types are worth a body. Out: an
:class:`Exchange` (the request as sent, the response's status, headers and body as
received, minus chunking) or :class:`FetchError` with a countable reason. The socket
goes to the given IP, never to a fresh DNS answer; the Host header and TLS (SNI and the
certificate check) use the host name. No redirect is followed here: the crawler checks
every hop. A watchdog closes the socket when the request's wall-clock deadline passes,
so a server that drips one byte at a time, in the headers or the body, cannot hold it.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from crawl2chat.crawl.headers import HeaderLookup

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1 << 16


class FetchError(Exception):
    """The exchange failed; ``reason`` is ``timeout``, ``deadline``, ``tls_error``,
    ``connection_error``, ``bad_url`` or ``too_large``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Exchange(HeaderLookup):
    """A request as sent and the response as received (body possibly not read)."""

    url: str
    ip: str
    request_line: str  # "GET /path?q HTTP/1.1"
    request_headers: tuple[tuple[str, str], ...]
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_read: bool  # False when the media type was not wanted and the body was left unread



class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a fixed IP address; ``host`` still goes into the Host header."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self.ip, self.port), self.timeout)
        self.raw = self.sock


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed IP address; SNI and the certificate check use ``host``."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.ip = ip
        self.tls = ssl.create_default_context()

    def connect(self) -> None:
        self.raw = socket.create_connection((self.ip, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(self.raw, server_hostname=self.host)


class _Watchdog:
    """Shuts the connection's socket down at ``deadline_s`` from now: any read blocked in
    it (TLS handshake, status line, headers, body) returns at once."""

    def __init__(self, conn: _PinnedHTTP | _PinnedHTTPS, deadline_s: float) -> None:
        self.conn = conn
        self.fired = False
        self._timer = threading.Timer(deadline_s, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        raw = getattr(self.conn, "raw", None)
        if raw is not None:
            with contextlib.suppress(OSError):  # closed already
                raw.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def fetch(url: str, ip: str, *, user_agent: str, timeout_s: float, deadline_s: float,
          max_bytes: int, body_types: tuple[str, ...] | None = None) -> Exchange:
    """GET ``url`` from ``ip``.

    ``timeout_s`` bounds connecting and every wait for data; ``deadline_s`` bounds the
    whole request, from connecting to the body's last byte. With ``body_types``, a 2xx
    response of another media type is closed unread. ``url`` must be normalised
    (:func:`crawl2chat.crawl.links.normalize`): a request line is ASCII.
    """
    if not url.isascii():
        raise FetchError("bad_url", f"{url!r}: not ASCII; normalise it first")
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    if parts.port and parts.port != (443 if secure else 80):
        host_header += f":{parts.port}"
    # identity encoding: the stored body is then exactly what the server meant to send
    request_headers = (("Host", host_header), ("User-Agent", user_agent),
                       ("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"),
                       ("Accept-Encoding", "identity"), ("Connection", "close"))
    conn_cls = _PinnedHTTPS if secure else _PinnedHTTP
    conn = conn_cls(host, port, ip, min(timeout_s, deadline_s))
    watchdog = _Watchdog(conn, deadline_s)
    try:
        with watchdog:
            conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
            for name, value in request_headers:
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            headers = tuple(response.getheaders())
            mime = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
            wanted = (body_types is None or not 200 <= response.status < 300
                      or mime in body_types)
            body = _read(response, max_bytes) if wanted else b""
        if watchdog.fired:  # what was read before the cut-off is incomplete
            raise FetchError("deadline", f"{url}: not done within {deadline_s:g} s")
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise _failure(url, err, watchdog.fired, timeout_s, deadline_s) from err
    finally:
        conn.close()
    return Exchange(url=url, ip=ip, request_line=f"GET {path} HTTP/1.1",
                    request_headers=request_headers, status=response.status,
                    reason=response.reason, headers=headers, body=body, body_read=wanted)


def _failure(url: str, err: Exception, fired: bool, timeout_s: float,
             deadline_s: float) -> FetchError:
    """The countable reason for an exception of the exchange."""
    if fired:  # the watchdog cut the socket: whatever broke, the deadline did it
        return FetchError("deadline", f"{url}: not done within {deadline_s:g} s")
    if isinstance(err, TimeoutError):
        return FetchError("timeout", f"{url}: no data for {timeout_s:g} s")
    if isinstance(err, ssl.SSLError):
        return FetchError("tls_error", f"{url}: {err}")
    # ValueError: http.client refuses a header it would have to send or parse
    return FetchError("connection_error", f"{url}: {type(err).__name__}: {err}")


def _read(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"body over {max_bytes} bytes")
    return b"".join(chunks)
