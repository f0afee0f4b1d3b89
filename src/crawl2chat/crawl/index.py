"""The crawl's index, written as the copy goes: one row group per WARC shard.

In: one row per copied record (:data:`INDEX_COLUMNS`), in crawl order, with the shard
it went to. Out: ``index.parquet`` whose row groups are the shards (so a reader can take
one shard's rows, or skip by the row group statistics of ``warc_file``), and the counts
the stage's report needs (records, per source file, per host, shards). Memory holds one
shard's rows, whatever the crawl's size.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

INDEX_COLUMNS = ("record_id", "url", "warc_file", "offset", "status", "content_type", "length",
                 "source_file", "dump", "date")
INDEX_SCHEMA = pa.schema([(c, pa.int64() if c in ("offset", "status", "length") else pa.string())
                          for c in INDEX_COLUMNS])
HOST = re.compile(r"^https?://([^/]+)")


class IndexWriter:
    """Rows in, ``index.parquet`` out, a row group each time the shard changes."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.records = 0
        self.hosts: Counter[str] = Counter()  # in order of first appearance
        self.per_source: Counter[str] = Counter()
        self.shards = 0
        self._rows: list[dict[str, object]] = []
        self._writer: pq.ParquetWriter | None = None

    def add(self, row: dict[str, object]) -> None:
        if self._rows and self._rows[-1]["warc_file"] != row["warc_file"]:
            self._flush()
        self._rows.append(row)
        self.records += 1
        self.per_source[str(row["source_file"])] += 1
        host = HOST.match(str(row["url"]))
        if host:
            self.hosts[host.group(1)] += 1

    def _flush(self) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.file, INDEX_SCHEMA)
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=INDEX_SCHEMA))
        self.shards += 1
        self._rows = []

    def close(self) -> None:
        """Write the last shard's rows and close the file (none if no row came)."""
        if self._rows:
            self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
