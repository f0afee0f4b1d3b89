"""The polite crawler against a real HTTP server on 127.0.0.1 (no other traffic)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from fastwarc.warc import ArchiveIterator as FastIterator
from fastwarc.warc import WarcRecordType
from warcio.archiveiterator import ArchiveIterator

from crawl2chat.config import build
from crawl2chat.crawl.crawler import Crawler
from crawl2chat.crawl.index import INDEX_COLUMNS
from crawl2chat.crawl.links import extract_links
from crawl2chat.crawl.politeness import Refused, allowed_networks, resolve_public
from crawl2chat.crawl.settings import CrawlerSettings
from crawl2chat.errors import ConfigError
from crawl2chat.stages import crawl

SLOW_S = 1.5  # the slow page answers after this long; the crawler's timeout is shorter
TIMEOUT_S = 0.4
DELAY_S = 0.15


def _html(title: str, *links: str) -> bytes:
    anchors = "".join(f"<a href='{href}'>{href}</a> " for href in links)
    return (f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
            f"<p>Some text about {title}.</p>{anchors}</body></html>").encode()


PAGES: dict[str, tuple[int, str, bytes]] = {
    "/robots.txt": (200, "text/plain", b"User-agent: *\nDisallow: /private/\n"),
    "/": (200, "text/html; charset=utf-8",
          _html("home", "/a", "/private/secret", "/old", "/missing", "/slow", "/logo.png",
                "http://offsite.example/page", "http://localhost:{port}/blocked",
                "/a#again", "mailto:someone@example.org")),
    "/a": (200, "text/html", _html("a", "/a/deep", "/")),
    "/a/deep": (200, "text/html", _html("deep", "/a/deep/deeper")),  # depth 2: not followed
    "/a/deep/deeper": (200, "text/html", _html("deeper")),
    "/b": (200, "text/html", _html("b")),
    "/private/secret": (200, "text/html", _html("secret")),
    "/blocked": (200, "text/html", _html("blocked")),
    "/logo.png": (200, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(2048)),
}


class _Handler(BaseHTTPRequestHandler):
    log: list[tuple[float, str]]  # (monotonic time, path) of every request, set per server

    def do_GET(self) -> None:
        self.log.append((time.monotonic(), self.path))
        port = self.server.server_address[1]
        if self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/b")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(SLOW_S)
        status, ctype, body = PAGES.get(self.path, (404, "text/html", _html("not found")))
        body = body.replace(b"{port}", str(port).encode())
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the crawler hung up on the slow page already
            pass

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test keeps its own log."""


@pytest.fixture()
def server() -> Iterator[tuple[str, list[tuple[float, str]]]]:
    log: list[tuple[float, str]] = []
    handler = type("Handler", (_Handler,), {"log": log})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", log
    finally:
        httpd.shutdown()
        httpd.server_close()


def _settings(base: str, **extra: object) -> CrawlerSettings:
    values: dict[str, object] = {
        "seeds": [base + "/"], "max_depth": 2, "max_pages": 50,
        "allowed_domains": ["127.0.0.1", "localhost"], "delay_s": DELAY_S,
        "timeout_s": TIMEOUT_S, "allow_private": ["127.0.0.0/8"], "blocklist": False,
        "blocked_domains": ["localhost"]}
    values.update(extra)
    return CrawlerSettings(**values)  # type: ignore[arg-type]


def test_crawl_follows_the_rules(server: tuple[str, list[tuple[float, str]]],
                                 tmp_path: Path) -> None:
    base, log = server
    started = time.monotonic()
    stats = Crawler(_settings(base)).crawl(tmp_path / "crawl.warc.gz")
    elapsed = time.monotonic() - started

    expected = ["/robots.txt", "/", "/a", "/old", "/b", "/missing", "/slow", "/logo.png",
                "/a/deep"]
    assert stats.requested == [base + p for p in expected]
    assert [path for _, path in log] == expected  # server side: nothing else was asked for
    assert "/private/secret" not in {p for _, p in log}  # robots.txt disallow
    assert "/blocked" not in {p for _, p in log}  # blocklisted domain (localhost)
    assert "/a/deep/deeper" not in {p for _, p in log}  # beyond max_depth
    assert stats.skipped == {"robots": 1, "off_domain": 1, "blocklisted": 1, "status:404": 1,
                             "timeout": 1, "type:image/png": 1}
    assert stats.redirects == [(base + "/old", base + "/b", 301)]
    assert stats.stored == 4  # /, /a, /b, /a/deep
    assert stats.robots == {base: 200}
    # per-host pacing: request starts at least DELAY_S apart (timer slack of 10 ms)
    times = [t for t, _ in log]
    assert min(b - a for a, b in itertools.pairwise(times)) >= DELAY_S - 0.01
    assert elapsed < 10

    # the WARC: warcinfo, then request+response pairs that name each other
    pairs: dict[str, dict[str, object]] = {}
    types = []
    with (tmp_path / "crawl.warc.gz").open("rb") as fh:
        for record in ArchiveIterator(fh):
            types.append(record.rec_type)
            if record.rec_type == "warcinfo":
                continue
            uri = record.rec_headers.get_header("WARC-Target-URI")
            entry = pairs.setdefault(uri, {})
            entry[record.rec_type] = record.rec_headers.get_header("WARC-Record-ID")
            entry[record.rec_type + "_to"] = record.rec_headers.get_header("WARC-Concurrent-To")
            assert record.rec_headers.get_header("WARC-IP-Address") == "127.0.0.1"
            if record.rec_type == "response":
                entry["status"] = int(record.http_headers.get_statuscode())
                entry["body"] = record.content_stream().read()
            else:
                assert record.http_headers.protocol == "GET"
                assert "crawl2chat" in record.http_headers.get_header("User-Agent")
    assert types[0] == "warcinfo"
    assert types[1:] == ["request", "response"] * 7  # slow page and PNG left no record
    written = {uri.removeprefix(base): e["status"] for uri, e in pairs.items()}
    assert written == {"/robots.txt": 200, "/": 200, "/a": 200, "/old": 301, "/missing": 404,
                       "/b": 200, "/a/deep": 200}
    for entry in pairs.values():
        assert entry["request_to"] == entry["response"]
        assert entry["response_to"] == entry["request"]
    assert pairs[base + "/a"]["body"] == PAGES["/a"][2]

    # fastwarc reads the same file: same records, URIs and statuses
    with (tmp_path / "crawl.warc.gz").open("rb") as fh:
        fast = [(r.headers["WARC-Type"], r.headers["WARC-Target-URI"],
                 r.http_headers.status_code if r.record_type == WarcRecordType.response else None)
                for r in FastIterator(fh, parse_http=True,
                                      record_types=WarcRecordType.request
                                      | WarcRecordType.response)]
    assert len(fast) == 14
    assert {(u.removeprefix(base), code) for kind, u, code in fast
            if kind == "response"} == set(written.items())


