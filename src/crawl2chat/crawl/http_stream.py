"""A remote file read once, front to back, over HTTP: retries, backoff and Range resumes.

In: a URL and :class:`HttpCfg` (retries, backoff, timeout). Out: :class:`HttpStream`, a
readable, non-seekable binary file of the URL's bytes. Nothing is written to disk. A
request that fails (a 5xx or 429 answer, a refused or dropped connection, a timeout) is
retried after ``backoff_s * 2**k`` seconds (capped at ``max_backoff_s``); a retry after
some bytes arrived asks for the rest only (``Range: bytes=N-``), so the bytes handed out
are the file's bytes exactly once, in order. ``retries`` failures in a row without a
byte of progress raise :class:`StreamFailed`; a 4xx answer other than 408/425/429 raises
it at once (``fatal``).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from crawl2chat.errors import ConfigError
from crawl2chat.redact import redact_url

log = logging.getLogger("crawl2chat.crawl")

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class HttpCfg:
    """How remote WARC and paths files are read: retries, backoff, timeout."""

    retries: int = 5  # failures in a row without progress before the file is given up
    backoff_s: float = 1.0  # first wait; doubled after every further failure
    max_backoff_s: float = 60.0
    timeout_s: float = 60.0  # connect / wait-for-data limit of one request

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError("crawl.http: retries, backoff_s and max_backoff_s must be >= 0")
        if self.timeout_s <= 0:
            raise ConfigError(f"crawl.http.timeout_s: must be > 0, got {self.timeout_s}")


class StreamFailed(OSError):
    """The file could not be read to its end; ``position``: bytes handed out before."""

    def __init__(self, url: str, position: int, detail: str, *, fatal: bool = False) -> None:
        super().__init__(f"{redact_url(url)}: {detail}")
        self.url, self.position, self.detail, self.fatal = url, position, detail, fatal


class _Retry(Exception):
    """A failed request that is worth repeating."""


class HttpStream(io.RawIOBase):
    """The bytes of ``url``, read sequentially; see the module docstring."""

    def __init__(self, url: str, cfg: HttpCfg | None = None) -> None:
        super().__init__()
        self.url, self.cfg = url, cfg or HttpCfg()
        self.position = 0  # bytes handed out so far
        self.reconnects = 0  # requests sent after the first one
        self._client = httpx.Client(timeout=self.cfg.timeout_s, follow_redirects=True,
                                    headers={"Accept-Encoding": "identity"})
        self._chunks = self._stream()
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        self.position += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._chunks.close()
            self._client.close()
        super().close()

    def _stream(self) -> Iterator[bytes]:
        """The file's chunks; reconnects after a failure from the first byte not yet given."""
        failures = 0
        while True:
            # a chunk is handed out in full before the next is asked for: resume there
            start = self.position
            try:
                for chunk in self._get(start):
                    failures = 0
                    yield chunk
                return
            except (_Retry, httpx.TransportError) as err:
                failures += 1
                if failures > self.cfg.retries:
                    raise StreamFailed(self.url, self.position,
                                       f"gave up after {failures} failed requests: "
                                       f"{_short(err)}") from err
                wait = min(self.cfg.max_backoff_s, self.cfg.backoff_s * 2 ** (failures - 1))
                log.warning("%s: %s at byte %d; retry %d/%d in %.1f s", redact_url(self.url),
                            _short(err), start, failures, self.cfg.retries, wait)
                time.sleep(wait)
                self.reconnects += 1

    def _get(self, start: int) -> Iterator[bytes]:
        """One GET from byte ``start``; raises _Retry on an answer worth repeating."""
        headers = {"Range": f"bytes={start}-"} if start else {}
        with self._client.stream("GET", self.url, headers=headers) as response:
            status = response.status_code
            if status in _RETRY_STATUS:
                raise _Retry(f"HTTP {status}")
            if status >= 400:
                raise StreamFailed(self.url, self.position, f"HTTP {status}", fatal=True)
            skip = 0
            if start and status == 206:
                first = response.headers.get("Content-Range", "").removeprefix("bytes ")
                if not first.startswith(f"{start}-"):
                    raise _Retry(f"Content-Range {first!r} does not start at {start}")
            elif start:
                skip = start  # the server ignored Range: drop what was already handed out
            # no chunk size: a sized chunker holds back what arrived before a drop
            for chunk in response.iter_raw():
                if skip:
                    cut, skip = min(skip, len(chunk)), skip - min(skip, len(chunk))
                    chunk = chunk[cut:]
                if chunk:
                    yield chunk


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."
