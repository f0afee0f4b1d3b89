"""Text that is already extracted, as the text stage's input: FineWeb-style rows.

In: :class:`SourceCfg` (the ``text.source`` section): local Parquet files (globs), a
``save_to_disk`` folder, or a Hugging Face dataset id (``hf``, with ``name``, ``split``,
``revision``, ``streaming``), read through Hugging Face ``datasets``. Rows have FineWeb's
columns (``text``, ``id``, ``dump``, ``url``, ``date``, ``file_path``, ``language``,
``language_score``, ``token_count``); only ``text`` is required.
Out: :func:`plan` cuts the input into :class:`Slice` work units (Parquet: runs of whole
row groups; a folder or a prepared hub dataset: row ranges; a streaming hub dataset: its
shards), each small enough to be one task and fixed by the input and ``chunk_records``
alone; :func:`read_slice` gives a slice's rows as :class:`~crawl2chat.text.steps.Doc`
with their text set, ready for the steps after extraction. :func:`describe` says what
was read (dataset id, revision, files) for the manifest, MLflow and ``audit``.

Hub access follows ``HF_HUB_OFFLINE``, which crawl2chat sets to 1 unless the environment
already says otherwise: a hub id that is not in the local cache is a ConfigError that
names the id and how to allow the download.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawl2chat.config import NOT_A_PARAM
from crawl2chat.errors import ConfigError, InputError
from crawl2chat.text.steps import Doc

if TYPE_CHECKING:
    from crawl2chat.crawl.warc import ReadStats

KINDS = ("parquet", "disk", "hf")
FINEWEB_COLUMNS = ("text", "id", "dump", "url", "date", "file_path", "language",
                   "language_score", "token_count")


@dataclass
class SourceCfg:
    """One of ``parquet`` (globs), ``disk`` (a save_to_disk folder) or ``hf`` (a hub id)."""

    parquet: list[str] = field(default_factory=list)
    disk: str | None = None
    hf: str | None = None
    name: str | None = None  # hf: the dataset's config, e.g. sample-10BT
    split: str = "train"
    revision: str | None = None  # hf: a commit, tag or branch; null = main
    streaming: bool = True  # hf: read the files as they come, no Arrow cache
    max_docs: int | None = None  # read at most this many rows (streaming hf: from shard 0)
    # the folder relative paths are read from: the project root (set by the stage)
    root: str = field(default=".", metadata=NOT_A_PARAM)

    def __post_init__(self) -> None:
        given = [k for k in KINDS if getattr(self, k)]
        if len(given) != 1:
            raise ConfigError(f"text.source: give exactly one of {list(KINDS)}, got "
                              f"{given or 'none'}")
        if self.max_docs is not None and self.max_docs < 1:
            raise ConfigError(f"text.source.max_docs: must be >= 1 or null, got {self.max_docs}")

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k))

    def path(self, where: str) -> Path:
        return Path(where) if os.path.isabs(where) else Path(self.root) / where


@dataclass(frozen=True)
class Slice:
    """Rows ``start`` up to ``stop`` of ``location`` (Parquet: row groups; hf streaming:
    shard ``start`` of ``stop``), at most ``rows`` of them."""

    kind: str
    location: str
    start: int
    stop: int
    rows: int
    source: SourceCfg
    extracted = True  # text already: the URL filter and extraction are skipped

    def pages(self, in_dir: Path, read: ReadStats) -> list[Doc]:
        """The slice's rows (``in_dir`` is unused: the source names its own files)."""
        docs = read_slice(self)
        read.responses += len(docs)
        return docs


def parquet_files(cfg: SourceCfg) -> list[Path]:
    """The Parquet files the globs name, in glob order, each sorted; no repeats."""
    found: dict[Path, None] = {}
    for pattern in cfg.parquet:
        matches = sorted(Path(m).resolve() for m in glob.glob(str(cfg.path(pattern)),
                                                              recursive=True))
        if not matches:
            raise InputError(f"text.source.parquet: no file matches {pattern!r} "
                             f"(looked in {Path(cfg.root).resolve()})")
        found.update(dict.fromkeys(matches))
    return list(found)


def local_files(cfg: SourceCfg) -> list[Path]:
    """The local files the source reads (for DVC and the manifest); none for a hub id."""
    if cfg.kind == "parquet":
        return parquet_files(cfg)
    if cfg.kind == "disk":
        folder = cfg.path(str(cfg.disk))
        return sorted(p for p in folder.rglob("*") if p.is_file())
    return []


def _capped(slices: list[Slice], cap: int | None) -> list[Slice]:
    """The slices that hold the first ``cap`` rows, the last one cut short."""
    if cap is None:
        return slices
    out: list[Slice] = []
    for piece in slices:
        left = cap - sum(p.rows for p in out)
        if left <= 0:
            break
        out.append(replace(piece, rows=min(piece.rows, left)))
    return out


