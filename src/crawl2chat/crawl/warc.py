"""WARC input and output.

In: WARC files (1.0/1.1; one gzip member per record, or uncompressed).
Out: :func:`iter_responses` yields every intact HTTP ``response`` record as a
:class:`WarcResponse` (URL, record id, status, HTTP headers, decoded payload bytes, the
file and byte offset of the record); it reads a path or any seekable binary file (an
fsspec file, or the bytes of a slice of a shard with the slice's offset in ``base``).
A payload is decoded in blocks up to ``max_payload_bytes`` (:mod:`crawl2chat.crawl.decode`);
a record whose payload is larger, compressed or not, is skipped and counted as
``payload_too_large``, so a decompression bomb costs time, never memory.
A damaged record or file never stops the reader: it logs one warning naming the file
and offset, counts it in :class:`ReadStats` and goes on at the next record it can find.
:class:`WarcShardWriter` writes response records, one gzip member each, and returns
where each one landed (offset, length) for an index.
"""

from __future__ import annotations

import contextlib
import http
import io
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawl2chat.crawl.decode import TooLarge, decoded_body
from crawl2chat.crawl.headers import HeaderLookup

log = logging.getLogger("crawl2chat.crawl")

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/1."
# headers that describe the transfer, not the payload we store (it is already decoded)
_TRANSFER_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}
MAX_PAYLOAD_BYTES = 64 << 20  # the default cap of one decoded payload
_DRAIN = 1 << 16
DUMP_HEADER = "WARC-Dump"  # ours: the crawl id a copied record came from


@dataclass(frozen=True)
class WarcResponse(HeaderLookup):
    """One HTTP response record; ``payload`` is the body after content/transfer decoding."""

    url: str
    record_id: str
    date: str
    status: int
    headers: tuple[tuple[str, str], ...]
    payload: bytes
    file: str
    offset: int
    dump: str = ""  # the crawl it belongs to (FineWeb's ``dump``), from a WARC-Dump header


@dataclass
class ReadStats:
    """What the reader saw: intact records, responses, and skips by reason."""

    records: int = 0
    responses: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: ReadStats) -> None:
        self.records += other.records
        self.responses += other.responses
        self.skipped.update(other.skipped)


class _Damaged(Exception):
    """A record that parsed but whose content is incomplete or fails its digest."""


