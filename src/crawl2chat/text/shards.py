"""The text stage's sharded tables: written as rows arrive, read back in order.

In: Arrow tables of rows (kept documents, removed documents). Out: files
``<prefix>-00000.parquet``, ``<prefix>-00001.parquet`` ... in one folder, each with
exactly ``shard_rows`` rows but the last; :func:`iter_batches` and :func:`read_frame`
read them back in shard order. Every reader of the stage's output goes through here,
so the layout is known in one place.

A :class:`ShardWriter` holds at most one shard's rows at a time, so writing a corpus
of any size takes memory for one shard. :data:`DOC_SCHEMA` and :data:`REMOVED_SCHEMA`
are the two tables' contracts: removed documents keep their URL, the reason and a hash
of the text they had when dropped, never the text itself (it may hold PII).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from crawl2chat.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

DOCUMENTS = "documents"
REMOVED = "removed"
REMOVED_SAMPLE = "removed_sample.parquet"  # a redacted sample of removed texts, if asked
ROW_GROUP_ROWS = 1000  # a shard's row groups: the units later stages read in parallel
DOC_SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()),
                        ("warc_file", pa.string()), ("lang", pa.string()),
                        ("lang_score", pa.float64()), ("text", pa.string()),
                        ("dump", pa.string()), ("date", pa.string())])
REMOVED_SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()),
                            ("reason", pa.string()), ("text_hash", pa.string())])
SAMPLE_SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()),
                           ("reason", pa.string()), ("text", pa.string())])


def shard_name(prefix: str, number: int) -> str:
    return f"{prefix}-{number:05d}.parquet"


def shard_files(folder: Path, prefix: str = DOCUMENTS) -> list[Path]:
    """The shards of ``prefix`` in ``folder``, in order (their numbers are zero-padded)."""
    return sorted(Path(folder).glob(f"{prefix}-[0-9][0-9][0-9][0-9][0-9].parquet"))


class ShardWriter:
    """Rows in, ``<prefix>-NNNNN.parquet`` files of ``shard_rows`` rows out."""

    def __init__(self, folder: Path, prefix: str, schema: pa.Schema, shard_rows: int,
                 first: int = 0) -> None:
        self.folder, self.prefix, self.schema = Path(folder), prefix, schema
        self.shard_rows, self.number = shard_rows, first
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._buffered = 0

    def write(self, table: pa.Table) -> None:
        """Buffer ``table``'s rows; every full shard goes to disk at once."""
        table = table.select(self.schema.names).cast(self.schema)
        self._pending.append(table)
        self._buffered += table.num_rows
        self.rows += table.num_rows
        while self._buffered >= self.shard_rows:
            self._flush(self.shard_rows)

    def write_rows(self, rows: list[dict[str, object]]) -> None:
        if rows:
            self.write(pa.Table.from_pylist(rows, schema=self.schema))

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._pending)
        pq.write_table(table.slice(0, rows), self.folder / shard_name(self.prefix, self.number),
                       row_group_size=ROW_GROUP_ROWS)
        self.number += 1
        rest = table.slice(rows)
        self._pending, self._buffered = [rest], rest.num_rows

    def close(self) -> None:
        """Write the last, partial shard; an empty table still gets one (empty) shard."""
        if self._buffered or self.number == 0:
            self._pending = self._pending or [self.schema.empty_table()]
            self._flush(self._buffered)


def require_shards(folder: Path, prefix: str = DOCUMENTS) -> list[Path]:
    """:func:`shard_files`, or an error saying there are none."""
    files = shard_files(folder, prefix)
    if not files:
        raise InputError(f"{folder}: no {shard_name(prefix, 0)} (or later shards): "
                         f"run the text stage first")
    return files


def _read(file: Path, columns: list[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        shard = pq.ParquetFile(file)
        missing = [c for c in columns or [] if c not in shard.schema_arrow.names]
        if missing:
            raise InputError(f"{file}: missing column(s) {missing}; "
                             f"found {shard.schema_arrow.names}")
        yield from shard.iter_batches(batch_size=batch_rows, columns=columns)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{file}: cannot read it as parquet ({err})") from err


def iter_batches(folder: Path, prefix: str = DOCUMENTS, columns: list[str] | None = None,
                 batch_rows: int = 1024) -> Iterator[pa.RecordBatch]:
    """The rows of every ``prefix`` shard in ``folder``, in order, ``batch_rows`` at a time."""
    for file in require_shards(folder, prefix):
        yield from _read(file, columns, batch_rows)


def read_shard(file: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """One shard as a frame (its columns as written; ``columns`` picks some)."""
    batches = list(_read(file, columns, 65536))
    schema = pq.read_schema(file)  # readable: _read said so
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
    return pa.Table.from_batches(batches, schema=schema).to_pandas()


def read_frame(folder: Path, prefix: str = DOCUMENTS,
               columns: list[str] | None = None) -> pd.DataFrame:
    """All shards of ``prefix`` as one frame: for small outputs (tests, the audit)."""
    files = require_shards(folder, prefix)
    schema = pq.read_schema(files[0])
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
    batches = [b for file in files for b in _read(file, columns, 65536)]
    return pa.Table.from_batches(batches, schema=schema).to_pandas()
