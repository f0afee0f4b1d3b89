"""Token shards: documents encoded into flat ``train.bin`` / ``val.bin`` arrays.

In: a :class:`Tokenizer` and batches of documents (text + whether the document is
held out). Out, in one folder: ``train.bin`` and ``val.bin`` (raw arrays, uint16 when
every id fits, else uint32; each document is ``<|bos|>`` followed by its tokens) and
``meta.json`` (dtype, vocab size, token / document / byte counts per split).
:func:`open_split` maps a split back into memory without reading it.

The split is by document (a salted hash of ``doc_id``), so no document, and no
near-copy sharing its id, ever has tokens on both sides.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from crawl2chat.errors import InputError
from crawl2chat.tokenizer.special import BOS
from crawl2chat.tokenizer.tokenizer import Tokenizer

SPLITS: tuple[str, ...] = ("train", "val")
META_FILE = "meta.json"


def dtype_for(vocab_size: int) -> np.dtype:
    """The narrowest unsigned dtype that holds every id below ``vocab_size``."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def split_hash(doc_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the document id and the seed."""
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_val(hashes: np.ndarray, val_fraction: float) -> np.ndarray:
    """Which documents are held out: those whose hash is below ``val_fraction``.

    With two or more documents neither split is left empty: the lowest hash goes to
    val, the highest to train, so tiny runs still have something to validate on.
    """
    is_val = hashes < val_fraction
    if len(hashes) >= 2:
        if not is_val.any():
            is_val[np.argmin(hashes)] = True
        if is_val.all():
            is_val[np.argmax(hashes)] = False
    return is_val


@dataclass
class SplitStats:
    documents: int = 0
    tokens: int = 0  # <|bos|> included
    text_bytes: int = 0  # UTF-8 bytes of the documents' text

    @property
    def bytes_per_token(self) -> float:
        """Compression: text bytes per token, the <|bos|> tokens not counted."""
        content = self.tokens - self.documents
        return self.text_bytes / content if content else 0.0


def write_shards(tokenizer: Tokenizer, batches: Iterable[tuple[list[str], Sequence[bool]]],
                 folder: Path, total_documents: int | None = None) -> dict[str, SplitStats]:
    """Encode every batch of (texts, is_val) into ``folder``/{train,val}.bin + meta.json."""
    dtype = dtype_for(tokenizer.vocab_size)
    bos = tokenizer.special_id(BOS)
    stats = {split: SplitStats() for split in SPLITS}
    files = {split: (folder / f"{split}.bin").open("wb") for split in SPLITS}
    try:
        with tqdm(total=total_documents, desc="encode", unit="doc") as bar:
            for texts, is_val in batches:
                flat: dict[str, list[int]] = {split: [] for split in SPLITS}
                for text, ids, val in zip(texts, tokenizer.encode_batch(texts), is_val,
                                          strict=True):
                    split = "val" if val else "train"
                    flat[split].append(bos)
                    flat[split].extend(ids)
                    stats[split].documents += 1
                    stats[split].text_bytes += len(text.encode())
                for split, ids in flat.items():
                    if ids:
                        np.asarray(ids, dtype=dtype).tofile(files[split])
                        stats[split].tokens += len(ids)
                bar.update(len(texts))
    finally:
        for file in files.values():
            file.close()
    meta: dict[str, Any] = {"dtype": dtype.name, "vocab_size": tokenizer.vocab_size,
                            "bos_id": bos}
    for split, s in stats.items():
        meta |= {f"{split}_{key}": value for key, value in asdict(s).items()}
        meta[f"{split}_bytes_per_token"] = round(s.bytes_per_token, 4)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return stats


def read_meta(folder: Path) -> dict[str, Any]:
    file = Path(folder) / META_FILE
    if not file.is_file():
        raise InputError(f"{file} not found: run the tokens stage first")
    return json.loads(file.read_text())


def open_split(folder: Path, split: str) -> np.memmap:
    """The tokens of ``split`` ("train" or "val") as a read-only memory map."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    folder = Path(folder)
    meta = read_meta(folder)
    file = folder / f"{split}.bin"
    if not file.is_file():
        raise InputError(f"{file} not found: run the tokens stage first")
    dtype = np.dtype(meta["dtype"])
    expected = int(meta[f"{split}_tokens"])
    found = file.stat().st_size // dtype.itemsize
    if found != expected:
        raise InputError(f"{file}: holds {found} tokens, {META_FILE} says {expected}; "
                         f"rerun the tokens stage")
    if expected == 0:  # np.memmap cannot map an empty file
        raise InputError(f"{file} is empty: the {split} split has no documents")
    return np.memmap(file, dtype=dtype, mode="r", shape=(expected,))
