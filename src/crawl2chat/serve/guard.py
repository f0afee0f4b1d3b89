"""The server's front door: an ASGI middleware that checks every HTTP request before the app.

In:  the raw ASGI request (headers, body chunks). Out: the request passed on unchanged, or
     refused with an OpenAI-shaped JSON error:

- ``Host`` not one this server answers to -> 400 ``invalid_host``. A web page on another
  site can point its own DNS name at 127.0.0.1 (DNS rebinding) and then read this server
  as same-origin; the browser still sends the attacker's name as ``Host``, so only
  loopback names, the address the server listens on and ``--allowed-host`` names pass.
- ``/v1/*`` without ``Authorization: Bearer <key>`` when an API key is set -> 401.
- A body over ``max_body_bytes`` -> 413, by ``Content-Length`` or, for a chunked body,
  counted while it is read (the body is buffered up to the limit, then handed on).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crawl2chat.serve.openai_api import error_body

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_HOST = "*"


def host_name(header: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``; lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def allowed_hosts(bind_host: str, extra: Iterable[str]) -> frozenset[str]:
    """Loopback names, the listening address (unless a wildcard) and ``extra``."""
    names = set(LOOPBACK_HOSTS) | {host_name(h) if h != ANY_HOST else h for h in extra}
    if bind_host not in ("0.0.0.0", "::", ""):
        names.add(bind_host.strip("[]").lower())
    return frozenset(names)


class Guard:
    """ASGI middleware applying the checks above, in that order."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str], api_key: str | None,
                 max_body_bytes: int) -> None:
        self.app, self.hosts, self.max_body_bytes = app, hosts, max_body_bytes
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = host_name(headers.get("host", ""))
        if ANY_HOST not in self.hosts and host not in self.hosts:
            await _refuse(send, 400, f"Host {host!r} is not served here; start the server "
                          "with --allowed-host NAME to answer to it", "invalid_host")
            return
        if self.api_key and scope["path"].startswith("/v1") and not self._authorised(headers):
            await _refuse(send, 401, "a valid API key is required: send the header "
                          "'Authorization: Bearer KEY'", "invalid_api_key",
                          "authentication_error")
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _refuse(send, 413, self._too_large(int(length)), "request_too_large")
            return
        body = await self._read_body(receive)
        if body is None:
            await _refuse(send, 413, self._too_large(None), "request_too_large")
            return
        await self.app(scope, _replay(body, receive), send)

    def _authorised(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        assert self.api_key is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                  self.api_key)

    def _too_large(self, length: int | None) -> str:
        size = f"{length} bytes" if length is not None else "larger than that"
        return f"the request body is {size}; this server accepts at most {self.max_body_bytes}"

    async def _read_body(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None once they add up to more than the limit."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client went away: let the app see it
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _refuse(send: Send, status: int, message: str, code: str,
                  kind: str = "invalid_request_error") -> None:
    body = json.dumps(error_body(message, kind, None, code)).encode()
    headers: list[Any] = [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
