"""WARC reading and writing: intact records come out whole, damage is a counted skip."""

from __future__ import annotations

import gzip
import io
import logging
import tracemalloc
import zlib
from pathlib import Path

import brotli
import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawl2chat.crawl.warc import ReadStats, WarcShardWriter, iter_responses

BODY = b"<html><body><p>Hello WARC</p></body></html>"
HTTP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
# a hand-written uncompressed WARC/1.0 file: a warcinfo record, then one response
LITERAL_WARC = (
    b"WARC/1.0\r\nWARC-Type: warcinfo\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-"
    b"000000000001>\r\nWARC-Date: 2024-01-01T00:00:00Z\r\nContent-Type: application/warc-fields"
    b"\r\nContent-Length: 18\r\n\r\nsoftware: by hand\n\r\n\r\n"
    b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-"
    b"000000000002>\r\nWARC-Date: 2024-01-01T00:00:01Z\r\n"
    b"WARC-Target-URI: https://example.org/hello\r\n"
    b"Content-Type: application/http; msgtype=response\r\n"
    b"Content-Length: " + str(len(HTTP)).encode() + b"\r\n\r\n" + HTTP + b"\r\n\r\n")


def _page(i: int) -> bytes:
    return f"<html><body><p>page {i} {'lorem ipsum ' * 40}</p></body></html>".encode()


def _write(path: Path, n: int = 5) -> list[tuple[int, int]]:
    with WarcShardWriter(path) as writer:
        return [writer.write(f"https://example.org/{i}", _page(i),
                             record_id=f"<urn:uuid:00000000-0000-0000-0000-{i:012d}>",
                             date="2024-05-01T12:00:00Z") for i in range(n)]


def _read(path: Path) -> tuple[list[str], ReadStats]:
    stats = ReadStats()
    return [r.url for r in iter_responses(path, stats)], stats


def test_literal_warc_yields_the_response_with_headers_payload_and_offset(tmp_path):
    path = tmp_path / "hand.warc"
    path.write_bytes(LITERAL_WARC)
    stats = ReadStats()
    [response] = list(iter_responses(path, stats))
    assert response.url == "https://example.org/hello"
    assert response.record_id == "<urn:uuid:00000000-0000-0000-0000-000000000002>"
    assert response.status == 200
    assert response.mime_type == "text/html"
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.payload == BODY
    assert response.offset == LITERAL_WARC.index(b"WARC/1.0\r\nWARC-Type: response")
    assert response.file == str(path)
    assert (stats.records, stats.responses, sum(stats.skipped.values())) == (2, 1, 0)


def test_writer_round_trip_keeps_identity_and_indexes_standalone_members(tmp_path):
    path = tmp_path / "out.warc.gz"
    places = _write(path)
    responses = list(iter_responses(path))
    assert [r.url for r in responses] == [f"https://example.org/{i}" for i in range(5)]
    assert [r.payload for r in responses] == [_page(i) for i in range(5)]
    assert responses[3].record_id == "<urn:uuid:00000000-0000-0000-0000-000000000003>"
    assert responses[3].date == "2024-05-01T12:00:00Z"
    assert [r.offset for r in responses] == [offset for offset, _ in places]
    blob = path.read_bytes()
    assert places[-1][0] + places[-1][1] == len(blob)
    offset, length = places[2]
    record = next(iter(ArchiveIterator(io.BytesIO(blob[offset:offset + length]))))
    assert record.rec_headers.get_header("WARC-Target-URI") == "https://example.org/2"


def test_writer_stores_the_decoded_payload_without_transfer_headers(tmp_path):
    path = tmp_path / "out.warc.gz"
    with WarcShardWriter(path) as writer:
        writer.write("https://example.org/x", b"<p>plain</p>", status=404,
                     headers=[("Content-Type", "text/html"), ("Content-Encoding", "gzip"),
                              ("Transfer-Encoding", "chunked"), ("Content-Length", "999")])
    [response] = list(iter_responses(path))
    assert response.status == 404
    assert response.payload == b"<p>plain</p>"
    assert response.header("Content-Encoding") is None
    assert response.header("Transfer-Encoding") is None
    assert response.header("Content-Length") == "12"


def test_content_encoding_is_decoded_and_a_mislabelled_body_arrives_raw(tmp_path):
    path = tmp_path / "enc.warc.gz"
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, body in (("https://example.org/good", gzip.compress(b"<p>zipped</p>")),
                          ("https://example.org/bad", b"this is not gzip at all"),
                          ("https://example.org/after", gzip.compress(b"<p>next</p>"))):
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"),
                                               ("Content-Encoding", "gzip")],
                                    protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), length=len(body), http_headers=http))
    stats = ReadStats()
    responses = list(iter_responses(path, stats))
    assert [r.payload for r in responses] == [b"<p>zipped</p>", b"this is not gzip at all",
                                              b"<p>next</p>"]
    assert not stats.skipped


def test_corrupt_record_is_skipped_with_a_warning_naming_file_and_offset(tmp_path, caplog):
    path = tmp_path / "flip.warc.gz"
    places = _write(path)
    blob = bytearray(path.read_bytes())
    offset, length = places[2]
    for i in range(offset + length // 2, offset + length // 2 + 8):
        blob[i] ^= 0xFF
    path.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="crawl2chat.crawl"):
        urls, stats = _read(path)
    assert urls == [f"https://example.org/{i}" for i in (0, 1, 3, 4)]
    assert stats.skipped == {"corrupt": 1}
    assert f"{path}: corrupt data at offset {offset}" in caplog.text


