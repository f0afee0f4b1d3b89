"""What a crawl may do, and what it did.

In: ``crawl.crawler`` of the config. Out: :class:`CrawlerSettings` (seeds, limits,
pacing, the networks allowed though not global), checked when built, and
:class:`CrawlStats`, the crawler's account of what it fetched, skipped and refused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crawl2chat.crawl.links import BadUrl, normalize
from crawl2chat.crawl.politeness import allowed_networks
from crawl2chat.errors import ConfigError

USER_AGENT = "crawl2chat/0.1 (research crawler for language-model data; obeys robots.txt)"


@dataclass
class CrawlerSettings:
    """``crawl.crawler`` in the config: where to start and how far and fast to go."""

    seeds: list[str] = field(default_factory=list)
    max_depth: int = 2  # links followed from a seed (seed = depth 0)
    max_pages: int = 100  # URLs requested from the frontier (redirect hops not counted)
    allowed_domains: list[str] = field(default_factory=list)  # empty: the seeds' hosts
    delay_s: float = 1.0  # minimum seconds between two requests to one host
    timeout_s: float = 10.0  # connect / wait-for-data limit per request
    request_deadline_s: float = 30.0  # wall-clock limit of one request, headers and body
    max_crawl_delay_s: float = 30.0  # hosts whose robots.txt asks for more are skipped
    max_duration_s: float = 3600.0  # no URL is started after this many seconds of crawl
    allow_private: list[str] = field(default_factory=list)  # networks crawled though not global
    user_agent: str = USER_AGENT
    max_redirects: int = 5
    max_bytes: int = 5_000_000  # larger bodies are dropped as too_large
    blocklist: bool = True  # check URLs against FineWeb's blocklist before fetching
    blocked_domains: list[str] = field(default_factory=list)  # added to the blocklist

    def __post_init__(self) -> None:
        for seed in self.seeds:
            try:
                ok = urlsplit(normalize(seed)).scheme in ("http", "https")
            except BadUrl:
                ok = False
            if not ok:
                raise ConfigError(f"crawl.crawler.seeds: not an http(s) URL: {seed!r}")
        for name in ("max_depth", "max_redirects"):
            if getattr(self, name) < 0:
                raise ConfigError(f"crawl.crawler.{name}: must be >= 0")
        for name in ("max_pages", "max_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"crawl.crawler.{name}: must be >= 1")
        if self.delay_s < 0 or self.timeout_s <= 0:
            raise ConfigError("crawl.crawler: delay_s must be >= 0 and timeout_s > 0")
        for name in ("request_deadline_s", "max_crawl_delay_s", "max_duration_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"crawl.crawler.{name}: must be > 0")
        try:
            allowed_networks(self.allow_private, "crawl.crawler.allow_private")
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if not self.user_agent.strip():
            raise ConfigError("crawl.crawler.user_agent: must name the crawler")

    def domains(self) -> list[str]:
        """The allowed domains, lower case, in IDNA ASCII form (as normalised URLs have
        them); the seeds' hosts when none are configured."""
        chosen = self.allowed_domains or [urlsplit(s).hostname or "" for s in self.seeds]
        return sorted({_ascii(d.lower().strip(".")) for d in chosen if d})


@dataclass
class CrawlStats:
    """What a crawl did. ``requested``: every URL a request went to, in order."""

    requested: list[str] = field(default_factory=list)
    pages: int = 0  # frontier URLs that got at least one request
    stored: int = 0  # 2xx HTML responses written
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> URLs
    refused: list[tuple[str, str]] = field(default_factory=list)  # (url, why), never requested
    redirects: list[tuple[str, str, int]] = field(default_factory=list)  # (from, to, status)
    robots: dict[str, int | None] = field(default_factory=dict)  # origin -> robots.txt status
    waited_s: float = 0.0  # time spent pacing
    out_of_time: int = 0  # frontier URLs left when max_duration_s ran out


def _ascii(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:  # not a valid name: no normalised URL will match it anyway
        return domain
