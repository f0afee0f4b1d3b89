"""One page's path through the chain: crawled? kept or removed, and why? which tokens?

In: a model's chain (:mod:`.chain`), a URL or doc id, the project root. Out: a dict
saying where the page is in the crawl (its shard, the WARC it was read from), whether
the text stage kept it (its language) or removed it (the step and reason), and for a
kept page the token file (``train.bin`` or ``val.bin``) and the offset its tokens start
at, found by encoding the kept text with the run's tokenizer. :func:`read_rows` reads one
file (the crawl's ``index.parquet``) or a prefix's shards (the text stage's
``documents-00000.parquet``..., ``removed-00000.parquet``...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2chat import paths
from crawl2chat.audit.chain import Link
from crawl2chat.errors import InputError
from crawl2chat.text.shards import DOCUMENTS, REMOVED
from crawl2chat.tokenizer.shards import SPLITS, open_split, read_meta
from crawl2chat.tokenizer.tokenizer import Tokenizer

TOKENIZER_DIR = "tokenizer"


def read_rows(folder: Path, name: str, column: str, value: str) -> list[dict[str, Any]]:
    """Rows of ``folder/NAME.parquet`` (or its shards ``NAME-*.parquet``) whose
    ``column`` equals ``value``."""
    stem = Path(name).stem
    files = sorted(folder.glob(f"{stem}.parquet")) + sorted(folder.glob(f"{stem}-*.parquet"))
    rows: list[dict[str, Any]] = []
    for file in files:
        try:
            rows += pq.read_table(file, filters=[(column, "=", value)]).to_pylist()
        except (pa.ArrowException, OSError) as err:
            raise InputError(f"{file}: cannot read it as parquet ({err})") from err
    return rows


def _folders(chain: list[Link], root: Path) -> tuple[dict[str, Path], list[str]]:
    """Each stage's output folder: the audited one, else the working tree's."""
    folders, notes = {}, []
    for link in chain:
        if link.files_at is not None and not link.prefix:
            folders[link.stage] = link.files_at
        else:
            folders[link.stage] = paths.stage_output(link.stage, root)
            notes.append(f"{link.stage}: read from {paths.STAGE_OUTPUTS[link.stage]} in the "
                         f"working tree (run `crawl2chat audit` to check it is the one used)")
    for stage in ("crawl", "text", "tokens"):
        if stage not in folders or not folders[stage].is_dir():
            raise InputError(f"the {stage} stage's output is not here: --doc needs "
                             f"{paths.STAGE_OUTPUTS[stage]} (`dvc pull` fetches it)")
    return folders, notes


def _locate(folder: Path, text: str) -> dict[str, Any] | None:
    """The split file and token offset where ``<|bos|> + encode(text)`` starts."""
    tok = Tokenizer.load(folder / TOKENIZER_DIR)
    bos = read_meta(folder)["bos_id"]
    ids = np.asarray([bos, *tok.encode(text)])
    for split in SPLITS:
        tokens = open_split(folder, split)
        starts = np.flatnonzero(tokens[: len(tokens) - len(ids) + 1] == bos)
        for start in starts:
            if np.array_equal(tokens[start:start + len(ids)], ids):
                return {"file": f"{split}.bin", "split": split, "offset": int(start),
                        "tokens": len(ids)}
    return None


def trace(chain: list[Link], doc: str, root: Path) -> dict[str, Any]:
    """Where ``doc`` (a URL or a doc id) went on its way into the model of ``chain``."""
    folders, notes = _folders(chain, root)
    key = "url" if "://" in doc else "doc_id"
    answer: dict[str, Any] = {"model": chain[0].where, "query": doc, "found": False}
    crawled = read_rows(folders["crawl"], paths.CRAWL_INDEX, key if key == "url" else
                        "record_id", doc if key == "url" else f"<{doc}>")
    if not crawled:
        answer["why"] = ("not in the crawl: no record with this "
                         f"{'URL' if key == 'url' else 'id'} was copied from the sources "
                         f"(never read, or skipped: not HTML, an error status, a duplicate)")
        answer["notes"] = notes
        return answer
    record = crawled[0]
    answer.update(found=True, doc_id=record["record_id"].strip("<>"), url=record["url"],
                  crawl={"shard": record["warc_file"], "offset": record["offset"],
                         "source": record["source_file"]})
    kept = read_rows(folders["text"], DOCUMENTS, "doc_id", answer["doc_id"])
    if kept:
        answer.update(kept=True, why=f"kept: passed every text filter (language "
                      f"{kept[0]['lang']}, score {float(kept[0]['lang_score']):.2f})")
        where = _locate(folders["tokens"], kept[0]["text"])
        answer["tokens"] = where or "not found in train.bin or val.bin"
        if where:
            answer["trained_on"] = (where["split"] == "train")
    else:
        removed = read_rows(folders["text"], REMOVED, "doc_id", answer["doc_id"])
        reason = removed[0]["reason"] if removed else "not in the text stage's output"
        answer.update(kept=False, why=f"removed by the text stage: {reason}")
    answer["notes"] = notes
    return answer
