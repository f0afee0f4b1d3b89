"""The text stage's settings and the per-document part of its pipeline.

In: the ``text`` config section and batches of :class:`~crawl2chat.web.steps.Doc`
(raw HTML). Out: :class:`Cfg`; :func:`doc_steps` builds the steps that work on one
document alone -- extraction, language ID, Gopher repetition, Gopher quality, C4,
FineWeb -- and :func:`outcomes` runs them over batches, in a process pool when
``workers > 1``, yielding (doc, drop reason or None) in input order plus per-step
counts, so the result does not depend on the worker count. The steps that need the
whole crawl (URL blocklist, MinHash dedup, language mix, PII) run in the stage itself.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from crawl2chat.config import ConfigError
from crawl2chat.web.c4 import C4
from crawl2chat.web.extract import extract
from crawl2chat.web.fineweb import FineWebRules
from crawl2chat.web.gopher import GopherQuality, GopherRepetition
from crawl2chat.web.langid import LanguageId
from crawl2chat.web.minhash import MinHasher
from crawl2chat.web.pii import PiiRedactor
from crawl2chat.web.steps import Doc, Step, StepStats, new_stats, run_steps

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
    workers: int = 2
    batch_size: int = 8  # records per task sent to a worker
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
        for name in ("min_chars", "max_html_bytes", "workers", "batch_size"):
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

    def __post_init__(self) -> None:
        self._model = LanguageId()

    def __call__(self, doc: Doc) -> str | None:
        doc.lang, doc.lang_score = self._model.predict(doc.text)
        ok = doc.lang in self.min_scores and doc.lang_score >= self.min_scores[doc.lang]
        return None if ok else f"{doc.lang}:{doc.lang_score:.2f}"


def doc_steps(cfg: Cfg) -> list[Step]:
    """The per-document steps in order, without the ones ``skip_steps`` names."""
    steps: list[Step] = [Extraction(cfg.min_chars, cfg.max_html_bytes),
                         Language(cfg.min_scores), cfg.gopher_rep, cfg.gopher_quality,
                         cfg.c4, cfg.fineweb]
    return [s for s in steps if s.name not in cfg.skip_steps or s.name == "extract"]


Result = tuple[list[tuple[Doc, str | None]], dict[str, StepStats]]
_STEPS: list[Step] | None = None


def _init_worker(cfg: Cfg) -> None:
    global _STEPS
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    _STEPS = doc_steps(cfg)


def _process(batch: list[Doc]) -> Result:
    assert _STEPS is not None, "worker not initialised"
    stats = new_stats(s.name for s in _STEPS)
    return [(doc, run_steps(doc, _STEPS, stats)) for doc in batch], stats


def outcomes(batches: Iterable[list[Doc]], cfg: Cfg,
             stats: dict[str, StepStats]) -> Iterator[tuple[Doc, str | None]]:
    """Run the per-document steps; add their counts to ``stats``; keep input order."""
    def merge(result: Result) -> list[tuple[Doc, str | None]]:
        for name, record in result[1].items():
            stats.setdefault(name, StepStats(name)).add(record)
        return result[0]

    if cfg.workers == 1:
        _init_worker(cfg)
        for batch in batches:
            yield from merge(_process(batch))
        return
    # spawn, not fork: the caller may run threads (Prefect, MLflow) that fork would copy
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(cfg.workers, mp_context=context, initializer=_init_worker,
                             initargs=(cfg,)) as pool:
        pending: deque[Future[Result]] = deque()
        for batch in batches:  # a bounded window keeps memory flat on big crawls
            pending.append(pool.submit(_process, batch))
            if len(pending) >= 4 * cfg.workers:
                yield from merge(pending.popleft().result())
        while pending:
            yield from merge(pending.popleft().result())
