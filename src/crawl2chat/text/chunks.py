"""The text stage's work units: slices of the crawl's shards, each filtered on its own.

In: the crawl's index (``warc_file``, ``offset``, ``length`` per record, in crawl order)
and the stage's settings. Out:

- :func:`doc_steps` lists the steps that work on one document alone: extraction,
  language ID, Gopher repetition, Gopher quality, C4 and FineWeb, in order.
- :func:`plan` cuts every shard into near-equal runs of consecutive records, at most
  ``chunk_records`` each, in crawl order. The cut depends on the index and
  ``chunk_records`` only, never on the worker count, so neither does the output.
- :func:`filter_chunk` reads one slice's bytes, passes each page through the URL filter
  and the per-document steps, and gives every survivor its exact-duplicate hash and
  MinHash signature, so that only the cheap, order-dependent part of dedup is left
  for the whole crawl. A step that raises on a page drops that page with the reason
  ``<step>:error:<exception class>``, counted at that step like any drop; the slice
  goes on, so one pathological page never ends the stage.
- :func:`redact_chunk` removes PII from the kept pages of one slice.

Both are plain functions of picklable arguments (see :mod:`crawl2chat.parallel`).
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crawl2chat.crawl.urlfilter import UrlFilter
from crawl2chat.crawl.warc import ReadStats, iter_responses
from crawl2chat.text.c4 import C4
from crawl2chat.text.dedup import text_hash
from crawl2chat.text.extract import Extraction
from crawl2chat.text.fineweb import FineWebRules
from crawl2chat.text.gopher import GopherQuality, GopherRepetition
from crawl2chat.text.langid import Language
from crawl2chat.text.minhash import MinHasher
from crawl2chat.text.recipe import Cfg, kwargs
from crawl2chat.text.sources import Slice, read_slice
from crawl2chat.text.steps import Doc, Step, StepStats, new_stats, run_steps

log = logging.getLogger("crawl2chat.text")

if TYPE_CHECKING:
    import pandas as pd

    from crawl2chat.text.pii import PiiRedactor


@dataclass(frozen=True)
class Chunk:
    """Consecutive records of one shard: bytes ``start`` up to ``end`` of ``warc_file``."""

    warc_file: str
    start: int
    end: int
    records: int


@dataclass
class Outcome:
    """One page after the per-document steps; ``text_hash``/``signature`` if it survived."""

    doc: Doc
    reason: str | None
    text_hash: str = ""
    signature: np.ndarray | None = None


@dataclass
class Filtered:
    """What a slice gave: every page in record order, per-step counts, reader counts."""

    outcomes: list[Outcome]
    stats: dict[str, StepStats]
    read: ReadStats = field(default_factory=ReadStats)


def doc_steps(cfg: Cfg) -> list[Step]:
    """The per-document steps in order, without the ones ``skip_steps`` names (extraction
    always runs: every later step reads its text)."""
    steps: list[Step] = [Extraction(cfg.min_chars, cfg.max_html_bytes),
                         Language(cfg.min_scores),
                         GopherRepetition(**kwargs(cfg.gopher_rep)),
                         GopherQuality(**kwargs(cfg.gopher_quality)),
                         C4(**kwargs(cfg.c4)), FineWebRules(**kwargs(cfg.fineweb))]
    return [s for s in steps if s.name not in cfg.skip_steps or s.name == "extract"]


def plan(index: pd.DataFrame, chunk_records: int) -> list[Chunk]:
    """Slices of at most ``chunk_records`` records; a shard's slices differ by <= 1 record."""
    chunks: list[Chunk] = []
    for name, rows in index.groupby("warc_file", sort=False):
        starts = rows["offset"].to_numpy()
        ends = starts + rows["length"].to_numpy()
        parts = -(-len(rows) // chunk_records)
        for part in np.array_split(np.arange(len(rows)), parts):
            chunks.append(Chunk(str(name), int(starts[part[0]]), int(ends[part[-1]]), len(part)))
    return chunks


def _pages(path: Path, chunk: Chunk, read: ReadStats) -> list[Doc]:
    with path.open("rb") as fh:
        fh.seek(chunk.start)
        blob = fh.read(chunk.end - chunk.start)
    return [Doc(r.record_id.strip("<>"), r.url, chunk.warc_file, r.header("Content-Type") or "",
                r.payload, dump=r.dump, date=r.date)
            for r in iter_responses(io.BytesIO(blob), read, name=str(path), base=chunk.start)]


class _Guarded:
    """A step whose exception on one page is that page's drop reason ``error:<kind>``."""

    def __init__(self, step: Step) -> None:
        self.step = step
        self.name = step.name

    def __call__(self, doc: Doc) -> str | None:
        try:
            return self.step(doc)
        except Exception as err:  # the page goes, the slice stays
            return _error(doc, self.name, err)


def _error(doc: Doc, step: str, err: Exception) -> str:
    log.warning("text: step %s failed on %s (%s), page dropped: %s: %s", step, doc.url,
                doc.doc_id, type(err).__name__, str(err)[:200])
    return f"error:{type(err).__name__}"


def filter_chunk(in_dir: Path | None, chunk: Chunk | Slice, cfg: Cfg,
                 url_filter: UrlFilter | None) -> Filtered:
    """The URL filter and per-document steps on one slice, plus dedup keys of survivors.
    A :class:`~crawl2chat.text.sources.Slice` of already extracted text skips the URL
    filter and extraction."""
    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # it warns on every odd page
    read = ReadStats()
    if isinstance(chunk, Slice):
        docs = read_slice(chunk)
        read.responses = len(docs)
        plain: list[Step] = [s for s in doc_steps(cfg) if s.name != "extract"]
    else:
        assert in_dir is not None
        docs = _pages(in_dir / chunk.warc_file, chunk, read)
        plain = ([url_filter] if url_filter is not None else []) + doc_steps(cfg)
    steps: list[Step] = [_Guarded(s) for s in plain]
    stats = new_stats([*(s.name for s in steps), "dedup"])
    hasher = MinHasher(**kwargs(cfg.dedup)) if "dedup" not in cfg.skip_steps else None
    outcomes = []
    for doc in docs:
        reason = run_steps(doc, steps, stats)
        doc.html = b""  # removed pages are kept with their text, never their HTML
        outcome = Outcome(doc, reason)
        if reason is None and hasher is not None:
            start = time.perf_counter()
            try:
                outcome.text_hash = text_hash(doc.text)
                outcome.signature = hasher.of_text(doc.text)
            except Exception as err:  # the page goes, the slice stays
                outcome.reason = stats["dedup"].count(doc, _error(doc, "dedup", err),
                                                      doc.tokens())
            stats["dedup"].seconds += time.perf_counter() - start
        outcomes.append(outcome)
    return Filtered(outcomes, stats, read)


def redact_chunk(docs: list[Doc], pii: PiiRedactor,
                 ) -> tuple[list[str], Counter[str], StepStats]:
    """PII removed from one slice's kept pages: their texts, replacements per kind, and
    the step's counts (it never drops). The NER reads the slice's texts in one batch."""
    stats = StepStats("pii")
    tokens_in = [doc.tokens() for doc in docs]
    start = time.perf_counter()
    done = pii.redact_many([doc.text for doc in docs], [doc.lang for doc in docs],
                           [doc.url for doc in docs])
    stats.seconds = time.perf_counter() - start
    found: Counter[str] = Counter()
    texts = []
    for doc, tokens, (text, counts) in zip(docs, tokens_in, done, strict=True):
        # a copy: with threads the stage's own page would change under it
        redacted = replace(doc, text=text)
        stats.count(redacted, None, tokens)
        found.update(counts)
        texts.append(text)
    return texts, found, stats
