"""The text stage's removed pages: written as they come, counted, sampled.

In: removed pages as rows (doc_id, url, reason, text hash), from the slices' filtering
and from dedup and the mix. Out: :class:`Removed` writes them to
``removed-NNNNN.parquet`` shards (one shard's rows in memory), counts them per reason
group (``lang:de:0.91`` -> ``lang:de``), keeps the first URL per group for the report
and, when ``keep_removed_sample`` asks, the pages whose id hashes lowest, with their
text, redacted on :meth:`Removed.close` into ``removed_sample.parquet``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2chat.text import chunks, mix
from crawl2chat.text.pii import PiiRedactor
from crawl2chat.text.recipe import Cfg
from crawl2chat.text.shards import (
    REMOVED,
    REMOVED_SAMPLE,
    REMOVED_SCHEMA,
    SAMPLE_SCHEMA,
    ShardWriter,
)


def group(reason: str) -> str:
    """The reason without its value: ``lang:de:0.91`` -> ``lang:de``."""
    return ":".join(reason.split(":")[:2])



class Removed:
    """Removed pages: to ``removed-*.parquet`` as they come, counted by reason, with the
    first URL per reason for the report and the lowest-ranked few for the sample."""

    def __init__(self, out_dir: Path, cfg: Cfg) -> None:
        self.writer = ShardWriter(out_dir, REMOVED, REMOVED_SCHEMA, cfg.shard_rows)
        self.by_reason: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.sample: list[tuple[int, dict[str, Any]]] = []
        self.sample_size = cfg.keep_removed_sample

    def add(self, rows: list[dict[str, str]], sample: list[tuple[int, dict[str, Any]]]) -> None:
        self.writer.write_rows(rows)
        for row in rows:
            reason = group(row["reason"])
            self.by_reason[reason] += 1
            self.examples.setdefault(reason, row["url"])
        if sample:
            self.sample = chunks.lowest(self.sample + sample, self.sample_size)

    def threshold(self) -> int:
        """A removed page whose rank is below this may enter the sample."""
        full = len(self.sample) >= self.sample_size
        return self.sample[-1][0] + 1 if full else mix.BINS

    def close(self, out_dir: Path, pii: PiiRedactor) -> None:
        self.writer.close()
        if self.sample_size:
            rows = [row for _, row in self.sample]
            texts = pii.redact_many([r["text"] for r in rows], [None] * len(rows),
                                    [r["url"] for r in rows])
            table = pa.Table.from_pylist([{**r, "text": t} for r, (t, _) in
                                          zip(rows, texts, strict=True)], schema=SAMPLE_SCHEMA)
            pq.write_table(table, out_dir / REMOVED_SAMPLE)


def drop(removed: Removed, meta: pa.Table, dropped: np.ndarray, reasons: list[str],
          work: Path, number: int) -> None:
    """Removed pages of one slice's survivors; their text is read only for the sample."""
    rows = np.flatnonzero(dropped)
    if not len(rows):
        return
    ids, urls = meta["doc_id"].to_pylist(), meta["url"].to_pylist()
    hashes = meta["text_hash"].to_pylist()
    out = [{"doc_id": ids[i], "url": urls[i], "reason": reasons[i], "text_hash": hashes[i]}
           for i in rows]
    sample: list[tuple[int, dict[str, Any]]] = []
    if removed.sample_size:
        ranks = mix.ranks([r["doc_id"] for r in out], chunks.SAMPLE_SALT)
        if (ranks < removed.threshold()).any():
            texts = pq.read_table(chunks.work_file(work, "survivors", number, "parquet"),
                                  columns=["text"])["text"].to_pylist()
            sample = [(int(r), {**row, "text": texts[i]})
                      for r, row, i in zip(ranks, out, rows, strict=True)]
    removed.add(out, sample)