def test_truncated_file_keeps_the_whole_records_and_counts_the_rest(tmp_path, caplog):
    path = tmp_path / "cut.warc.gz"
    places = _write(path)
    offset, length = places[4]
    path.write_bytes(path.read_bytes()[:offset + length // 2])
    with caplog.at_level(logging.WARNING, logger="crawl2chat.crawl"):
        urls, stats = _read(path)
    assert urls == [f"https://example.org/{i}" for i in range(4)]
    assert stats.skipped == {"truncated": 1}
    assert str(path) in caplog.text and str(offset) in caplog.text


def test_payload_that_fails_its_digest_is_skipped(tmp_path):
    packed = tmp_path / "packed.warc.gz"
    _write(packed, 2)
    plain = tmp_path / "plain.warc"  # same length, one byte changed: only the digest can tell
    plain.write_bytes(gzip.decompress(packed.read_bytes()).replace(b"page 0 lorem",
                                                                    b"page 0 LOREM"))
    urls, stats = _read(plain)
    assert urls == ["https://example.org/1"]
    assert stats.skipped == {"digest_mismatch": 1}


@pytest.mark.parametrize(("blob", "reason"), [
    (b"this is not a WARC file\n" * 20, "corrupt"),
    (gzip.compress(b"not a warc inside a gzip\n" * 20), "corrupt"),
])
def test_a_file_that_is_not_a_warc_is_a_skip_not_a_crash(tmp_path, blob, reason):
    path = tmp_path / "junk.warc.gz"
    path.write_bytes(blob)
    urls, stats = _read(path)
    assert urls == []
    assert stats.skipped == {reason: 1}


def test_single_gzip_stream_is_reported_with_its_fix(tmp_path, caplog):
    path = tmp_path / "whole.warc.gz"
    _write(path, 3)
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())))
    with caplog.at_level(logging.WARNING, logger="crawl2chat.crawl"):
        urls, stats = _read(path)
    assert urls == ["https://example.org/0"]
    assert stats.skipped == {"not_chunked_gzip": 1}
    assert "warcio recompress" in caplog.text


def test_empty_file_yields_nothing(tmp_path):
    path = tmp_path / "empty.warc.gz"
    path.write_bytes(b"")
    assert _read(path) == ([], ReadStats())


def _encoded_warc(path: Path, bodies: list[tuple[str, bytes, list[tuple[str, str]]]]) -> None:
    """Response records whose payloads are stored as sent (compressed, chunked)."""
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, body, headers in bodies:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), *headers],
                                    protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), length=len(body), http_headers=http))


def _chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


BOMB = 30_000_000  # zero bytes; compressed they are a few kB


@pytest.mark.parametrize(("encoding", "compress"), [
    ("gzip", gzip.compress), ("deflate", zlib.compress),
    ("br", lambda data: brotli.compress(data, quality=4))])
@pytest.mark.parametrize("chunked", [False, True])
def test_a_decompression_bomb_is_a_counted_skip_in_bounded_memory(tmp_path, encoding, compress,
                                                                  chunked):
    bomb = compress(bytes(BOMB))
    headers = [("Content-Encoding", encoding)]
    if chunked:
        bomb, headers = _chunked(bomb), [*headers, ("Transfer-Encoding", "chunked")]
    path = tmp_path / "bomb.warc.gz"
    _encoded_warc(path, [("https://example.org/bomb", bomb, headers),
                         ("https://example.org/after", compress(b"<p>next</p>"), headers[:1])])
    stats = ReadStats()
    tracemalloc.start()
    try:
        responses = list(iter_responses(path, stats, max_payload_bytes=1_000_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.url for r in responses] == ["https://example.org/after"]
    assert responses[0].payload == b"<p>next</p>"
    assert stats.skipped == {"payload_too_large": 1} and stats.records == 2
    assert peak < 8_000_000  # the cap and a few blocks, never the 30 MB the bomb expands to


def test_payloads_under_the_cap_decode_whole(tmp_path):
    text = b"<p>" + b"word " * 50_000 + b"</p>"
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    bare = raw_deflate.compress(text) + raw_deflate.flush()
    path = tmp_path / "ok.warc.gz"
    _encoded_warc(path, [
        ("https://example.org/br", _chunked(brotli.compress(text)),
         [("Content-Encoding", "br"), ("Transfer-Encoding", "chunked")]),
        ("https://example.org/bare-deflate", bare, [("Content-Encoding", "deflate")]),
        ("https://example.org/plain", text, []),
        ("https://example.org/big-plain", text, []),
        ("https://example.org/not-chunked", text, [("Transfer-Encoding", "chunked")])])
    stats = ReadStats()
    responses = list(iter_responses(path, stats, max_payload_bytes=len(text)))
    assert [r.payload for r in responses] == [text] * 5
    assert not stats.skipped
    stats = ReadStats()
    assert list(iter_responses(path, stats, max_payload_bytes=len(text) - 1)) == []
    assert stats.skipped == {"payload_too_large": 5}
