"""The text stage's work units: slices of the input, each filtered on its own.

In: the crawl's index (``warc_file``, ``offset``, ``length`` per record, in crawl order),
the stage's settings and a work folder on disk. Out:

- :func:`doc_steps` lists the steps that work on one document alone: extraction,
  language ID, Gopher repetition, Gopher quality, C4 and FineWeb, in order.
- :func:`plan` cuts every shard into near-equal runs of consecutive records, at most
  ``chunk_records`` each, in crawl order. The cut depends on the index and
  ``chunk_records`` only, never on the worker count, so neither does the output.
- :func:`warm_up` loads the extractor and the language model in a worker process.
- :func:`filter_slice` reads one slice (anything with ``pages()``, a :class:`Slice`:
  a :class:`Chunk` of WARC records or a :class:`~crawl2chat.text.sources.Slice` of
  already extracted text, which skips the URL filter and extraction), passes each page
  through the URL filter and the per-document steps, and writes the survivors to the
  work folder (``survivors-NNNNN.parquet``) with their dedup keys (``hash-NNNNN.npy``:
  exact hash words; ``sig-NNNNN.npy``: MinHash signatures), so that nothing of the
  corpus passes through the stage's own process. It answers the slice's counts and its
  removed pages without their text. A step that raises on a page drops that page with
  the reason ``<step>:error:<exception class>``, counted at that step like any drop; the
  slice goes on, so one pathological page never ends the stage.

Plain functions of picklable arguments (see :mod:`crawl2chat.parallel`).
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2chat.crawl.urlfilter import UrlFilter
from crawl2chat.crawl.warc import ReadStats, iter_responses
from crawl2chat.text import mix
from crawl2chat.text.c4 import C4
from crawl2chat.text.dedup import hash_words, text_hash
from crawl2chat.text.extract import Extraction
from crawl2chat.text.fineweb import FineWebRules
from crawl2chat.text.gopher import GopherQuality, GopherRepetition
from crawl2chat.text.langid import Language, language_model
from crawl2chat.text.minhash import MinHasher
from crawl2chat.text.recipe import Cfg, kwargs
from crawl2chat.text.shards import DOC_SCHEMA
from crawl2chat.text.steps import Doc, Step, StepStats, new_stats, run_steps

log = logging.getLogger("crawl2chat.text")

if TYPE_CHECKING:
    import pandas as pd

# a survivor's row in the work folder: the document, then what the later passes need
SURVIVOR_SCHEMA = pa.schema([*DOC_SCHEMA, ("text_hash", pa.string()), ("tokens", pa.int64()),
                             ("chars", pa.int64())])
SAMPLE_SALT = b"sample"


def work_file(work: Path, kind: str, number: int, ext: str = "npy") -> Path:
    """A slice's file in the work folder: ``survivors-00003.parquet``, ``sig-00003.npy``."""
    return work / f"{kind}-{number:05d}.{ext}"


class Slice(Protocol):
    """A unit of input: it yields its documents (raw HTML, or text for a text source,
    which ``extracted`` marks: such pages skip the URL filter and extraction)."""

    extracted: bool

    def pages(self, in_dir: Path, read: ReadStats) -> list[Doc]: ...


@dataclass(frozen=True)
class Chunk:
    """Consecutive records of one shard: bytes ``start`` up to ``end`` of ``warc_file``."""

    warc_file: str
    start: int
    end: int
    records: int
    extracted = False  # raw HTML: every step runs

    def pages(self, in_dir: Path, read: ReadStats) -> list[Doc]:
        path = in_dir / self.warc_file
        with path.open("rb") as fh:
            fh.seek(self.start)
            blob = fh.read(self.end - self.start)
        return [Doc(r.record_id.strip("<>"), r.url, self.warc_file,
                    r.header("Content-Type") or "", r.payload, dump=r.dump, date=r.date)
                for r in iter_responses(io.BytesIO(blob), read, name=str(path), base=self.start)]


