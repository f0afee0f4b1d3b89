"""An HTTP body as a WARC record stores it, decoded within a size cap.

In: the record's payload stream (the bytes after the HTTP headers), its
Transfer-Encoding and Content-Encoding headers, and a cap in bytes. Out:
:func:`decoded_body` gives the body de-chunked and decompressed (gzip, deflate,
brotli), reading and inflating in blocks so that memory never holds much more than the
cap: a few kB of gzip or brotli can expand to GBs. A body that would be larger than the
cap raises :class:`TooLarge`. A body that does not decompress under the encoding it is
labelled with arrives as stored (a mislabelled body), as browsers and warcio treat it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

import brotli

_BLOCK = 1 << 16
_LINE = 1 << 10  # a chunk-size line longer than this is not one


class TooLarge(Exception):
    """The body is larger than the cap (after decompression)."""


def decoded_body(raw: BinaryIO, transfer_encoding: str | None, content_encoding: str | None,
                 cap: int) -> bytes:
    """The body read from ``raw`` and decoded; :class:`TooLarge` beyond ``cap`` bytes."""
    chunked = (transfer_encoding or "").strip().lower() == "chunked"
    blocks = _dechunked(raw) if chunked else _blocks(raw)
    encoding = (content_encoding or "").strip().lower()
    inflate = _INFLATERS.get(encoding)
    stored = bytearray()
    if inflate is None:  # identity, or an encoding we do not know: the bytes as they are
        for block in blocks:
            _grow(stored, block, cap)
        return bytes(stored)
    return inflate(_kept(blocks, stored, cap), cap, stored)


def _grow(buffer: bytearray, data: bytes, cap: int) -> None:
    buffer += data
    if len(buffer) > cap:
        raise TooLarge(f"body over {cap} bytes")


def _kept(blocks: Iterator[bytes], stored: bytearray, cap: int) -> Iterator[bytes]:
    """``blocks``, each also kept in ``stored``: the raw body, should it not decompress."""
    for block in blocks:
        _grow(stored, block, cap)
        yield block


def _blocks(raw: BinaryIO) -> Iterator[bytes]:
    while block := raw.read(_BLOCK):
        yield block


def _chunk_size(line: bytes) -> int | None:
    try:
        return int(line.split(b";")[0].strip(), 16)
    except ValueError:
        return None


def _dechunked(raw: BinaryIO) -> Iterator[bytes]:
    """The body without chunked framing, in blocks; chunk sizes are never trusted whole."""
    line = raw.readline(_LINE)
    size = _chunk_size(line)
    if size is None:  # labelled chunked, but is not: the bytes as stored
        yield line
        yield from _blocks(raw)
        return
    while size:
        while size > 0:
            block = raw.read(min(size, _BLOCK))
            if not block:
                return  # cut short: what came is the body
            size -= len(block)
            yield block
        raw.readline(_LINE)  # the CRLF after the chunk
        size = _chunk_size(raw.readline(_LINE))
        if size is None:
            return


def _zlib(wbits: int, fallback_wbits: int | None = None) -> Callable[..., bytes]:
    def inflate(blocks: Iterator[bytes], cap: int, stored: bytearray) -> bytes:
        out = bytearray()
        decoder = zlib.decompressobj(wbits)
        try:
            for block in blocks:
                data = block
                while data and not decoder.eof:
                    # max_length bounds what one call may produce; the rest waits in the tail
                    _grow(out, decoder.decompress(data, cap + 1 - len(out)), cap)
                    data = decoder.unconsumed_tail
            _grow(out, decoder.flush(), cap)
        except zlib.error:
            if fallback_wbits is not None and not out:  # "deflate" sent without zlib header
                return _zlib(fallback_wbits)(_again(bytes(stored), blocks), cap, stored)
            return _rest_raw(stored, blocks, cap)
        return bytes(out)
    return inflate


def _brotli(blocks: Iterator[bytes], cap: int, stored: bytearray) -> bytes:
    out = bytearray()
    decoder = brotli.Decompressor()
    try:
        for block in blocks:
            _grow(out, decoder.process(block, output_buffer_limit=cap + 1 - len(out)), cap)
            while not decoder.can_accept_more_data():  # output held back by the limit
                _grow(out, decoder.process(b"", output_buffer_limit=cap + 1 - len(out)), cap)
    except brotli.error:
        return _rest_raw(stored, blocks, cap)
    return bytes(out)


def _again(start: bytes, blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The bytes read so far, then the rest: the body from its start again."""
    yield start
    yield from blocks


def _rest_raw(stored: bytearray, blocks: Iterator[bytes], cap: int) -> bytes:
    """The raw body: what was read so far and the rest (``blocks`` keeps adding to it)."""
    for _ in blocks:
        pass
    if len(stored) > cap:
        raise TooLarge(f"body over {cap} bytes")
    return bytes(stored)


_INFLATERS: dict[str, Callable[[Iterator[bytes], int, bytearray], bytes]] = {
    "gzip": _zlib(16 + zlib.MAX_WBITS), "x-gzip": _zlib(16 + zlib.MAX_WBITS),
    "deflate": _zlib(zlib.MAX_WBITS, -zlib.MAX_WBITS), "br": _brotli,
}
