"""The text stage's settings and the steps that work on one document alone.

In: the ``text`` config section. Out: :class:`Cfg`, and :func:`doc_steps`: extraction,
language ID, Gopher repetition, Gopher quality, C4 and FineWeb, in order, without the
ones ``skip_steps`` names. :mod:`crawl2chat.web.chunks` runs them on slices of the
crawl as parallel tasks (``runner``); the steps that need the whole crawl (MinHash
dedup, language mix) run in the stage itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from crawl2chat.errors import ConfigError
from crawl2chat.web.c4 import C4
from crawl2chat.web.extract import extract
from crawl2chat.web.fineweb import FineWebRules
from crawl2chat.web.gopher import GopherQuality, GopherRepetition
from crawl2chat.web.langid import LanguageId
from crawl2chat.web.minhash import MinHasher
from crawl2chat.web.parallel import RunnerCfg
from crawl2chat.web.pii import PiiRedactor
from crawl2chat.web.steps import Doc, Step

# every step in pipeline order; the stage's funnel follows it
ORDER = ("url", "extract", "lang", "gopher_rep", "gopher_quality", "c4", "fineweb", "dedup",
         "mix", "pii")


@dataclass
class UrlCfg:
    """URL filter: datatrove's bundled blocklist plus your own domains."""

    soft_word_threshold: int = 2
    extra_domains: list[str] = field(default_factory=list)


@dataclass
class Cfg:
    """Text filters. ``languages``: code -> target share, or {share, min_score}."""

    languages: dict[str, Any] = field(default_factory=lambda: {"en": 1.0})
    min_lang_score: float = 0.65  # FineWeb keeps English at fastText score >= 0.65
    balance_mix: bool = True  # drop documents of over-represented languages to hit shares
    mix_tolerance: float = 0.02  # the gate's allowed gap between achieved and target share
    min_chars: int = 300  # shorter main texts are menus, stubs and index pages
    max_html_bytes: int = 2_000_000  # larger pages are dropped, not parsed (time bound)
    runner: RunnerCfg = field(default_factory=RunnerCfg)  # where the per-slice tasks run
    chunk_records: int = 64  # crawl records per task; fixed units keep the output fixed
    skip_steps: list[str] = field(default_factory=list)  # step names to switch off
    url: UrlCfg = field(default_factory=UrlCfg)
    gopher_rep: GopherRepetition = field(default_factory=GopherRepetition)
    gopher_quality: GopherQuality = field(default_factory=GopherQuality)
    c4: C4 = field(default_factory=C4)
    fineweb: FineWebRules = field(default_factory=FineWebRules)
    dedup: MinHasher = field(default_factory=MinHasher)
    pii: PiiRedactor = field(default_factory=PiiRedactor)

    def __post_init__(self) -> None:
        if not self.languages:
            raise ConfigError("text.languages: name at least one language, e.g. {en: 1.0}")
        self.shares: dict[str, float] = {}
        self.min_scores: dict[str, float] = {}
        for lang, value in self.languages.items():
            spec = value if isinstance(value, dict) else {"share": value}
            unknown = set(spec) - {"share", "min_score"}
            share, score = spec.get("share", 1.0), spec.get("min_score", self.min_lang_score)
            if unknown or not all(isinstance(v, int | float) and 0 <= v <= 1
                                  for v in (share, score)):
                raise ConfigError(f"text.languages.{lang}: a share in [0, 1] or "
                                  f"{{share: .., min_score: ..}}, got {value!r}")
            self.shares[str(lang)], self.min_scores[str(lang)] = float(share), float(score)
        if abs(sum(self.shares.values()) - 1.0) > 1e-6:
            raise ConfigError(f"text.languages: shares must add up to 1, got {self.shares}")
        unknown_steps = set(self.skip_steps) - set(ORDER)
        if unknown_steps:
            raise ConfigError(f"text.skip_steps: unknown {sorted(unknown_steps)}; "
                              f"steps: {list(ORDER)}")
        for name in ("min_chars", "max_html_bytes", "chunk_records"):
            if getattr(self, name) < (0 if name == "min_chars" else 1):
                raise ConfigError(f"text.{name}: too small: {getattr(self, name)}")


@dataclass
class Extraction:
    """Step ``extract``: charset decoding, trafilatura main text, minimum length."""

    min_chars: int
    max_html_bytes: int
    name: str = field(default="extract", init=False)

    def __call__(self, doc: Doc) -> str | None:
        got = extract(doc.html, doc.content_type, doc.url, min_chars=self.min_chars,
                      max_html_bytes=self.max_html_bytes)
        doc.text, doc.encoding, doc.html = got.text, got.encoding, b""
        return None if got.verdict.keep else got.verdict.reason.removeprefix("extract:")


@dataclass
class Language:
    """Step ``lang``: fastText lid.176; keep configured languages at their min score."""

    min_scores: dict[str, float]
    name: str = field(default="lang", init=False)

    def __call__(self, doc: Doc) -> str | None:
        doc.lang, doc.lang_score = language_model().predict(doc.text)
        ok = doc.lang in self.min_scores and doc.lang_score >= self.min_scores[doc.lang]
        return None if ok else f"{doc.lang}:{doc.lang_score:.2f}"


_LOCK = threading.Lock()


@cache
def _language_model() -> LanguageId:
    return LanguageId()


def language_model() -> LanguageId:
    """The fastText model, loaded once per process (tasks on threads share it)."""
    with _LOCK:
        return _language_model()


def doc_steps(cfg: Cfg) -> list[Step]:
    """The per-document steps in order, without the ones ``skip_steps`` names."""
    steps: list[Step] = [Extraction(cfg.min_chars, cfg.max_html_bytes),
                         Language(cfg.min_scores), cfg.gopher_rep, cfg.gopher_quality,
                         cfg.c4, cfg.fineweb]
    return [s for s in steps if s.name not in cfg.skip_steps or s.name == "extract"]