def iter_responses(source: Path | BinaryIO, stats: ReadStats | None = None, *,
                   name: str | None = None, base: int = 0,
                   max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Iterator[WarcResponse]:
    """Yield the intact response records of ``source`` in file order; skip and count the rest.

    ``source`` is a path or a seekable binary file; ``name`` (default: the path) is what
    warnings and :attr:`WarcResponse.file` call it, and ``base`` is added to every offset
    (where ``source``'s first byte sits in the file ``name`` names). A payload larger
    than ``max_payload_bytes`` once decoded is a skip.
    """
    stats = stats if stats is not None else ReadStats()
    with _opened(source) as fh:
        path = name or str(source if isinstance(source, Path) else getattr(source, "name", "?"))
        size = fh.seek(0, io.SEEK_END)
        fh.seek(0)
        magic = _magic(fh.read(_DRAIN))
        start: int | None = 0
        damaged = False  # one warning per stretch of damage, not one per false restart
        while start is not None and start < size:
            fh.seek(start)
            records = ArchiveIterator(fh, check_digests=True)
            offset = start
            try:
                for record in records:
                    if record.format != "warc":  # warcio also guesses ARC for any text line
                        raise ArchiveLoadFailed(f"not a WARC record ({record.format})")
                    problem = None
                    try:
                        response = _response(record, path, base + offset, max_payload_bytes)
                    except _Damaged as err:
                        problem, response = str(err), None
                    records.read_to_end()  # raises if the container itself is broken
                    if problem:
                        stats.skipped[problem] += 1
                        log.warning("%s: skipped record at offset %d: %s", path, base + offset,
                                    problem)
                    offset = records.offset
                    stats.records += 1
                    damaged = False
                    if response is not None:
                        stats.responses += 1
                        yield response
                if offset < size and not damaged:  # the reader stopped short of the end
                    stats.skipped["truncated"] += 1
                    log.warning("%s: skipped %d bytes at offset %d that end before a whole "
                                "record", path, size - offset, base + offset)
                start = None
            except Exception as err:  # warcio on damaged bytes: AttributeError and others too
                if "non-chunked gzip" in str(err):
                    # offsets mean nothing inside one big gzip stream: name the fix and stop
                    stats.skipped["not_chunked_gzip"] += 1
                    log.warning("%s: from offset %d on, the file is not one gzip member per "
                                "record; rest skipped (fix: warcio recompress IN OUT)",
                                path, base + (start or 0))
                    break
                if not damaged:
                    stats.skipped["corrupt"] += 1
                    log.warning("%s: corrupt data at offset %d, skipping to the next record: %s",
                                path, base + offset, _short(err))
                damaged = True
                start = _find(fh, magic, offset + 1)


@contextlib.contextmanager
def _opened(source: Path | BinaryIO) -> Iterator[BinaryIO]:
    """A path opened for reading (and closed after), or the caller's file as it is."""
    if isinstance(source, Path):
        with source.open("rb") as fh:
            yield fh
    else:
        yield source


def _response(record: ArcWarcRecord, path: str, offset: int, cap: int) -> WarcResponse | None:
    """The record as a WarcResponse; None for other record types; _Damaged if broken."""
    payload = b""
    too_large = False
    if record.rec_type == "response" and record.http_headers is not None:
        headers = record.http_headers
        try:  # chunking and Content-Encoding undone, a mislabelled body arrives as stored
            payload = decoded_body(record.raw_stream, headers.get_header("Transfer-Encoding"),
                                   headers.get_header("Content-Encoding"), cap)
        except TooLarge:
            too_large = True
    while record.raw_stream.read(_DRAIN):  # to the end, so the digest check runs
        pass
    if getattr(record.raw_stream, "limit", 0) > 0:
        raise _Damaged("truncated")
    if record.digest_checker is not None and record.digest_checker.passed is False:
        raise _Damaged("digest_mismatch")
    if (record.length is None or not record.rec_type  # mandatory: the header block was cut
            or not record.rec_headers.get_header("WARC-Record-ID")):
        raise _Damaged("incomplete_warc_headers")
    if record.rec_type != "response":
        return None
    if record.http_headers is None:
        raise _Damaged("no_http_headers")
    if too_large:
        raise _Damaged("payload_too_large")
    try:
        status = int(record.http_headers.get_statuscode())
    except (TypeError, ValueError):
        raise _Damaged("bad_http_status") from None
    return WarcResponse(
        url=record.rec_headers.get_header("WARC-Target-URI") or "",
        record_id=record.rec_headers.get_header("WARC-Record-ID") or "",
        date=record.rec_headers.get_header("WARC-Date") or "",
        status=status,
        headers=tuple(record.http_headers.headers),
        payload=payload,
        file=str(path),
        offset=offset,
        dump=record.rec_headers.get_header(DUMP_HEADER) or "",
    )


def _magic(head: bytes) -> bytes:
    """How the records of a file start: gzip members or plain WARC headers. The file's
    first bytes say so, or, when they are damaged, the first record start after them."""
    for magic in (GZIP_MAGIC, WARC_MAGIC):
        if head.startswith(magic):
            return magic
    found = sorted((head.find(m), m) for m in (GZIP_MAGIC, WARC_MAGIC) if m in head)
    return found[0][1] if found else WARC_MAGIC


def _find(fh: BinaryIO, magic: bytes, start: int) -> int | None:
    """Offset of the next ``magic`` at or after ``start`` (a record's first bytes), or None."""
    chunk_size = 1 << 20
    position = start
    while True:
        fh.seek(position)
        chunk = fh.read(chunk_size + len(magic) - 1)
        if len(chunk) < len(magic):
            return None
        hit = chunk.find(magic)
        if magic == WARC_MAGIC:  # an uncompressed record starts a line
            while hit > 0 and chunk[hit - 1:hit] != b"\n":
                hit = chunk.find(magic, hit + 1)
        if hit >= 0:
            return position + hit
        position += chunk_size


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 80 else text[:77] + "..."


class WarcShardWriter:
    """Write response records into one WARC file, one gzip member per record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("wb")
        self._writer = WARCWriter(self._fh, gzip=True, warc_version="1.1")
        self.records = 0

    def write(self, url: str, payload: bytes, *, status: int = 200,
              headers: Iterable[tuple[str, str]] = (("Content-Type", "text/html; charset=utf-8"),),
              record_id: str | None = None, date: str | None = None,
              dump: str | None = None) -> tuple[int, int]:
        """Append one response record; return its (offset, length) in the file.

        ``payload`` is stored as given, so transfer headers that no longer describe it
        (Content-Encoding, Transfer-Encoding) are dropped and Content-Length is recomputed.
        Record id and date are kept when given (a copy keeps its identity); ``dump``
        (the crawl id) goes into a ``WARC-Dump`` header.
        """
        kept = [(k, v) for k, v in headers if k.lower() not in _TRANSFER_HEADERS]
        kept.append(("Content-Length", str(len(payload))))
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        http_headers = StatusAndHeaders(f"{status} {phrase}", kept, protocol="HTTP/1.1")
        warc_headers = {k: v for k, v in (("WARC-Record-ID", record_id), ("WARC-Date", date),
                                          (DUMP_HEADER, dump)) if v}
        record = self._writer.create_warc_record(
            url, "response", payload=io.BytesIO(payload), length=len(payload),
            http_headers=http_headers, warc_headers_dict=warc_headers)
        offset = self._fh.tell()
        self._writer.write_record(record)
        self.records += 1
        return offset, self._fh.tell() - offset

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> WarcShardWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
