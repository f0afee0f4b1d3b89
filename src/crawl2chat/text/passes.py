"""The text stage's passes after the slices' filtering, on the work folder.

In: the work folder that :func:`crawl2chat.text.chunks.filter_slice` filled (per slice:
survivors, exact hash words, MinHash signatures). Out:

- :func:`resolve_exact` and :func:`resolve_band` (one unit each; the bands run in
  parallel): the sorted positions of later copies, exact ones first, then per MinHash
  band among the pages that are not exact copies (an exact copy never enters the LSH
  index, as before); see :func:`crawl2chat.text.dedup.later_copies`.
- :func:`dedup_reasons`: per survivor of one slice, ``exact``, ``minhash`` or kept.
- :func:`redact_slice` (one unit per slice): the slice's kept pages, PII removed, to
  ``final-NNNNN.parquet``; the stage then copies those, in order, into output shards
  of ``shard_rows`` rows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2chat.text.chunks import work_file
from crawl2chat.text.dedup import later_copies, positions, positions_in
from crawl2chat.text.minhash import band_rows
from crawl2chat.text.shards import DOC_SCHEMA
from crawl2chat.text.steps import StepStats

if TYPE_CHECKING:
    from crawl2chat.text.pii import PiiRedactor

EXACT, MINHASH = 1, 2  # dedup_reasons' codes; 0 keeps


def resolve_exact(work: Path, slices: int, total: int, max_rows: int) -> Path:
    """``exact.npy``: positions of pages whose normalised text came earlier."""
    def runs() -> Iterator[np.ndarray]:
        for s in range(slices):
            words = np.load(work_file(work, "hash", s))
            yield np.column_stack([words, positions(s, len(words))])
    return later_copies(runs, total, slices, work / "exact.npy", max_rows)


def resolve_band(work: Path, slices: int, total: int, max_rows: int, band: int) -> Path:
    """``band-NN.npy``: positions of pages (exact copies left out) whose key in MinHash
    band ``band`` came earlier."""
    def runs() -> Iterator[np.ndarray]:
        for s in range(slices):
            sig = np.load(work_file(work, "sig", s), mmap_mode="r")
            at = positions(s, len(sig))
            fresh = ~np.isin(at, positions_in(work / "exact.npy", s))
            yield band_rows(np.asarray(sig[fresh]), at[fresh], band)
    return later_copies(runs, total, slices, work / f"band-{band:02d}.npy", max_rows)


def dedup_reasons(work: Path, number: int, rows: int, bands: list[Path]) -> np.ndarray:
    """Per survivor row of slice ``number``: 0 (kept), ``EXACT`` or ``MINHASH``."""
    codes = np.zeros(rows, dtype=np.int8)
    at = positions(number, rows)
    for band in bands:
        codes[np.isin(at, positions_in(band, number))] = MINHASH
    codes[np.isin(at, positions_in(work / "exact.npy", number))] = EXACT
    return codes


@dataclass
class Written:
    """One slice's final pages: PII replacements, the PII step's counts, documents,
    characters and whitespace words per language of the final (redacted) texts."""

    pii: Counter[str] = field(default_factory=Counter)
    stats: StepStats = field(default_factory=lambda: StepStats("pii"))
    chars: Counter[str] = field(default_factory=Counter)
    docs: Counter[str] = field(default_factory=Counter)
    words: int = 0
    rows: int = 0


def redact_slice(work: Path, number: int, pii: PiiRedactor | None) -> Written:
    """One slice's kept survivors, PII removed, to ``final-NNNNN.parquet`` in ``work``."""
    table = pq.read_table(work_file(work, "survivors", number, "parquet"))
    table = table.filter(pa.array(np.load(work_file(work, "keep", number)))).select(
        DOC_SCHEMA.names)
    done = Written(rows=table.num_rows)
    texts, langs = table["text"].to_pylist(), table["lang"].to_pylist()
    if pii is not None:
        tokens_in = [len(t.split()) for t in texts]
        start = time.perf_counter()
        redacted = pii.redact_many(texts, langs, table["url"].to_pylist())
        done.stats.seconds = time.perf_counter() - start
        texts = [text for text, _ in redacted]
        for (text, found), before in zip(redacted, tokens_in, strict=True):
            done.pii.update(found)
            done.stats.docs_in += 1
            done.stats.docs_out += 1
            done.stats.tokens_in += before
            done.stats.tokens_out += len(text.split())
        table = table.set_column(table.schema.get_field_index("text"), "text",
                                 pa.array(texts, pa.string()))
    for text, lang in zip(texts, langs, strict=True):
        done.chars[lang] += len(text)
        done.docs[lang] += 1
        done.words += len(text.split())
    pq.write_table(table.cast(DOC_SCHEMA), work_file(work, "final", number, "parquet"))
    return done
