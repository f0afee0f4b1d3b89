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

from crawl2chat.crawl.warc import (
    GZIP_MAGIC,
    MAX_PAYLOAD_BYTES,
    WARC_MAGIC,
    ReadStats,
    WarcResponse,
    iter_responses,
)

_CHUNK = 1 << 20
_FEED = 1 << 16  # compressed bytes given to zlib at a time
_HEAD = 64 * 1024  # a record's WARC header is looked for in this many bytes
_IS_PART_OF = re.compile(rb"^isPartOf:[ \t]*(\S+)", re.M | re.I)
_WARCINFO = re.compile(rb"^WARC-Type:[ \t]*warcinfo\s*$", re.M | re.I)
_LENGTH = re.compile(rb"^Content-Length:[ \t]*(\d+)", re.M | re.I)


class StreamReader:
    """Cuts a WARC stream into records; :attr:`dump` is the warcinfo's crawl id, if any."""

    def __init__(self, stream: BinaryIO, stats: ReadStats, name: str,
                 max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.stream, self.stats, self.name = stream, stats, name
        # a record over this size (compressed or decoded) is a counted skip: a hostile
        # member that inflates to gigabytes is never held whole
        self.max_bytes = max_payload_bytes
        self.dump = ""
        # bytes read and not yet used are _buf[_pos:]; _offset: where _buf[_pos] is in the
        # file. A cursor, not slicing: a 1 GB file of 30k records is not copied per record
        self._buf, self._pos, self._offset = bytearray(), 0, 0

    def responses(self) -> Iterator[WarcResponse]:
        """Every intact response record in file order (see the module docstring)."""
        self._fill(len(GZIP_MAGIC))
        gzipped = self._view(0, len(GZIP_MAGIC)) == GZIP_MAGIC
        for offset, record in self._members() if gzipped else self._plain():
            if not self.dump and _WARCINFO.search(record[:4096]):
                self.dump = warcinfo_dump(record)
            yield from iter_responses(io.BytesIO(record), self.stats, name=self.name,
                                      base=offset, max_payload_bytes=self.max_bytes)

    def _fill(self, n: int) -> int:
        """Read until ``n`` unused bytes are held, or the stream ends; the count held."""
        while len(self._buf) - self._pos < n:
            chunk = self.stream.read(_CHUNK)
            if not chunk:
                break
            del self._buf[:self._pos]  # once per read: what is used goes
            self._pos = 0
            self._buf += chunk
        return len(self._buf) - self._pos

    def _view(self, start: int, size: int) -> bytes:
        return bytes(self._buf[self._pos + start:self._pos + start + size])

    def _skip(self, n: int) -> None:
        self._pos += n
        self._offset += n

    def _members(self) -> Iterator[tuple[int, bytes]]:
        """(file offset, decompressed record) of each gzip member."""
        damaged = False
        while self._fill(1):
            start, inflate, out, used = self._offset, zlib.decompressobj(31), [], 0
            size, too_big = 0, False
            try:
                while not inflate.eof and self._fill(used + 1) > used:
                    # small feeds: what follows the member comes back as a copy
                    data = self._view(used, _FEED)
                    piece = inflate.decompress(data)
                    used += len(data) - len(inflate.unused_data)
                    size += len(piece)
                    if size > self.max_bytes or used > self.max_bytes:
                        too_big = True
                        break
                    out.append(piece)
            except zlib.error:
                if not damaged:
                    self.stats.skipped["corrupt"] += 1
                damaged = True
                self._resync(1)
                continue
            self._skip(used)
            if too_big:  # the rest of the member is passed over, never inflated
                self.stats.skipped["payload_too_large"] += 1
                self._resync(0)
                continue
            if not inflate.eof:  # the stream ended inside this member
                self.stats.skipped["truncated"] += 1
                return
            damaged = False
            yield start, b"".join(out)

    def _resync(self, after: int) -> None:
        """Drop bytes up to the next gzip header found ``after`` bytes on, or to the end."""
        while True:
            held = self._fill(after + len(GZIP_MAGIC))
            hit = self._buf.find(GZIP_MAGIC, self._pos + after)
            if hit >= 0:
                self._skip(hit - self._pos)
                return
            if held < after + len(GZIP_MAGIC):  # the stream has ended
                self._skip(held)
                return
            self._skip(held - (len(GZIP_MAGIC) - 1))  # a header may straddle two reads
            after = 0

    def _plain(self) -> Iterator[tuple[int, bytes]]:
        """(file offset, record) of an uncompressed WARC, cut by each header's length."""
        while self._fill(1):
            head = self._view(0, min(self._fill(_HEAD), _HEAD))
            end = head.find(b"\r\n\r\n")
            found = _LENGTH.search(head[:end]) if end > 0 else None
            if not head.startswith(WARC_MAGIC) or found is None:
                self.stats.skipped["corrupt"] += 1
                return  # without gzip members there is no safe place to pick up again
            size = end + 4 + int(found[1]) + 4  # header, blank line, block, CRLF CRLF
            start, record = self._offset, self._view(0, min(size, self._fill(size)))
            self._skip(len(record))
            yield start, record


def warcinfo_dump(record: bytes) -> str:
    """The ``isPartOf`` value of a decompressed warcinfo record (Common Crawl's crawl
    id, e.g. ``CC-MAIN-2024-10``), or ''."""
    found = _IS_PART_OF.search(record[:_HEAD])
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
                          max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Iterator[WarcResponse]:
    """The intact responses of a WARC stream (a shorthand for :class:`StreamReader`)."""
    yield from StreamReader(stream, stats, name, max_payload_bytes).responses()
