"""The crawler against hostile servers: real HTTP servers on 127.0.0.x, nothing else.

Every connection the crawler opens goes through a spy on ``socket.create_connection``
that records the address and refuses anything outside 127.0.0.0/8, so no packet ever
leaves for 169.254.x or 100.x even if a check were missing: the tests assert that such
addresses were refused *before* a connection was tried. Real DNS cannot be set here, so
names are resolved by a resolver the test hands to the crawler (the only stand-in).
Each crawl runs in a thread with a time bound, so a hang fails the test instead of
holding the suite.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from crawl2chat.crawl import fetch as fetch_module
from crawl2chat.crawl.crawler import Crawler
from crawl2chat.crawl.links import normalize
from crawl2chat.crawl.settings import CrawlerSettings, CrawlStats

Route = Callable[[BaseHTTPRequestHandler, threading.Event], None]
BOUND_S = 15.0  # no crawl here may take longer; the hanging ones are cut far sooner


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"",
          ctype: str = "text/html; charset=utf-8", **headers: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        h.send_header(name.replace("_", "-"), value)
    h.end_headers()
    h.wfile.write(body)


def _page(*links: str) -> Route:
    body = ("<html><body><p>text</p>" + "".join(f"<a href='{u}'>l</a>" for u in links)
            + "</body></html>").encode()
    return lambda h, stop: _send(h, 200, body)


def _redirect(location: str) -> Route:
    return lambda h, stop: _send(h, 302, Location=location)


def _robots(text: str, status: int = 200) -> Route:
    return lambda h, stop: _send(h, status, text.encode(), "text/plain")


class Site:
    """One server: ``routes`` by path (404 otherwise); ``log`` the (Host, path) asked for."""

    def __init__(self, address: str) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, str]] = []
        self.stop = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.log.append((self.headers.get("Host", ""), self.path))
                route = site.routes.get(self.path, lambda h, stop: _send(h, 404, b"gone"))
                with contextlib.suppress(OSError):  # the crawler hung up, as it should
                    route(self, site.stop)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the site keeps its own log."""

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://{address}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()  # ends the endless routes
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def site() -> Iterator[Site]:
    s = Site("127.0.0.2")  # 127.0.0.1 is then a *different* address, refused in these tests
    yield s
    s.close()


