"""URL filter: FineWeb's blocklist (UT1-derived domains and URLs) and banned URL words.

In: a URL. Out: None (keep) or why it is dropped: ``domain`` (the host or a parent
domain is listed), ``url`` (the exact URL is listed), ``banned_word`` (a hard-banned
word is a word of the URL), ``soft_banned`` (at least ``soft_word_threshold`` soft-banned
words), ``banned_subword`` (a banned sub-word occurs in the URL with punctuation
removed), ``blocked_extra`` (a domain from the config's ``extra_domains``).

The lists are the ones datatrove ships (``datatrove/assets``); they are read from the
installed package, never downloaded. Instead of the public-suffix list (which
``tldextract`` would fetch) every parent domain of the host is checked, which covers
datatrove's registered-domain and full-host checks. The domain list has ~5 million
entries; :func:`load_blocklist` can keep only those relevant to a known set of hosts,
so a stage that knows its URLs up front does not hold all of them in memory, and
:func:`listed_domains_under` streams the entries under given domains (for a crawler,
whose URLs are not known up front).
"""

from __future__ import annotations

import importlib.util
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from crawl2chat.errors import InputError

ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"
_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")


def assets_dir() -> Path:
    """``datatrove/assets`` of the installed datatrove package."""
    spec = importlib.util.find_spec("datatrove")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "assets" / ARCHIVE).is_file():
            return Path(folder) / "assets"
    raise InputError("datatrove's URL blocklist not found: pip install datatrove==0.10.1")


def parents(host: str) -> list[str]:
    """``a.b.example.org`` -> ``[a.b.example.org, b.example.org, example.org, org]``."""
    parts = host.lower().rstrip(".").split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def _words(name: str) -> set[str]:
    lines = (assets_dir() / name).read_text().splitlines()
    return {_NON_ALNUM.sub("", w).lower() for w in lines if w and not w.startswith("#")}


@dataclass
class Blocklist:
    """The lists the filter checks against (lower-case domains, exact URLs, words)."""

    domains: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)
    banned_words: set[str] = field(default_factory=set)
    soft_banned_words: set[str] = field(default_factory=set)
    banned_subwords: set[str] = field(default_factory=set)


def load_blocklist(hosts: Iterable[str] | None = None) -> Blocklist:
    """datatrove's lists; with ``hosts``, only the domain entries that could match them."""
    wanted = None if hosts is None else {p for h in hosts for p in parents(h)}
    domains: set[str] = set()
    urls: set[str] = set()
    with tarfile.open(assets_dir() / ARCHIVE, "r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is None:
                continue
            data = handle.read()
            if member.name.endswith("domains") and wanted is not None:
                # 4.5M entries: matching the few wanted names against the raw bytes takes
                # a quarter of the time of building the full set (domains are ASCII/IDNA,
                # so bytes.lower() is enough)
                found = {w.encode() for w in wanted}.intersection(data.lower().split())
                domains = {d.decode() for d in found}
                continue
            lines = data.decode("utf-8", "replace").split("\n")
            if member.name.endswith("domains"):
                domains = {d.strip().lower() for d in lines if d.strip()}
            elif member.name.endswith("urls"):
                urls = {u.strip() for u in lines if u.strip() and not u.startswith("#")}
    return Blocklist(domains, urls, _words("banned_words.txt"), _words("soft_banned_words.txt"),
                     _words("banned_subwords.txt"))


def listed_domains_under(domains: list[str]) -> set[str]:
    """The blocklist's entries that are sub-domains of ``domains`` (streamed, not all kept)."""
    under = tuple("." + d for d in domains)
    found: set[str] = set()
    with tarfile.open(assets_dir() / ARCHIVE, "r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.name.endswith("domains") else None
            for line in handle or ():
                entry = line.decode("utf-8", "replace").strip().lower()
                if entry.endswith(under):
                    found.add(entry)
    return found


@lru_cache(maxsize=1)
def full_blocklist() -> Blocklist:
    """Every entry (a few seconds and ~0.5 GB once per process): for one-off checks."""
    return load_blocklist()


@dataclass
class UrlFilter:
    """FineWeb's URL filter, offline. ``extra_domains`` adds to the bundled list."""

    blocklist: Blocklist
    name: str = "url"
    soft_word_threshold: int = 2
    extra_domains: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._extra = {d.lower() for d in self.extra_domains}
        subwords = sorted(self.blocklist.banned_subwords, key=len, reverse=True)
        self._subwords = re.compile("|".join(map(re.escape, subwords))) if subwords else None

    def check(self, url: str) -> str | None:
        """None to keep ``url``, else the reason."""
        host = urlsplit(url).hostname or ""
        candidates = parents(host)[:-1] or [host]  # a bare TLD is never a listed domain
        if any(c in self._extra for c in candidates):
            return "blocked_extra"
        if any(c in self.blocklist.domains for c in candidates):
            return "domain"
        if url in self.blocklist.urls:
            return "url"
        url_words = set(_NON_ALNUM.split(url.lower()))
        if url_words & self.blocklist.banned_words:
            return "banned_word"
        if len(url_words & self.blocklist.soft_banned_words) >= self.soft_word_threshold:
            return "soft_banned"
        if self._subwords and self._subwords.search(_NON_ALNUM.sub("", url.lower())):
            return "banned_subword"
        return None

    def __call__(self, doc: object) -> str | None:
        return self.check(str(getattr(doc, "url", "")))

