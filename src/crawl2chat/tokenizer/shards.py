"""Token shards: documents encoded into flat ``train.bin`` / ``val.bin`` arrays.

In: a :class:`Tokenizer` and units of documents (text + whether the document is held
out). Out, in one folder: ``train.bin`` and ``val.bin`` (raw arrays, uint16 when every
id fits, else uint32; each document is ``<|bos|>`` followed by its tokens) and
``meta.json`` (dtype, vocab size, token / document / byte counts per split).
:func:`encode_part` encodes one unit into files of its own (units run in parallel, in
any order); :func:`join_parts` concatenates them in unit order, so the result is the
same as one writer going through every document in order.
:func:`open_split` maps a split back into memory without reading it.

The split is by document (a salted hash of ``doc_id``), so no document, and no
near-copy sharing its id, ever has tokens on both sides.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crawl2chat.errors import InputError
from crawl2chat.tokenizer.special import BOS
from crawl2chat.tokenizer.tokenizer import Tokenizer

SPLITS: tuple[str, ...] = ("train", "val")
META_FILE = "meta.json"
PARTS_DIR = "parts"  # the encoding units' files until they are joined


def dtype_for(vocab_size: int) -> np.dtype:
    """The narrowest unsigned dtype that holds every id below ``vocab_size``."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def split_hash(doc_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the document id and the seed."""
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class ValRule:
    """Which documents are held out: those whose hash is below ``val_fraction``.

    With two or more documents neither split is left empty: the lowest hash goes to
    val, the highest to train, so tiny runs still have something to validate on. Built
    from one pass over the ids (:meth:`from_ids`), it keeps two ids, not one per document.
    """

    val_fraction: float
    seed: int
    force_val: str | None = None
    force_train: str | None = None

    @classmethod
    def from_ids(cls, ids: Iterable[str], val_fraction: float, seed: int) -> ValRule:
        count = held = 0
        low: tuple[float, str] | None = None
        high: tuple[float, str] | None = None
        for doc_id in ids:
            h = split_hash(doc_id, seed)
            count += 1
            held += h < val_fraction
            low = (h, doc_id) if low is None or h < low[0] else low
            high = (h, doc_id) if high is None or h > high[0] else high
        rule = cls(val_fraction, seed)
        if count >= 2 and low is not None and high is not None:
            rule.force_val = low[1] if held == 0 else None
            rule.force_train = high[1] if held == count else None
        return rule

    def is_val(self, doc_id: str) -> bool:
        if doc_id == self.force_val:
            return True
        if doc_id == self.force_train:
            return False
        return split_hash(doc_id, self.seed) < self.val_fraction


@dataclass
class SplitStats:
    documents: int = 0
    tokens: int = 0  # <|bos|> included
    text_bytes: int = 0  # UTF-8 bytes of the documents' text

    def add(self, other: SplitStats) -> None:
        self.documents += other.documents
        self.tokens += other.tokens
        self.text_bytes += other.text_bytes

    @property
    def bytes_per_token(self) -> float:
        """Compression: text bytes per token, the <|bos|> tokens not counted."""
        content = self.tokens - self.documents
        return self.text_bytes / content if content else 0.0


def part_files(folder: Path, number: int) -> dict[str, Path]:
    """One encoding unit's token files, per split, in ``folder``/parts."""
    return {split: folder / PARTS_DIR / f"{split}-{number:05d}.bin" for split in SPLITS}


def encode_part(tokenizer: Tokenizer, texts: Sequence[str], is_val: Sequence[bool],
                files: dict[str, Path]) -> dict[str, SplitStats]:
    """Encode one unit's documents (in order) into its ``files``, one per split."""
    dtype = dtype_for(tokenizer.vocab_size)
    bos = tokenizer.special_id(BOS)
    stats = {split: SplitStats() for split in SPLITS}
    flat: dict[str, list[int]] = {split: [] for split in SPLITS}
    for text, ids, val in zip(texts, tokenizer.encode_batch(list(texts)), is_val, strict=True):
        split = "val" if val else "train"
        flat[split].append(bos)
        flat[split].extend(ids)
        stats[split].documents += 1
        stats[split].text_bytes += len(text.encode())
    for split, ids in flat.items():
        files[split].parent.mkdir(parents=True, exist_ok=True)
        np.asarray(ids, dtype=dtype).tofile(files[split])
        stats[split].tokens = len(ids)
    return stats


def join_parts(tokenizer: Tokenizer, folder: Path, parts: int,
               stats: dict[str, SplitStats]) -> None:
    """``folder``/{train,val}.bin from the units' files in unit order (then removed),
    and meta.json: the same bytes as one writer encoding every document in order."""
    for split in SPLITS:
        with (folder / f"{split}.bin").open("wb") as out:
            for number in range(parts):
                part = part_files(folder, number)[split]
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
                part.unlink()
    shutil.rmtree(folder / PARTS_DIR, ignore_errors=True)
    meta: dict[str, Any] = {"dtype": dtype_for(tokenizer.vocab_size).name,
                            "vocab_size": tokenizer.vocab_size,
                            "bos_id": tokenizer.special_id(BOS)}
    for split, s in stats.items():
        meta |= {f"{split}_{key}": value for key, value in asdict(s).items()}
        meta[f"{split}_bytes_per_token"] = round(s.bytes_per_token, 4)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


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
