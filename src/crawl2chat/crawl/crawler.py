"""A polite, single-threaded crawler from seed URLs into a standard WARC file.

In: :class:`CrawlerSettings` (seeds, limits, pacing) and an optional URL filter (the
FineWeb blocklist, see :func:`blocklist_filter`). Out: a WARC/1.1 file with one gzip
member per record: a ``warcinfo`` record, then a ``request`` + ``response`` pair for
every exchange (robots.txt, redirects, errors and HTML pages alike; the pair points at
each other with WARC-Concurrent-To and carries WARC-IP-Address), and
:class:`CrawlStats` saying what was fetched, skipped and refused, and why.

Every URL, seeds and redirect targets included, passes the same checks before a byte is
sent: it parses (links that do not are counted and skipped), http(s) only, inside the
allowed domains, not blocklisted, resolving only to global addresses (or to networks
``allow_private`` lists), allowed by the site's robots.txt, whose Crawl-delay is at
most ``max_crawl_delay_s``. The connection goes to the address that was checked.
Requests to one host are spaced by ``delay_s`` (or the site's Crawl-delay, if longer);
each request ends by ``request_deadline_s``, and the crawl stops taking URLs after
``max_duration_s``. Responses of a media type other than HTML are closed unread and
counted, not stored. Whatever goes wrong with one URL is counted and the crawl goes on.
"""

from __future__ import annotations

import io
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawl2chat.crawl.fetch import REDIRECTS, Exchange, FetchError, fetch
from crawl2chat.crawl.headers import HTML_TYPES
from crawl2chat.crawl.links import charset_of, extract_links, normalize
from crawl2chat.crawl.politeness import (
    HostPacer,
    Refused,
    Resolver,
    RobotsRules,
    allowed_networks,
    resolve_public,
)
from crawl2chat.crawl.settings import CrawlerSettings, CrawlStats
from crawl2chat.crawl.urlfilter import Blocklist, UrlFilter, listed_domains_under, load_blocklist

log = logging.getLogger("crawl2chat.crawler")


def blocklist_filter(settings: CrawlerSettings) -> Callable[[str], str | None] | None:
    """FineWeb's URL filter for the crawl's domains (and their sub-domains), or None."""
    if not settings.blocklist and not settings.blocked_domains:
        return None
    if settings.blocklist:
        domains = settings.domains()
        # the list is ~5 M domains: keep only entries at or under the allowed domains
        blocklist = load_blocklist(hosts=domains)
        blocklist.domains |= listed_domains_under(domains)
    else:
        blocklist = Blocklist()
    return UrlFilter(blocklist, extra_domains=settings.blocked_domains).check


