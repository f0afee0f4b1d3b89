"""Common Crawl by crawl id, and remote WARCs streamed over HTTP with retries and resumes.

A real HTTP server on 127.0.0.1 serves a crawl's ``warc.paths.gz`` and its WARCs (a
warcinfo record, then responses, one gzip member each, as Common Crawl writes them). It
can answer 500 a number of times, or drop the connection after some bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import http_server
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawl2chat.crawl.commoncrawl import CommonCrawlCfg, pick, pick_sources
from crawl2chat.crawl.http_stream import HttpCfg, HttpStream, StreamFailed
from crawl2chat.crawl.warc import ReadStats, WarcShardWriter, iter_responses
from crawl2chat.crawl.warc_stream import iter_stream_responses
from crawl2chat.errors import ConfigError, InputError
from crawl2chat.parallel import RunnerCfg
from crawl2chat.stages import crawl, text
from crawl2chat.text.shards import read_frame

CRAWL = "CC-MAIN-2024-10"
FAST = HttpCfg(retries=3, backoff_s=0.01, max_backoff_s=0.02, timeout_s=5)


def _warc(n: int, records: int = 4) -> bytes:
    """A Common Crawl-like WARC: warcinfo naming the crawl, then ``records`` responses."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version="1.0")
    writer.write_record(writer.create_warcinfo_record(
        f"file-{n}.warc.gz", {"isPartOf": CRAWL, "operator": "Common Crawl Admin"}))
    for i in range(records):
        body = (f"<html><body><p>file {n} page {i} " + "words " * 300 + "</p></body></html>"
                ).encode()
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                              ("Content-Length", str(len(body)))],
                                   protocol="HTTP/1.1")
        record = writer.create_warc_record(
            f"https://site{n}.example/{i}", "response", payload=io.BytesIO(body),
            length=len(body), http_headers=headers,
            warc_headers_dict={"WARC-Date": f"2024-02-2{n % 10}T10:00:0{i}Z"})
        writer.write_record(record)
    return out.getvalue()


