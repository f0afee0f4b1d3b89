"""Quality gate of the ``crawl`` stage.

In: the stage's output folder (``crawl-*.warc.gz`` shards and ``index.parquet``).
Out: GX tables that must hold before the crawl is committed:

- ``index`` (one row per record): the columns of the contract, at least one record,
  unique record ids and (file, offset) pairs, http(s) URLs, 2xx statuses, HTML media
  types, sane offsets and lengths.
- ``shards`` (one row per shard file and per file the index names): the file exists,
  the index covers it from byte 0 to its end without gaps or overlaps.
- ``lookups`` (a deterministic sample of up to 500 index rows): reading ``length``
  bytes at ``offset`` gives a standalone record with the indexed id and URL.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from warcio.archiveiterator import ArchiveIterator

from crawl2chat.crawl.headers import HTML_TYPES
from crawl2chat.quality.suite import Table
from crawl2chat.stages.crawl import INDEX, INDEX_COLUMNS

LOOKUPS = 500

E = gx.expectations


def tables(out_dir: Path, cfg: Any) -> list[Table]:
    index = pd.read_parquet(out_dir / INDEX)
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
    return [Table("index", index, index_checks),
            Table("shards", _shards(out_dir, index), shard_checks),
            Table("lookups", _lookups(out_dir, index), lookup_checks)]


def _shards(out_dir: Path, index: pd.DataFrame) -> pd.DataFrame:
    names = sorted({p.name for p in out_dir.glob("*.warc.gz")}
                   | set(index.get("warc_file", pd.Series(dtype=str)).dropna()))
    rows = []
    for name in names:
        file = out_dir / name
        part = (index[index["warc_file"] == name].sort_values("offset")
                if {"warc_file", "offset", "length"} <= set(index) else index.iloc[:0])
        starts = part["offset"].tolist() if len(part) else []
        ends = (part["offset"] + part["length"]).tolist() if len(part) else []
        gaps = sum(a != b for a, b in zip([0, *ends[:-1]], starts, strict=False))
        rows.append({"warc_file": name, "exists": file.is_file(),
                     "size": file.stat().st_size if file.is_file() else -1,
                     "indexed_end": ends[-1] if ends else 0, "gaps": int(gaps)})
    return pd.DataFrame(rows, columns=["warc_file", "exists", "size", "indexed_end", "gaps"])


def _lookups(out_dir: Path, index: pd.DataFrame) -> pd.DataFrame:
    columns = ["record_id", "url", "found_id", "found_url"]
    if not {"warc_file", "offset", "length", "record_id", "url"} <= set(index) or index.empty:
        return pd.DataFrame(columns=columns)
    step = max(1, len(index) // LOOKUPS)
    rows = []
    for row in index.iloc[::step].itertuples():
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