def test_max_pages_bounds_the_crawl(server: tuple[str, list[tuple[float, str]]],
                                    tmp_path: Path) -> None:
    base, log = server
    stats = Crawler(_settings(base, max_pages=2, delay_s=0.0)).crawl(tmp_path / "c.warc.gz")
    assert stats.pages == 2
    assert [p for _, p in log] == ["/robots.txt", "/", "/a"]


def test_loopback_refused_without_allow_private(server: tuple[str, list[tuple[float, str]]],
                                                tmp_path: Path) -> None:
    base, log = server
    stats = Crawler(_settings(base, allow_private=[])).crawl(tmp_path / "c.warc.gz")
    assert log == []  # not even robots.txt: the address is checked before connecting
    assert stats.requested == [] and stats.skipped == {"private_address": 1}
    (url, why), = stats.refused
    assert url == base + "/"
    assert "127.0.0.1 (loopback)" in why and "allow_private" in why


@pytest.mark.parametrize(("host", "kind"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
    ("192.168.0.1", "private"), ("169.254.169.254", "link_local"), ("fe80::1", "link_local"),
    ("0.0.0.0", "unspecified"), ("::ffff:127.0.0.1", "loopback"),
    ("100.100.100.200", "shared"), ("100.64.0.1", "shared"), ("224.0.1.1", "multicast"),
    ("2002:a9fe:a9fe::1", "link_local via 169.254.169.254"),  # 6to4
    ("64:ff9b::a00:1", "private via 10.0.0.1"), ("::10.0.0.1", "private via 10.0.0.1"),
    ("64:ff9b:1::1", "nat64_local"), ("2001:db8::1", "private")])
def test_non_public_addresses_are_refused(host: str, kind: str) -> None:
    with pytest.raises(Refused, match=rf"\({kind}[ )]") as err:
        resolve_public(host, 80)
    assert err.value.reason == "private_address"
    assert resolve_public(host, 80, allowed_networks([host], "test")) == host


def test_public_literal_is_allowed() -> None:
    assert resolve_public("93.184.216.34", 80) == "93.184.216.34"  # resolves locally, no traffic


def test_links_are_normalised() -> None:
    html = (b"<base href='http://Example.ORG:80/dir/'><a href='x#top'>x</a>"
            b"<a href='/y' rel='nofollow'>y</a><a href='HTTPS://example.org:443/z?q=1'>z</a>"
            b"<a href='javascript:void(0)'>j</a><a href='x'>again</a>")
    assert extract_links(html, "http://example.org/") == (
        ["http://example.org/dir/x", "https://example.org/z?q=1"], [])
    assert extract_links(b"<meta name='robots' content='noindex, nofollow'><a href='/a'>a</a>",
                         "http://example.org/") == ([], [])


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        CrawlerSettings(seeds=["ftp://example.org/"])
    with pytest.raises(ConfigError, match="max_pages"):
        CrawlerSettings(max_pages=0)
    with pytest.raises(ConfigError, match="seeds"):
        build(crawl.Cfg, {"source": "crawler"}, "crawl")
    with pytest.raises(ConfigError, match="source"):
        build(crawl.Cfg, {"source": "ftp"}, "crawl")
    assert crawl.external_inputs(build(crawl.Cfg, {"source": "crawler", "crawler": {
        "seeds": ["https://example.org/"]}}, "crawl"), Path(".")) == []


def test_crawl_stage_with_crawler_source(server: tuple[str, list[tuple[float, str]]],
                                         tmp_path: Path) -> None:
    base, _ = server
    settings = {"seeds": [base + "/"], "max_depth": 1, "delay_s": 0.0, "timeout_s": TIMEOUT_S,
                "allow_private": ["127.0.0.0/8"], "blocklist": False}
    cfg = build(crawl.Cfg, {"source": "crawler", "crawler": settings,
                            "records_per_shard": 2}, "crawl")
    metrics = crawl.run(cfg, None, tmp_path)
    index = pd.read_parquet(tmp_path / crawl.INDEX)
    assert list(index.columns) == list(INDEX_COLUMNS)
    assert sorted(u.removeprefix(base) for u in index["url"]) == ["/", "/a", "/b"]
    assert set(index["warc_file"]) == {"crawl-00000.warc.gz", "crawl-00001.warc.gz"}
    assert set(index["source_file"]) == {"raw/crawler-00000.warc.gz"}
    assert metrics["records"] == 3 and metrics["crawl_requests"] == 8
    report = (tmp_path / "report.md").read_text()
    assert base + "/" in report and "timeout" in report