class Server:
    """Serves ``files`` (URL path -> bytes) with Range support, and misbehaves on cue:
    ``fail[path]`` answers 500 that many times, ``drop[path]`` sends that many bytes of
    the next answer and then closes the connection, ``no_resume`` paths answer every
    Range request with 500. ``requests`` logs (path, Range)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.fail: dict[str, int] = {}
        self.drop: dict[str, list[int]] = {}
        self.no_resume: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        with http_server(self._handler()) as host:
            yield f"http://{host}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                span = self.headers.get("Range")
                owner.requests.append((self.path, span))
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                if owner.fail.get(self.path, 0) > 0 or (span and self.path in owner.no_resume):
                    owner.fail[self.path] = max(0, owner.fail.get(self.path, 0) - 1)
                    self.send_error(500)
                    return
                start = int(span.removeprefix("bytes=").split("-")[0]) if span else 0
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cuts = owner.drop.get(self.path)
                if cuts:
                    self.wfile.write(body[:cuts.pop(0)])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


def _paths(names: list[str]) -> bytes:
    return gzip.compress("".join(f"{n}\n" for n in names).encode())


@pytest.fixture
def cc() -> Server:
    """A crawl of 5 WARC files and its gzipped paths file, as data.commoncrawl.org lays
    them out."""
    names = [f"crawl-data/{CRAWL}/segments/1/warc/file-{n}.warc.gz" for n in range(5)]
    files = {f"/{name}": _warc(n) for n, name in enumerate(names)}
    files[f"/crawl-data/{CRAWL}/warc.paths.gz"] = _paths(names)
    return Server(files)


def test_pick_is_seeded_and_keeps_list_order():
    paths = [f"p{i:02d}" for i in range(30)]
    first = pick(paths, 4, seed=0)
    assert first == pick(list(reversed(paths)), 4, seed=0)[::-1] == sorted(first)
    assert len(set(first)) == 4 and pick(paths, 4, seed=1) != first
    with pytest.raises(InputError, match="5 asked, the crawl lists 4"):
        pick(paths[:4], 5, seed=0)


def test_common_crawl_config_names_its_fields():
    with pytest.raises(ConfigError, match=r"crawl\.common_crawl\.crawl"):
        CommonCrawlCfg(crawl="CC-2024")
    with pytest.raises(ConfigError, match=r"crawl\.common_crawl\.crawl"):
        crawl.Cfg(source="common_crawl")
    with pytest.raises(ConfigError, match=r"crawl\.common_crawl\.files"):
        CommonCrawlCfg(crawl=CRAWL, files=0)


def test_common_crawl_by_id_streams_the_picked_files(cc, tmp_path):
    with cc.running() as base:
        cfg = crawl.Cfg(source="common_crawl", http=FAST,
                        common_crawl=CommonCrawlCfg(crawl=CRAWL, files=2, seed=3,
                                                    base_url=base + "/"))
        picked, _ = pick_sources(cfg.common_crawl, tmp_path, FAST)
        metrics = crawl.run(crawl.resolve(cfg, tmp_path), None, tmp_path)
    urls = [s.url for s in picked]
    assert len(urls) == 2 and all(u.startswith(f"{base}/crawl-data/{CRAWL}/") for u in urls)
    index = pd.read_parquet(tmp_path / crawl.INDEX)
    assert metrics["records"] == 8 and metrics["source_files_unreachable"] == 0
    assert set(index["source_file"]) == set(urls)
    assert set(index["dump"]) == {CRAWL}  # from each file's warcinfo
    assert index["date"].str.match(r"2024-02-2\dT10:00:0\dZ").all()
    read = json.loads((tmp_path / crawl.SOURCES_FILE).read_text())
    assert read[0]["role"] == "paths" and read[0]["kind"] == "url"
    for row in read[1:]:
        blob = cc.files[row["source"].removeprefix(base)]
        assert (row["bytes"], row["sha256"], row["complete"], row["dump"]) == (
            len(blob), hashlib.sha256(blob).hexdigest(), True, CRAWL)
    # the manifest records every remote file read, by URL and sha256
    assert set(crawl.discovered_inputs(tmp_path)) == {
        f"{base}/crawl-data/{CRAWL}/warc.paths.gz", *urls}
    # each file was fetched once, whole: no temporary copy, no second pass
    assert sorted(p for p, _ in cc.requests if p.endswith(".warc.gz")) == sorted(
        u.removeprefix(base) for u in urls)


def test_a_local_paths_file_is_an_external_input(cc, tmp_path):
    paths_file = tmp_path / "warc.paths.gz"
    paths_file.write_bytes(cc.files[f"/crawl-data/{CRAWL}/warc.paths.gz"])
    cfg = crawl.Cfg(source="common_crawl", common_crawl=CommonCrawlCfg(
        crawl=CRAWL, files=5, paths_url="warc.paths.gz"))
    assert crawl.external_inputs(cfg, tmp_path) == [paths_file]


def test_server_errors_are_retried_with_backoff(cc, tmp_path):
    name = f"/crawl-data/{CRAWL}/segments/1/warc/file-0.warc.gz"
    cc.fail[name] = 3  # as many as the retries allow
    with cc.running() as base, HttpStream(base + name, FAST) as stream:
        assert stream.read() == cc.files[name]
    assert [p for p, _ in cc.requests].count(name) == 4 and stream.reconnects == 3
    cc.fail[name] = 4  # one more than that: given up, with what it saw
    with (cc.running() as base, HttpStream(base + name, FAST) as stream,
          pytest.raises(StreamFailed, match="gave up after 4 failed requests: HTTP 500")):
        stream.read()


def test_a_dropped_connection_resumes_with_a_range_request(cc):
    name = f"/crawl-data/{CRAWL}/segments/1/warc/file-1.warc.gz"
    blob = cc.files[name]
    cc.drop[name] = [len(blob) // 3, 100]  # two drops, then the rest
    with cc.running() as base, HttpStream(base + name, FAST) as stream:
        stats = ReadStats()
        got = [(r.url, r.offset) for r in iter_stream_responses(stream, stats, name=name)]
    assert cc.requests == [(name, None), (name, f"bytes={len(blob) // 3}-"),
                           (name, f"bytes={len(blob) // 3 + 100}-")]
    expected = [(r.url, r.offset) for r in iter_responses(io.BytesIO(blob), ReadStats())]
    assert got == expected and len(got) == 4 and not stats.skipped


def test_a_file_that_keeps_failing_is_a_counted_skip_keeping_what_was_read(cc, tmp_path):
    names = sorted(p for p in cc.files if p.endswith(".warc.gz"))[:3]
    bad = names[1]
    cc.drop[bad] = [len(cc.files[bad]) // 2]
    cc.no_resume.add(bad)  # after the drop every request for the rest fails
    with cc.running() as base:
        cfg = crawl.Cfg(sources=[base + n for n in names], http=FAST)
        metrics = crawl.run(cfg, None, tmp_path)
    index = pd.read_parquet(tmp_path / crawl.INDEX)
    per_file = index["source_file"].value_counts().to_dict()
    read = {Path(r["source"]).name: r for r in json.loads(
        (tmp_path / crawl.SOURCES_FILE).read_text())}
    assert metrics["source_files_unreachable"] == 1
    assert per_file[base + names[0]] == per_file[base + names[2]] == 4
    assert 0 < per_file[base + bad] < 4  # the records before the drop are kept
    assert [p for p, _ in cc.requests].count(bad) == 1 + FAST.retries  # the drop, retries
    assert read["file-1.warc.gz"]["complete"] is False
    assert read["file-0.warc.gz"]["complete"] is True
    assert "| damaged:unreachable | 1 |" in (tmp_path / "report.md").read_text()


def test_a_missing_remote_file_is_an_input_error(cc, tmp_path):
    with cc.running() as base:
        with pytest.raises(InputError, match=r"cannot read .*/nothing\.warc\.gz: HTTP 404"):
            crawl.run(crawl.Cfg(sources=[base + "/nothing.warc.gz"], http=FAST), None,
                      tmp_path)
        cfg = CommonCrawlCfg(crawl=CRAWL, base_url=base, paths_url=base + "/none.paths.gz")
        with pytest.raises(InputError, match=r"none\.paths\.gz: HTTP 404"):
            pick_sources(cfg, tmp_path, FAST)


class Trickle(io.RawIOBase):
    """``data`` handed out 97 bytes at a time: headers and members straddle reads."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data, self.at = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        piece = self.data[self.at:self.at + min(97, len(buffer))]
        buffer[:len(piece)] = piece
        self.at += len(piece)
        return len(piece)


