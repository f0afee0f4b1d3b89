"""Quality gate of the ``tokens`` stage.

In: the stage's output folder (tokenizer/, train.bin, val.bin, meta.json). Out: GX
tables that must hold before the shards are committed (loading the tokenizer already
refuses one whose special tokens are not at ids 0..7):

- ``splits`` (one row per split): both splits non-empty; the file holds as many
  tokens as meta.json says; one ``<|bos|>`` per document and the split starts with
  one; every id below the tokenizer's vocabulary size; dtype and vocab as in meta.
- ``round_trip``: the first documents of each split, decoded and encoded again, give
  the same ids (the shards were written by this tokenizer), and the exported
  ``tokenizer.json`` run by Hugging Face ``tokenizers`` gives those ids too (what
  transformers users load matches what the model was trained on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import great_expectations as gx
import numpy as np
import pandas as pd
import tokenizers

from crawl2chat.quality.suite import Table
from crawl2chat.tokenizer.shards import SPLITS, dtype_for, read_meta
from crawl2chat.tokenizer.special import BOS
from crawl2chat.tokenizer.tokenizer import TOKENIZER_FILE, Tokenizer

CHUNK = 1 << 24  # ids scanned at a time: bounded memory on GPT-2-size shards
ROUND_TRIP_DOCS = 8  # per split
ROUND_TRIP_WINDOW = 1 << 20  # ids searched for complete documents at the split's start


def tables(out_dir: Path, cfg: Any) -> list[Table]:
    meta = read_meta(out_dir)
    tokenizer = Tokenizer.load(out_dir / "tokenizer")
    vocab = tokenizer.vocab_size
    bos = tokenizer.special_id(BOS)
    dtype = np.dtype(meta["dtype"])
    ids = {split: _read(out_dir / f"{split}.bin", dtype) for split in SPLITS}

    splits = pd.DataFrame([_split_row(split, ids[split], meta, bos) for split in SPLITS])
    splits["vocab_size"] = vocab
    split_checks = [
        gx.expectations.ExpectTableRowCountToEqual(value=len(SPLITS)),
        gx.expectations.ExpectColumnValuesToBeBetween(column="documents", min_value=1),
        gx.expectations.ExpectColumnValuesToBeBetween(column="tokens", min_value=1),
        gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="file_tokens",
                                                        column_B="tokens"),
        gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="bos_count",
                                                        column_B="documents"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="first_id", value_set=[bos]),
        gx.expectations.ExpectColumnValuesToBeBetween(column="max_id", min_value=0,
                                                      max_value=vocab - 1),
        gx.expectations.ExpectColumnValuesToBeInSet(column="meta_vocab_size",
                                                    value_set=[vocab]),
        gx.expectations.ExpectColumnValuesToBeInSet(column="dtype",
                                                    value_set=[dtype_for(vocab).name]),
    ]

    hf = tokenizers.Tokenizer.from_file(str(out_dir / "tokenizer" / TOKENIZER_FILE))
    hf.encode_special_tokens = True  # documents are ordinary text, as in Tokenizer.encode
    rows = []
    for split in SPLITS:
        for i, doc in enumerate(_first_documents(ids[split], bos)):
            text = tokenizer.decode(doc)
            rows.append({"split": split, "document": i, "tokens": len(doc),
                         "same_ids": tokenizer.encode(text) == doc,
                         "hf_same_ids": hf.encode(text, add_special_tokens=False).ids == doc})
    round_trip = pd.DataFrame(
        rows, columns=["split", "document", "tokens", "same_ids", "hf_same_ids"])
    round_trip_checks = [
        gx.expectations.ExpectColumnValuesToBeInSet(column="same_ids", value_set=[True]),
        gx.expectations.ExpectColumnValuesToBeInSet(column="hf_same_ids", value_set=[True]),
        gx.expectations.ExpectColumnValuesToBeBetween(column="tokens", min_value=1),
    ]
    return [Table("splits", splits, split_checks),
            Table("round_trip", round_trip, round_trip_checks)]


def _read(file: Path, dtype: np.dtype) -> np.ndarray:
    """The split's ids, whatever meta.json claims (a short file must show, not crash)."""
    if not file.is_file() or file.stat().st_size < dtype.itemsize:
        return np.zeros(0, dtype=dtype)
    return np.memmap(file, dtype=dtype, mode="r")


def _split_row(split: str, ids: np.ndarray, meta: dict[str, Any], bos: int) -> dict[str, Any]:
    bos_count, max_id = 0, -1
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        bos_count += int(np.count_nonzero(chunk == bos))
        max_id = max(max_id, int(chunk.max()))
    return {
        "split": split,
        "documents": int(meta.get(f"{split}_documents", 0)),
        "tokens": int(meta.get(f"{split}_tokens", 0)),
        "file_tokens": len(ids),
        "bos_count": bos_count,
        "first_id": int(ids[0]) if len(ids) else -1,
        "max_id": max_id,
        "meta_vocab_size": int(meta.get("vocab_size", -1)),
        "dtype": str(meta.get("dtype")),
    }


def _first_documents(ids: np.ndarray, bos: int) -> list[list[int]]:
    """Up to ROUND_TRIP_DOCS complete documents (without <|bos|>) from the split's start."""
    window = ids[:ROUND_TRIP_WINDOW]
    starts = np.flatnonzero(window == bos).tolist()
    ends = starts[1:] + ([len(ids)] if len(ids) <= ROUND_TRIP_WINDOW else [])
    return [window[s + 1:e].tolist() for s, e in zip(starts, ends, strict=False)][:ROUND_TRIP_DOCS]