@dataclass
class Filtered:
    """What a slice gave: counts, reader counts, its removed pages (no text), survivors,
    and its lowest-ranked removed pages with their text (the inspection sample)."""

    stats: dict[str, StepStats]
    read: ReadStats = field(default_factory=ReadStats)
    removed: list[dict[str, str]] = field(default_factory=list)
    kept: int = 0
    sample: list[tuple[int, dict[str, str]]] = field(default_factory=list)


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


Ranked = list[tuple[int, dict[str, Any]]]


def lowest(candidates: Ranked, n: int) -> Ranked:
    """The ``n`` lowest-ranked of ``candidates`` (rank first; ties by doc_id)."""
    return sorted(candidates, key=lambda c: (c[0], c[1]["doc_id"]))[:n]


def warm_up() -> None:
    """Load what every slice needs once per worker process (the extractor, the language
    model), so that the first slice does not wait for it (see ``parallel.task_runner``)."""
    import trafilatura  # noqa: F401  (an import of seconds, cached for the process)

    language_model()


def filter_slice(source: Slice, number: int, in_dir: Path, cfg: Cfg,
                 url_filter: UrlFilter | None, work: Path) -> Filtered:
    """The URL filter and per-document steps on one slice; survivors and their dedup
    keys to ``work``. A slice of already extracted text skips the URL filter and
    extraction."""
    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # it warns on every odd page
    read = ReadStats()
    docs = source.pages(in_dir, read)
    if source.extracted:
        plain: list[Step] = [s for s in doc_steps(cfg) if s.name != "extract"]
    else:
        plain = ([url_filter] if url_filter is not None else []) + doc_steps(cfg)
    steps: list[Step] = [_Guarded(s) for s in plain]
    stats = new_stats([*(s.name for s in steps), "dedup"])
    hasher = MinHasher(**kwargs(cfg.dedup)) if "dedup" not in cfg.skip_steps else None
    out = Filtered(stats, read)
    survivors: list[Doc] = []
    gone: list[Doc] = []
    hashes: list[str] = []
    signatures = []
    for doc in docs:
        reason = run_steps(doc, steps, stats)
        doc.html = b""
        if reason is None:
            start = time.perf_counter()
            try:
                key = text_hash(doc.text)
                signature = hasher.of_text(doc.text) if hasher is not None else None
            except Exception as err:  # the page goes, the slice stays
                reason = stats["dedup"].count(doc, _error(doc, "dedup", err), doc.tokens())
            stats["dedup"].seconds += time.perf_counter() - start
        if reason is not None:
            out.removed.append({"doc_id": doc.doc_id, "url": doc.url, "reason": reason,
                                "text_hash": _hash_or_empty(doc.text)})
            gone.append(doc)
            continue
        survivors.append(doc)
        hashes.append(key)
        if signature is not None:
            signatures.append(signature)
    if cfg.keep_removed_sample and gone:
        ranks = mix.ranks([d.doc_id for d in gone], SAMPLE_SALT)
        out.sample = lowest([(int(r), {**row, "text": d.text}) for r, row, d in
                             zip(ranks, out.removed, gone, strict=True)],
                            cfg.keep_removed_sample)
    table = pa.Table.from_pylist(
        [{"doc_id": d.doc_id, "url": d.url, "warc_file": d.warc_file, "lang": d.lang,
          "lang_score": d.lang_score, "text": d.text, "dump": d.dump, "date": d.date,
          "text_hash": h, "tokens": d.tokens(), "chars": len(d.text)}
         for d, h in zip(survivors, hashes, strict=True)], schema=SURVIVOR_SCHEMA)
    pq.write_table(table, work_file(work, "survivors", number, "parquet"))
    if hasher is not None:
        np.save(work_file(work, "hash", number), hash_words(hashes))
        sigs = (np.stack(signatures).astype(np.uint32) if signatures else
                np.zeros((0, hasher.buckets, hasher.per_bucket), dtype=np.uint32))
        np.save(work_file(work, "sig", number), sigs)
    out.kept = len(survivors)
    return out


def _hash_or_empty(text: str) -> str:
    """A removed page's text hash, or '' where its text cannot be hashed."""
    try:
        return text_hash(text)
    except Exception:  # a page that broke hashing is already dropped for it
        return ""