class Crawler:
    """Breadth-first crawl of ``settings.seeds``; see the module docstring for the rules."""

    def __init__(self, settings: CrawlerSettings,
                 url_filter: Callable[[str], str | None] | None = None,
                 pacer: HostPacer | None = None, resolver: Resolver = socket.getaddrinfo,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.allow = allowed_networks(settings.allow_private, "crawl.crawler.allow_private")
        self.resolver = resolver  # DNS; tests give their own, since real DNS cannot be set
        self.clock = clock
        # the settings' blocklist always applies unless a caller brings its own filter
        self.url_filter = url_filter if url_filter is not None else blocklist_filter(settings)
        self.pacer = pacer or HostPacer(settings.delay_s)
        self.domains = settings.domains()
        self.stats = CrawlStats()
        self._robots: dict[str, RobotsRules] = {}
        self._writer: WARCWriter | None = None

    def crawl(self, warc_path: Path) -> CrawlStats:
        """Crawl into ``warc_path`` (created or replaced); return the statistics."""
        s = self.settings
        frontier = deque((normalize(seed), 0) for seed in s.seeds)  # checked in settings
        seen = {url for url, _ in frontier}
        with warc_path.open("wb") as fh:
            self._writer = WARCWriter(fh, gzip=True, warc_version="1.1")
            self._writer.write_record(self._writer.create_warcinfo_record(
                warc_path.name, {"software": "crawl2chat crawler", "http-header-user-agent":
                                 s.user_agent, "robots": "obey",
                                 "format": "WARC File Format 1.1"}))
            stop_at = self.clock() + s.max_duration_s
            while frontier and self.stats.pages < s.max_pages:
                if self.clock() >= stop_at:
                    self.stats.out_of_time = len(frontier)
                    self.stats.skipped["out_of_time"] += len(frontier)
                    log.warning("crawl.crawler.max_duration_s (%g s) spent; %d URLs left "
                                "unvisited", s.max_duration_s, len(frontier))
                    break
                url, depth = frontier.popleft()
                try:
                    self._visit(url, depth, seen, frontier)
                except Exception as err:  # one hostile page must not end the crawl
                    self.stats.skipped[f"error:{type(err).__name__}"] += 1
                    log.warning("crawl of %s failed, going on: %s: %s", url,
                                type(err).__name__, err)
        self._writer = None
        self.stats.waited_s = round(self.pacer.waited_s, 3)
        return self.stats

    def _visit(self, url: str, depth: int, seen: set[str],
               frontier: deque[tuple[str, int]]) -> None:
        """Check, fetch and store ``url``; queue its links if it is not too deep."""
        try:
            ip = self._check(url)
        except Refused as err:
            self._refuse(url, err)
            return
        self.stats.pages += 1
        exchange = self._follow(url, ip, seen)
        if exchange is None or depth >= self.settings.max_depth:
            return
        charset = charset_of(exchange.header("Content-Type") or "")
        links, bad = extract_links(exchange.body, exchange.url, charset)
        if bad:
            self.stats.skipped["bad_link"] += len(bad)
            log.info("%s: %d links that do not parse, e.g. %r", url, len(bad), bad[0][:100])
        for link in links:
            if link not in seen:
                seen.add(link)
                frontier.append((link, depth + 1))

    def _refuse(self, url: str, err: Refused) -> None:
        self.stats.skipped[err.reason] += 1
        self.stats.refused.append((url, str(err)))
        log.info("not fetched: %s (%s)", url, err)

    def _check(self, url: str) -> str:
        """The address to fetch ``url`` from, after every check; :class:`Refused` if any fails."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Refused("scheme", f"{url}: only http and https are crawled")
        host = (parts.hostname or "").lower()
        if not any(host == d or host.endswith("." + d) for d in self.domains):
            raise Refused("off_domain", f"{host} is outside {self.domains}")
        reason = self.url_filter(url) if self.url_filter else None
        if reason:
            raise Refused("blocklisted", f"{url} ({reason})")
        ip = self._resolve(url)
        rules = self._rules(url, ip)
        if rules.crawl_delay() > self.settings.max_crawl_delay_s:
            raise Refused("crawl_delay", f"{host} asks for {rules.crawl_delay():g} s between "
                          f"requests; crawl.crawler.max_crawl_delay_s is "
                          f"{self.settings.max_crawl_delay_s:g}")
        if not rules.allowed(url):
            raise Refused("robots", f"{url} is disallowed by robots.txt")
        return ip

    def _resolve(self, url: str) -> str:
        """The checked address of ``url``'s host (:class:`Refused` if it is not global)."""
        parts = urlsplit(url)
        return resolve_public(parts.hostname or "",
                              parts.port or (443 if parts.scheme == "https" else 80),
                              self.allow, self.resolver)

    def _rules(self, url: str, ip: str) -> RobotsRules:
        """The robots.txt rules of ``url``'s origin, fetched once per origin."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            status: int | None = None
            body = b""
            target, target_ip = f"{origin}/robots.txt", ip
            for _ in range(self.settings.max_redirects + 1):  # RFC 9309: follow >= 5 hops
                try:
                    exchange = self._exchange(target, target_ip, None)
                except FetchError:
                    break
                status, body = exchange.status, exchange.body
                location = exchange.header("Location")
                if status not in REDIRECTS or not location:
                    break
                try:  # each hop's address is checked like a new URL's
                    target = normalize(urljoin(target, location))
                    target_ip = self._resolve(target)
                except (Refused, ValueError):
                    status = None
                    break
            else:
                status = None  # too many hops: treat as unreachable
            rules = RobotsRules(self.settings.user_agent, status, body)
            self._robots[origin] = rules
            self.stats.robots[origin] = status
            if 0 < rules.crawl_delay() <= self.settings.max_crawl_delay_s:
                self.pacer.set_host_delay(parts.hostname or "", rules.crawl_delay())
        return self._robots[origin]

    def _follow(self, url: str, ip: str, seen: set[str]) -> Exchange | None:
        """Fetch ``url`` and its redirects; the final 2xx HTML exchange, else None."""
        for _ in range(self.settings.max_redirects + 1):
            try:
                exchange = self._exchange(url, ip, HTML_TYPES)
            except FetchError as err:
                self.stats.skipped[err.reason] += 1
                log.info("fetch failed: %s", err)
                return None
            location = exchange.header("Location")
            if exchange.status in REDIRECTS and location:
                try:
                    target = normalize(urljoin(url, location))
                except ValueError:
                    self.stats.skipped["bad_redirect"] += 1
                    log.info("%s redirects to %r, which does not parse", url, location[:100])
                    return None
                self.stats.redirects.append((url, target, exchange.status))
                if target in seen:  # fetched already or queued: do not fetch it twice
                    self.stats.skipped["redirect_to_seen"] += 1
                    return None
                seen.add(target)
                try:
                    ip = self._check(target)
                except Refused as err:
                    self._refuse(target, err)
                    return None
                url = target
                continue
            if not 200 <= exchange.status < 300:
                self.stats.skipped[f"status:{exchange.status}"] += 1
                return None
            if not exchange.body_read:
                self.stats.skipped[f"type:{exchange.mime_type or 'none'}"] += 1
                return None
            self.stats.stored += 1
            return exchange
        self.stats.skipped["too_many_redirects"] += 1
        return None

    def _exchange(self, url: str, ip: str, body_types: tuple[str, ...] | None) -> Exchange:
        """One paced request; the pair is written to the WARC unless the body went unread."""
        s = self.settings
        self.pacer.wait(urlsplit(url).hostname or "")
        self.stats.requested.append(url)
        exchange = fetch(url, ip, user_agent=s.user_agent, timeout_s=s.timeout_s,
                         deadline_s=s.request_deadline_s, max_bytes=s.max_bytes,
                         body_types=body_types)
        if exchange.body_read:
            self._write(exchange)
        return exchange

    def _write(self, ex: Exchange) -> None:
        assert self._writer is not None
        writer = self._writer
        # the body is stored as received minus chunking, so its length is the real one
        headers = [(k, v) for k, v in ex.headers
                   if k.lower() not in ("transfer-encoding", "content-length")]
        headers.append(("Content-Length", str(len(ex.body))))
        response = writer.create_warc_record(
            ex.url, "response", payload=io.BytesIO(ex.body), length=len(ex.body),
            http_headers=StatusAndHeaders(f"{ex.status} {ex.reason}", headers,
                                          protocol="HTTP/1.1"),
            warc_headers_dict={"WARC-IP-Address": ex.ip})
        response_id = response.rec_headers.get_header("WARC-Record-ID")
        request = writer.create_warc_record(
            ex.url, "request", payload=io.BytesIO(b""), length=0,
            http_headers=StatusAndHeaders(ex.request_line, list(ex.request_headers),
                                          is_http_request=True),
            warc_headers_dict={"WARC-IP-Address": ex.ip, "WARC-Concurrent-To": response_id})
        response.rec_headers.add_header("WARC-Concurrent-To",
                                        request.rec_headers.get_header("WARC-Record-ID"))
        writer.write_record(request)
        writer.write_record(response)
