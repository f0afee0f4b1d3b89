"""WARC records from a stream that is read once and cannot seek (a file coming over HTTP).

In: a readable binary file (e.g. :class:`~crawl2chat.crawl.http_stream.HttpStream`) of a
WARC with one gzip member per record, as Common Crawl writes them, or uncompressed.
Out: :func:`iter_stream_responses` cuts the stream into records as it arrives and hands
each one to :func:`crawl2chat.crawl.warc.iter_responses`, so the records, their offsets
in the file and the damage counts are what reading a local copy would give; only one
record is held at a time. A member that does not decompress is a counted ``corrupt``
skip, and reading goes on at the next gzip header. :func:`warcinfo_dump` reads the
crawl id (``isPartOf``) from a warcinfo record, for FineWeb's ``dump`` column.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from crawl2chat.crawl.warc import GZIP_MAGIC, WARC_MAGIC, ReadStats, WarcResponse, iter_responses

_CHUNK = 1 << 20
_IS_PART_OF = re.compile(rb"^isPartOf:[ \t]*(\S+)", re.M | re.I)
_WARCINFO = re.compile(rb"^WARC-Type:[ \t]*warcinfo\s*$", re.M | re.I)
_LENGTH = re.compile(rb"^Content-Length:[ \t]*(\d+)", re.M | re.I)


class StreamReader:
    """Cuts a WARC stream into records; :attr:`dump` is the warcinfo's crawl id, if any."""

    def __init__(self, stream: BinaryIO, stats: ReadStats, name: str) -> None:
        self.stream, self.stats, self.name = stream, stats, name
        self.dump = ""
        self._pending = b""  # bytes read from the stream and not yet used
        self._offset = 0  # where ``_pending`` starts in the file

    def responses(self) -> Iterator[WarcResponse]:
        """Every intact response record in file order (see the module docstring)."""
        head = self._fill(len(GZIP_MAGIC))
        records = self._members() if head.startswith(GZIP_MAGIC) else self._plain()
        for offset, record in records:
            if not self.dump and _WARCINFO.search(record[:4096]):
                self.dump = warcinfo_dump(record)
            yield from iter_responses(io.BytesIO(record), self.stats, name=self.name,
                                      base=offset)

    def _fill(self, n: int) -> bytes:
        """``_pending`` grown to at least ``n`` bytes, or to the end of the stream."""
        while len(self._pending) < n:
            chunk = self.stream.read(_CHUNK)
            if not chunk:
                break
            self._pending += chunk
        return self._pending

    def _take(self, n: int) -> bytes:
        taken, self._pending = self._pending[:n], self._pending[n:]
        self._offset += len(taken)
        return taken

    def _members(self) -> Iterator[tuple[int, bytes]]:
        """(file offset, decompressed record) of each gzip member."""
        damaged = False
        while self._fill(1):
            start, inflate, out, used = self._offset, zlib.decompressobj(31), [], 0
            try:
                while not inflate.eof:
                    data = self._fill(used + 1)[used:]
                    if not data:
                        break
                    out.append(inflate.decompress(data))
                    used += len(data) - len(inflate.unused_data)
            except zlib.error:
                if not damaged:
                    self.stats.skipped["corrupt"] += 1
                damaged = True
                self._resync(1)
                continue
            if not inflate.eof:  # the stream ended inside this member
                self.stats.skipped["truncated"] += 1
                self._take(used)
                return
            self._take(used)
            damaged = False
            yield start, b"".join(out)

    def _resync(self, after: int) -> None:
        """Drop bytes up to the next gzip header found ``after`` bytes on, or to the end."""
        while True:
            data = self._fill(after + len(GZIP_MAGIC))
            hit = data.find(GZIP_MAGIC, after)
            if hit >= 0:
                self._take(hit)
                return
            if len(data) < after + len(GZIP_MAGIC):  # the stream has ended
                self._take(len(data))
                return
            keep = len(GZIP_MAGIC) - 1  # a header may straddle two reads
            self._take(len(data) - keep)
            after = 0
            self._fill(_CHUNK)

    def _plain(self) -> Iterator[tuple[int, bytes]]:
        """(file offset, record) of an uncompressed WARC, cut by each header's length."""
        while self._fill(1):
            data = self._fill(64 * 1024)
            end = data.find(b"\r\n\r\n")
            found = _LENGTH.search(data[:end]) if end > 0 else None
            if not data.startswith(WARC_MAGIC) or found is None:
                self.stats.skipped["corrupt"] += 1
                return  # without gzip members there is no safe place to pick up again
            size = end + 4 + int(found[1]) + 4  # header, blank line, block, CRLF CRLF
            start = self._offset
            record = self._take(len(self._fill(size)[:size]))
            yield start, record


def warcinfo_dump(record: bytes) -> str:
    """The ``isPartOf`` value of a decompressed warcinfo record (Common Crawl's crawl
    id, e.g. ``CC-MAIN-2024-10``), or ''."""
    found = _IS_PART_OF.search(record[:64 * 1024])
    return found[1].decode("utf-8", "replace") if found else ""


def file_dump(head: bytes) -> str:
    """The crawl id in the warcinfo record a WARC file opens with, given its first bytes
    (compressed or not), or '' when it opens with another record."""
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(31).decompress(head)
        except zlib.error:
            return ""
    return warcinfo_dump(head) if _WARCINFO.search(head[:4096]) else ""


def iter_stream_responses(stream: BinaryIO, stats: ReadStats, *, name: str,
                          ) -> Iterator[WarcResponse]:
    """The intact responses of a WARC stream (a shorthand for :class:`StreamReader`)."""
    yield from StreamReader(stream, stats, name).responses()