@pytest.fixture()
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Addresses the crawler connected to; anything off loopback is stopped right here."""
    made: list[str] = []
    real = socket.create_connection

    def spy(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        made.append(address[0])
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"the crawler tried to connect to {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(fetch_module.socket, "create_connection", spy)
    return made


def _settings(site: Site, **extra: Any) -> CrawlerSettings:
    values: dict[str, Any] = {
        "seeds": [site.base + "/"], "max_depth": 3, "max_pages": 30, "delay_s": 0.0,
        "timeout_s": 0.5, "request_deadline_s": 1.5, "allow_private": ["127.0.0.2/32"],
        "allowed_domains": ["127.0.0.2"], "blocklist": False}
    values.update(extra)
    return CrawlerSettings(**values)


def _crawl(crawler: Crawler, path: Path, bound_s: float = BOUND_S) -> tuple[CrawlStats, float]:
    """Run the crawl in a thread; fail if it is not done within ``bound_s``."""
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["stats"] = crawler.crawl(path)
        except BaseException as err:  # handed to the test below
            out["error"] = err

    started = time.monotonic()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(bound_s)
    assert not thread.is_alive(), f"the crawl still ran after {bound_s:g} s"
    if "error" in out:
        raise out["error"]
    return out["stats"], time.monotonic() - started


def _drip(head: bytes, body: bytes, at_once: bytes = b"") -> Route:
    """``at_once``, then ``head`` and ``body`` (many times) a byte every 0.1 s: each byte
    well within the read timeout, the whole far beyond the request deadline."""
    def route(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        h.wfile.write(at_once)
        for byte in head + body * 1000:
            if stop.wait(0.1):
                return
            h.wfile.write(bytes([byte]))
    return route


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_dripping_server_is_cut_at_the_request_deadline(site: Site, connections: list[str],
                                                          tmp_path: Path, where: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
    site.routes["/"] = _drip(head, b"<p>") if where == "headers" else _drip(b"", b"<p>", head)
    stats, took = _crawl(Crawler(_settings(site)), tmp_path / "c.warc.gz")
    assert stats.skipped["deadline"] == 1 and stats.stored == 0
    assert took < 1.5 + 1.0  # the deadline (1.5 s) plus slack, never the drip's length


def test_an_endless_body_stops_at_max_bytes(site: Site, connections: list[str],
                                            tmp_path: Path) -> None:
    def endless(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.end_headers()  # no length: the body runs until the connection closes
        while not stop.is_set():
            h.wfile.write(b"<p>" + b"a" * 65536)

    site.routes["/"] = endless
    stats, _ = _crawl(Crawler(_settings(site, max_bytes=200_000)), tmp_path / "c.warc.gz")
    assert stats.skipped["too_large"] == 1 and stats.stored == 0


def test_redirect_loops_end(site: Site, connections: list[str], tmp_path: Path) -> None:
    site.routes["/"] = _page("/loop", "/chain/0")
    site.routes["/loop"] = _redirect("/loop-b")
    site.routes["/loop-b"] = _redirect("/loop")
    for i in range(20):  # every hop a new URL: only max_redirects stops it
        site.routes[f"/chain/{i}"] = _redirect(f"/chain/{i + 1}")
    stats, _ = _crawl(Crawler(_settings(site, max_redirects=3)), tmp_path / "c.warc.gz")
    assert stats.skipped["redirect_to_seen"] == 1
    assert stats.skipped["too_many_redirects"] == 1
    assert sum(1 for _, p in site.log if p.startswith("/chain/")) == 4  # the URL + 3 hops


INTERNAL = ["http://127.0.0.1:{port}/", "http://169.254.169.254/latest/meta-data/",
            "http://100.100.100.200/latest/meta-data/", "http://[::ffff:169.254.169.254]/",
            "http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b::a00:1]/"]


def test_redirects_to_internal_addresses_are_refused_before_connecting(
        site: Site, connections: list[str], tmp_path: Path) -> None:
    targets = [normalize(u.format(port=site.port)) for u in INTERNAL]
    site.routes["/"] = _page(*(f"/r{i}" for i in range(len(targets))))
    for i, target in enumerate(targets):
        site.routes[f"/r{i}"] = _redirect(target)
    hosts = ["127.0.0.2", "127.0.0.1", "169.254.169.254", "100.100.100.200",
             "::ffff:a9fe:a9fe", "2002:a9fe:a9fe::1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1"]
    stats, _ = _crawl(Crawler(_settings(site, allowed_domains=hosts)), tmp_path / "c.warc.gz")
    assert set(connections) == {"127.0.0.2"}  # the site only: every hop checked first
    refused = dict(stats.refused)
    assert sorted(refused) == sorted(targets)
    assert all(why.startswith("private_address") for why in refused.values())
    assert "(shared)" in refused[targets[2]]  # 100.64.0.0/10: not in the private list
    assert "link_local via 169.254.169.254" in refused[targets[4]]  # 6to4
    assert "private via 10.0.0.1" in refused[targets[6]]  # NAT64


def test_a_robots_txt_redirect_to_an_internal_address_is_not_followed(
        site: Site, connections: list[str], tmp_path: Path) -> None:
    site.routes["/robots.txt"] = _redirect("http://169.254.169.254/robots.txt")
    site.routes["/"] = _page()
    stats, _ = _crawl(Crawler(_settings(site, allowed_domains=["127.0.0.2", "169.254.169.254"])),
                      tmp_path / "c.warc.gz")
    assert set(connections) == {"127.0.0.2"}
    assert stats.robots == {site.base: None}  # unreachable rules: the site is off limits
    assert stats.skipped == {"robots": 1} and [p for _, p in site.log] == ["/robots.txt"]


def _resolver(table: dict[str, list[str]]) -> Callable[..., list[tuple[Any, ...]]]:
    """getaddrinfo for the names in ``table``; real DNS cannot be set in a test."""
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror(f"{host}: unknown in this test")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, port)) for ip in table[host]]
    return resolve


def test_a_name_resolving_to_a_private_address_is_refused(site: Site, connections: list[str],
                                                          tmp_path: Path) -> None:
    names = ["intranet.example", "mixed.example", "metadata.example"]
    site.routes["/"] = _page(*(f"http://{n}:{site.port}/" for n in names))
    resolver = _resolver({"127.0.0.2": ["127.0.0.2"], "intranet.example": ["10.1.2.3"],
                          "mixed.example": ["93.184.216.34", "127.0.0.1"],
                          "metadata.example": ["100.100.100.200"]})
    settings = _settings(site, allowed_domains=["127.0.0.2", "example"])
    stats, _ = _crawl(Crawler(settings, resolver=resolver), tmp_path / "c.warc.gz")
    assert set(connections) == {"127.0.0.2"}
    assert sorted(u for u, _ in stats.refused) == sorted(
        f"http://{n}:{site.port}/" for n in names)
    assert stats.skipped == {"private_address": 3}


def test_the_connection_goes_to_the_checked_address_with_the_name_in_host(
        site: Site, connections: list[str], tmp_path: Path) -> None:
    answers = iter([["127.0.0.2"]] + [["10.0.0.1"]] * 10)  # a rebinding DNS server

    def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in next(answers)]

    site.routes["/"] = _page()
    url = f"http://www.site.example:{site.port}/"
    stats, _ = _crawl(Crawler(_settings(site, seeds=[url], allowed_domains=["site.example"]),
                              resolver=rebinding), tmp_path / "c.warc.gz")
    # robots.txt and the page: two requests, one name resolution, both to the checked IP
    assert connections == ["127.0.0.2", "127.0.0.2"] and stats.stored == 1
    assert site.log == [(f"www.site.example:{site.port}", "/robots.txt"),
                        (f"www.site.example:{site.port}", "/")]


def test_a_huge_crawl_delay_skips_the_host(site: Site, connections: list[str],
                                           tmp_path: Path) -> None:
    site.routes["/robots.txt"] = _robots("User-agent: *\nCrawl-delay: 86400\n")
    site.routes["/"] = _page("/a")
    stats, took = _crawl(Crawler(_settings(site, max_crawl_delay_s=5)), tmp_path / "c.warc.gz")
    assert stats.skipped == {"crawl_delay": 1} and took < 5
    assert [p for _, p in site.log] == ["/robots.txt"]


def test_a_crawl_delay_under_the_cap_is_kept(site: Site, connections: list[str],
                                             tmp_path: Path) -> None:
    site.routes["/robots.txt"] = _robots("User-agent: *\nCrawl-delay: 1\n")  # whole seconds
    site.routes["/"] = _page()
    stats, _ = _crawl(Crawler(_settings(site, max_crawl_delay_s=5)), tmp_path / "c.warc.gz")
    assert stats.stored == 1 and stats.waited_s >= 0.95  # robots.txt, 1 s, then the page


def test_max_duration_stops_the_crawl(site: Site, connections: list[str],
                                      tmp_path: Path) -> None:
    site.routes["/"] = _page(*(f"/p{i}" for i in range(50)))
    for i in range(50):
        site.routes[f"/p{i}"] = _page()
    stats, took = _crawl(Crawler(_settings(site, delay_s=0.2, max_duration_s=1.0,
                                           max_pages=100)), tmp_path / "c.warc.gz")
    assert 0 < stats.out_of_time == stats.skipped["out_of_time"] < 50
    assert took < 1.0 + 1.0  # the budget plus one paced request


@pytest.mark.parametrize("robots", ["500", "timeout"])
def test_robots_txt_that_fails_puts_the_site_off_limits(site: Site, connections: list[str],
                                                        tmp_path: Path, robots: str) -> None:
    def slow(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        stop.wait(3)
    site.routes["/robots.txt"] = _robots("oops", 500) if robots == "500" else slow
    site.routes["/"] = _page()
    stats, _ = _crawl(Crawler(_settings(site)), tmp_path / "c.warc.gz")
    assert stats.robots == {site.base: 500 if robots == "500" else None}
    assert stats.skipped == {"robots": 1} and [p for _, p in site.log] == ["/robots.txt"]


def test_bad_links_are_counted_and_the_crawl_goes_on(site: Site, connections: list[str],
                                                     tmp_path: Path) -> None:
    site.routes["/"] = _page("http://a.com:99999/", "http://[::1", "/ä ö?q=ü", "/bad-redirect",
                             "http://bücher.example/", "/next")
    site.routes["/%C3%A4%20%C3%B6?q=%C3%BC"] = _page()
    site.routes["/bad-redirect"] = _redirect("http://127.0.0.2:70000/")
    site.routes["/next"] = _page()
    stats, _ = _crawl(Crawler(_settings(site)), tmp_path / "c.warc.gz")
    paths = [p for _, p in site.log]
    assert "/%C3%A4%20%C3%B6?q=%C3%BC" in paths and "/next" in paths  # encoded, then fetched
    assert stats.skipped["bad_link"] == 2 and stats.skipped["bad_redirect"] == 1
    assert ("http://xn--bcher-kva.example/",
            "off_domain: xn--bcher-kva.example is outside ['127.0.0.2']") in stats.refused
    assert stats.stored == 3 and (tmp_path / "c.warc.gz").stat().st_size > 0


def test_an_error_on_one_url_is_counted_and_the_crawl_goes_on(
        site: Site, connections: list[str], tmp_path: Path) -> None:
    site.routes["/"] = _page("/boom", "/fine")
    site.routes["/fine"] = _page()

    def url_filter(url: str) -> str | None:
        if url.endswith("/boom"):
            raise RuntimeError("a filter that breaks on one URL")
        return None

    stats, _ = _crawl(Crawler(_settings(site), url_filter=url_filter), tmp_path / "c.warc.gz")
    assert stats.skipped["error:RuntimeError"] == 1 and stats.stored == 2


@pytest.mark.parametrize("bad", [["10.0.0.0/33"], ["not-a-network"]])
def test_allow_private_must_name_networks(bad: list[str]) -> None:
    from crawl2chat.errors import ConfigError

    with pytest.raises(ConfigError, match="allow_private"):
        CrawlerSettings(allow_private=bad)


@pytest.mark.parametrize("seed", ["http://a.com:99999/", "http://[::1"])
def test_a_seed_that_does_not_parse_is_a_config_error(seed: str) -> None:
    from crawl2chat.errors import ConfigError

    with pytest.raises(ConfigError, match="seeds"):
        CrawlerSettings(seeds=[seed])