def test_the_stream_reader_agrees_with_the_file_reader_on_damage(tmp_path):
    blob = bytearray(_warc(7, records=5))
    # break the third response's member in its middle
    members = [m for m in range(len(blob)) if blob[m:m + 3] == b"\x1f\x8b\x08"]
    middle = (members[3] + members[4]) // 2
    blob[middle:middle + 8] = b"\x00" * 8
    local, streamed = ReadStats(), ReadStats()
    from_file = [(r.url, r.offset, r.payload) for r in iter_responses(io.BytesIO(bytes(blob)),
                                                                     local)]
    from_stream = [(r.url, r.offset, r.payload) for r in iter_stream_responses(
        Trickle(bytes(blob)), streamed, name="x")]
    assert from_stream == from_file and len(from_file) == 4
    assert streamed.skipped == local.skipped and streamed.skipped["corrupt"] == 1
    # a plain (uncompressed) WARC streams too
    plain = b"".join(gzip.decompress(bytes(blob[a:b])) for a, b in
                     zip(members, [*members[1:], len(blob)], strict=True) if a != members[3])
    assert len(list(iter_stream_responses(Trickle(plain), ReadStats(), name="p"))) == 4


def test_dump_and_date_reach_the_text_stages_documents(tmp_path):
    """A local WARC opening with a warcinfo keeps its crawl id; one without has none."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cc.warc.gz").write_bytes(_warc(1, records=2))
    with WarcShardWriter(tmp_path / "in" / "own.warc.gz") as writer:
        writer.write("https://own.example/a", b"<html><body><p>" + b"own words " * 60
                     + b"</p></body></html>", date="2024-06-01T00:00:00Z")
    (tmp_path / "crawl").mkdir()
    (tmp_path / "text").mkdir()
    crawl.run(crawl.Cfg(sources=[str(tmp_path / "in" / "*.warc.gz")]), None, tmp_path / "crawl")
    index = pd.read_parquet(tmp_path / "crawl" / crawl.INDEX)
    assert dict(zip(index["url"], index["dump"], strict=True)) == {
        "https://site1.example/0": CRAWL, "https://site1.example/1": CRAWL,
        "https://own.example/a": ""}
    # only the steps that need no prose: the pages are word lists
    cfg = text.Cfg(runner=RunnerCfg("threads", 1), min_chars=10, skip_steps=[
        "lang", "gopher_rep", "gopher_quality", "c4", "fineweb", "mix", "pii"])
    text.run(cfg, tmp_path / "crawl", tmp_path / "text")
    docs = read_frame(tmp_path / "text").set_index("url")
    assert docs.loc["https://site1.example/1", ["dump", "date"]].tolist() == [
        CRAWL, "2024-02-21T10:00:01Z"]
    assert docs.loc["https://own.example/a", ["dump", "date"]].tolist() == [
        "", "2024-06-01T00:00:00Z"]


def test_a_crawl_stopped_early_records_the_part_it_read(tmp_path):
    """max_records stops the stream after 1 MiB of a larger file: no download of the rest,
    and sources.json fingerprints exactly the bytes read."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.warc.gz"
    with WarcShardWriter(path) as writer:
        for i in range(400):
            body = f"<html><body><p>{rng.bytes(3000).hex()}</p></body></html>".encode()
            writer.write(f"https://big.example/{i}", body)
    blob = path.read_bytes()
    assert len(blob) > 1 << 20
    server = Server({"/big.warc.gz": blob})
    with server.running() as base:
        cfg = crawl.Cfg(sources=[base + "/big.warc.gz"], max_records=3, http=FAST)
        (tmp_path / "out").mkdir()
        crawl.run(cfg, None, tmp_path / "out")
    [row] = json.loads((tmp_path / "out" / crawl.SOURCES_FILE).read_text())
    assert (row["complete"], row["bytes"]) == (False, 1 << 20)
    assert row["sha256"] == hashlib.sha256(blob[:1 << 20]).hexdigest()


def test_a_streamed_member_that_inflates_past_the_cap_is_a_counted_skip():
    """A gzip member of megabytes of zeros (a bomb) is passed over without being held
    whole; the records after it are still read."""
    good = _warc(1, records=2)
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version="1.0")
    body = b"\0" * (8 << 20)
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(
        "https://bomb.example/", "response", payload=io.BytesIO(body), length=len(body),
        http_headers=headers))
    bomb = out.getvalue()
    assert len(bomb) < 100_000  # it really is small on the wire
    stats = ReadStats()
    got = [r.url for r in iter_stream_responses(io.BytesIO(bomb + good), stats, name="x",
                                                max_payload_bytes=1 << 20)]
    assert got == ["https://site1.example/0", "https://site1.example/1"]
    assert stats.skipped["payload_too_large"] == 1