def plan(cfg: SourceCfg, chunk_records: int) -> list[Slice]:
    """The source's work units in row order; see the module docstring."""
    slices: list[Slice] = []
    if cfg.kind == "parquet":
        import pyarrow.parquet as pq

        for file in parquet_files(cfg):
            meta = pq.ParquetFile(file).metadata
            first, rows = 0, 0
            for group in range(meta.num_row_groups):
                rows += meta.row_group(group).num_rows
                if rows >= chunk_records or group == meta.num_row_groups - 1:
                    slices.append(Slice("parquet", str(file), first, group + 1, rows, cfg))
                    first, rows = group + 1, 0
    elif cfg.kind == "hf" and cfg.streaming:
        shards = _hub_dataset(cfg).n_shards
        slices = [Slice("hf", str(cfg.hf), i, shards, -1, cfg) for i in range(shards)]
        if cfg.max_docs is not None:  # shard sizes are unknown until read
            return [Slice("hf", str(cfg.hf), 0, shards, cfg.max_docs, cfg)]
    else:
        total = len(_table(cfg))
        slices = [Slice(cfg.kind, _where(cfg), start, min(total, start + chunk_records),
                        min(total, start + chunk_records) - start, cfg)
                  for start in range(0, total, chunk_records)]
    return _capped(slices, cfg.max_docs)


def read_slice(piece: Slice) -> list[Doc]:
    """The slice's rows as documents with their text (no HTML: extraction is skipped)."""
    cfg = piece.source
    if piece.kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(piece.location).read_row_groups(range(piece.start, piece.stop))
        rows = table.slice(0, piece.rows).to_pylist()
    elif piece.kind == "hf" and cfg.streaming:
        shard = _hub_dataset(cfg).shard(num_shards=piece.stop, index=piece.start)
        rows = list(shard.take(piece.rows)) if piece.rows >= 0 else list(shard)
    else:
        rows = _table(cfg).select(range(piece.start, piece.start + piece.rows)).to_list()
    where = f"{piece.location} rows {piece.start}..{piece.stop}"
    return [_doc(row, f"{piece.location}:{piece.start}:{n}", where) for n, row in enumerate(rows)]


def _doc(row: dict[str, Any], fallback_id: str, where: str) -> Doc:
    text = row.get("text")
    if not isinstance(text, str):
        raise InputError(f"{where}: a row without a string 'text' column (columns: "
                         f"{sorted(row)}); FineWeb's columns are {list(FINEWEB_COLUMNS)}")
    return Doc(doc_id=str(row.get("id") or fallback_id), url=str(row.get("url") or ""),
               warc_file=str(row.get("file_path") or ""), text=text,
               dump=str(row.get("dump") or ""), date=str(row.get("date") or ""))


def _where(cfg: SourceCfg) -> str:
    return str(cfg.path(str(cfg.disk))) if cfg.kind == "disk" else str(cfg.hf)


def _table(cfg: SourceCfg) -> Any:
    """A saved folder or a prepared (non-streaming) hub split, memory-mapped."""
    if cfg.kind == "hf":
        return _hub_dataset(cfg)
    import datasets

    folder = cfg.path(str(cfg.disk))
    try:
        loaded = datasets.load_from_disk(str(folder))
    except FileNotFoundError as err:
        raise InputError(f"text.source.disk: {folder} is not a save_to_disk folder: "
                         f"{err}") from err
    if isinstance(loaded, datasets.DatasetDict):
        if cfg.split not in loaded:
            raise InputError(f"text.source.split: {folder} has splits {list(loaded)}, "
                             f"not {cfg.split!r}")
        loaded = loaded[cfg.split]
    return loaded


def _hub_dataset(cfg: SourceCfg) -> Any:
    import datasets

    try:
        return datasets.load_dataset(str(cfg.hf), cfg.name, split=cfg.split,
                                     revision=cfg.revision, streaming=cfg.streaming)
    except (ConnectionError, FileNotFoundError, ValueError) as err:
        offline = datasets.config.HF_HUB_OFFLINE
        how = ("hub access is off (HF_HUB_OFFLINE=1): run once with HF_HUB_OFFLINE=0 in the "
               "environment to download it into the Hugging Face cache, or point "
               "text.source.parquet at local copies of its files" if offline
               else "check the id, name, split and revision")
        raise ConfigError(f"text.source.hf: cannot load {cfg.hf!r} (name {cfg.name!r}, split "
                          f"{cfg.split!r}, revision {cfg.revision or 'main'}): {how} "
                          f"({type(err).__name__}: {err})") from err


def describe(cfg: SourceCfg, slices: list[Slice]) -> dict[str, Any]:
    """What the stage read, for ``source.json``: kind, dataset id and config, revision,
    and every file or folder with the rows taken from it."""
    rows: dict[str, int] = {}
    for piece in slices:
        rows[piece.location] = rows.get(piece.location, 0) + max(piece.rows, 0)
    return {"kind": cfg.kind, "hf": cfg.hf, "name": cfg.name, "split": cfg.split,
            "revision": cfg.revision, "streaming": cfg.streaming, "max_docs": cfg.max_docs,
            "files": [{"path": where, "rows": n} for where, n in rows.items()]}


def hub_inputs(described: dict[str, Any]) -> dict[str, dict[str, str]]:
    """A hub dataset as a lineage input: ``hf://datasets/<id>@<revision>/<name>/<split>``,
    digest over its description (DVC cannot hash it). Local files need none: they are
    fingerprinted before the run like any other input file."""
    if described.get("kind") != "hf":
        return {}
    name = (f"hf://datasets/{described['hf']}@{described['revision'] or 'main'}/"
            f"{described['name'] or 'default'}/{described['split']}")
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return {name: {"digest": digest, "kind": "dataset", "hf": str(described["hf"]),
                   "config": str(described["name"] or ""), "split": str(described["split"]),
                   "revision": str(described["revision"] or "")}}
