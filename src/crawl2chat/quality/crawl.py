"""Quality gate of the ``crawl`` stage.

In: the stage's output folder (``crawl-*.warc.gz`` shards and ``index.parquet``).
Out: GX tables that must hold before the crawl is committed:

- ``index`` (one row per record, validated one row group, i.e. one shard, at a time):
  the columns of the contract, at least one record, unique record ids and (file,
  offset) pairs, http(s) URLs, 2xx statuses, HTML media types, sane offsets and lengths.
- ``repeats`` (one row): no record id or (file, offset) pair repeats one in another
  row group (counted on disk, :mod:`crawl2chat.quality.repeats`).
- ``shards`` (one row per shard file and per file the index names): the file exists,
  the index covers it from byte 0 to its end without gaps or overlaps.
- ``lookups`` (a deterministic sample of up to 500 index rows): reading ``length``
  bytes at ``offset`` gives a standalone record with the indexed id and URL.

The index is read a row group at a time, and per shard only its rows, so memory does
not grow with the crawl.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from warcio.archiveiterator import ArchiveIterator

from crawl2chat.crawl.headers import HTML_TYPES
from crawl2chat.crawl.index import INDEX_COLUMNS
from crawl2chat.errors import InputError
from crawl2chat.quality.repeats import digests, repeated
from crawl2chat.quality.suite import Parts, Table
from crawl2chat.stages.crawl import INDEX

LOOKUPS = 500

E = gx.expectations


def tables(out_dir: Path, cfg: Any) -> list[Table]:
    index = _Index(out_dir / INDEX)
    index_checks = [
        E.ExpectTableColumnsToMatchSet(column_set=list(INDEX_COLUMNS), exact_match=True),
        E.ExpectTableRowCountToBeBetween(min_value=1),
        *[E.ExpectColumnValuesToNotBeNull(column=c) for c in INDEX_COLUMNS],
        E.ExpectColumnValuesToBeUnique(column="record_id"),
        E.ExpectCompoundColumnsToBeUnique(column_list=["warc_file", "offset"]),
        E.ExpectColumnValuesToMatchRegex(column="url", regex=r"^https?://[^/\s]+"),
        E.ExpectColumnValuesToBeBetween(column="status", min_value=200, max_value=299),
        E.ExpectColumnValuesToBeInSet(column="content_type", value_set=list(HTML_TYPES)),
        E.ExpectColumnValuesToBeBetween(column="offset", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="length", min_value=1),
    ]
    shard_checks = [
        E.ExpectColumnValuesToBeInSet(column="exists", value_set=[True]),
        E.ExpectColumnValuesToBeInSet(column="gaps", value_set=[0]),
        E.ExpectColumnPairValuesToBeEqual(column_A="size", column_B="indexed_end"),
    ]
    lookup_checks = [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnPairValuesToBeEqual(column_A="record_id", column_B="found_id"),
        E.ExpectColumnPairValuesToBeEqual(column_A="url", column_B="found_url"),
    ]
    repeats = pd.DataFrame([{
        "record_id_repeats": index.repeats(lambda part: part.get("record_id", [])),
        "file_offset_repeats": index.repeats(
            lambda part: [f"{f}@{o}" for f, o in zip(part.get("warc_file", []),
                                                   part.get("offset", []), strict=True)])}])
    return [Table("index", index.parts(), index_checks),
            Table("repeats", repeats, [E.ExpectColumnValuesToBeInSet(column=c, value_set=[0])
                                       for c in repeats.columns]),
            Table("shards", _shards(out_dir, index), shard_checks),
            Table("lookups", _lookups(out_dir, index), lookup_checks)]


class _Index:
    """``index.parquet``, read a row group at a time."""

    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            self.parquet = pq.ParquetFile(file)
        except (pa.ArrowException, OSError) as err:
            raise InputError(f"{file}: cannot read it as parquet ({err})") from err
        self.columns = set(self.parquet.schema_arrow.names)
        self.rows = self.parquet.metadata.num_rows
        self.groups = self.parquet.num_row_groups

    def group(self, number: int, columns: list[str] | None = None) -> pd.DataFrame:
        names = None if columns is None else [c for c in columns if c in self.columns]
        return self.parquet.read_row_group(number, columns=names).to_pandas()

    def parts(self) -> Parts:
        if not self.groups:  # no row group: still one (empty) table to hold to the checks
            yield "row group 0", self.parquet.schema_arrow.empty_table().to_pandas()
        for number in range(self.groups):
            yield f"row group {number}", self.group(number)

    def repeats(self, keys: Any) -> int:
        """Rows whose key (``keys(frame)``: values of a row group) an earlier row had."""
        return repeated(range(self.groups), lambda n: digests(keys(self.group(n))), self.rows)

    def names(self) -> set[str]:
        return {name for n in range(self.groups)
                for name in self.group(n, ["warc_file"]).get("warc_file", pd.Series(
                    dtype=str)).dropna()}

    def of_file(self, name: str) -> pd.DataFrame:
        """The rows of shard ``name`` (row groups skipped by their statistics)."""
        return pq.read_table(self.file, columns=["warc_file", "offset", "length"],
                             filters=[("warc_file", "==", name)]).to_pandas()


def _shards(out_dir: Path, index: _Index) -> pd.DataFrame:
    names = sorted({p.name for p in out_dir.glob("*.warc.gz")} | index.names())
    rows = []
    for name in names:
        file = out_dir / name
        part = (index.of_file(name).sort_values("offset")
                if {"warc_file", "offset", "length"} <= index.columns else pd.DataFrame())
        starts = part["offset"].tolist() if len(part) else []
        ends = (part["offset"] + part["length"]).tolist() if len(part) else []
        gaps = sum(a != b for a, b in zip([0, *ends[:-1]], starts, strict=False))
        rows.append({"warc_file": name, "exists": file.is_file(),
                     "size": file.stat().st_size if file.is_file() else -1,
                     "indexed_end": ends[-1] if ends else 0, "gaps": int(gaps)})
    return pd.DataFrame(rows, columns=["warc_file", "exists", "size", "indexed_end", "gaps"])


def _sample(index: _Index) -> pd.DataFrame:
    """Every ``rows // LOOKUPS``-th row of the index, read a row group at a time."""
    step, start, picked = max(1, index.rows // LOOKUPS), 0, []
    for number in range(index.groups):
        group = index.group(number)
        first = -start % step  # the group's first row at a multiple of step
        picked.append(group.iloc[first::step])
        start += len(group)
    return pd.concat(picked) if picked else pd.DataFrame()


def _lookups(out_dir: Path, index: _Index) -> pd.DataFrame:
    columns = ["record_id", "url", "found_id", "found_url"]
    if not {"warc_file", "offset", "length", "record_id", "url"} <= index.columns or not index.rows:
        return pd.DataFrame(columns=columns)
    rows = []
    for row in _sample(index).itertuples():
        found_id = found_url = "<unreadable>"
        file = out_dir / row.warc_file
        if file.is_file():
            with file.open("rb") as fh:
                fh.seek(int(row.offset))
                blob = fh.read(int(row.length))
            # any failure to read leaves "<unreadable>": that is the finding itself
            with contextlib.suppress(Exception):
                record = next(iter(ArchiveIterator(io.BytesIO(blob))))
                found_id = record.rec_headers.get_header("WARC-Record-ID")
                found_url = record.rec_headers.get_header("WARC-Target-URI")
        rows.append({"record_id": row.record_id, "url": row.url, "found_id": found_id,
                     "found_url": found_url})
    return pd.DataFrame(rows, columns=columns)
