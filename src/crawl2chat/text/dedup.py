"""Deduplication on disk: the first copy in crawl order wins, in bounded memory.

In: documents as rows of (key, position): the key a fixed number of uint64 words (the
exact hash of the normalised text, or one MinHash band), the position a uint64 that
grows with crawl order (``slice << 32 | row``). Out: :func:`later_copies` writes the
sorted positions of every row whose key an earlier row already had, as one ``.npy``
file; :func:`positions_in` reads the part of it that falls in one slice.

Exact dedup: :func:`text_hash` of the normalised text (NFKC, case folding, whitespace
collapsed), so copies that differ only in layout count as the same; anything that
changes a word keeps them apart (near-duplicates are MinHash's job).

How: rows are scattered by key into partitions of about ``max_rows`` rows on disk
(equal keys land in the same one); each partition is sorted in memory, and every row
whose key equals its predecessor's is a later copy. Those positions are scattered
again by position range and each range sorted, so the output is one sorted array
built from pieces of at most ``max_rows`` rows. Memory is ``O(max_rows)`` whatever
the crawl's size; disk is twice the keys. This is datatrove's signatures -> buckets
split, with a partitioned sort where datatrove merges sorted files.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import shutil
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

HASH_WORDS = 3  # uint64 words holding a sha1 digest (20 bytes, zero-padded)
SLICE_BITS = 32


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    """A stable hex digest of the normalised text (same on every machine and run)."""
    return hashlib.sha1(normalize(text).encode("utf-8"), usedforsecurity=False).hexdigest()


def hash_words(digests: Iterable[str]) -> np.ndarray:
    """:func:`text_hash` digests as rows of ``HASH_WORDS`` uint64 words."""
    raw = b"".join(bytes.fromhex(d).ljust(8 * HASH_WORDS, b"\0") for d in digests)
    return np.frombuffer(raw, dtype=np.uint64).reshape(-1, HASH_WORDS).copy()


def positions(slice_number: int, rows: int) -> np.ndarray:
    """The crawl-order positions of a slice's rows."""
    return (np.uint64(slice_number) << np.uint64(SLICE_BITS)) + np.arange(rows, dtype=np.uint64)


def _scatter(rows: np.ndarray, part_of: np.ndarray, files: list) -> None:
    order = np.argsort(part_of, kind="stable")
    bounds = np.searchsorted(part_of[order], np.arange(len(files) + 1))
    for part, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if hi > lo:
            rows[order[lo:hi]].tofile(files[part])


def later_copies(runs: Callable[[], Iterable[np.ndarray]], total_rows: int, slices: int,
                 out: Path, max_rows: int) -> Path:
    """Positions of rows whose key came earlier, sorted, saved to ``out`` (``.npy``).

    ``runs()`` yields arrays of shape (n, words + 1): key words, then the position last.
    """
    parts = max(1, -(-total_rows // max_rows))
    work = out.with_suffix(".parts")
    work.mkdir(parents=True, exist_ok=True)
    try:
        width = 0
        with contextlib.ExitStack() as stack:
            by_key = [stack.enter_context((work / f"k{p}").open("wb")) for p in range(parts)]
            for run in runs():
                width = run.shape[1]
                _scatter(run, run[:, 0] % np.uint64(parts), by_key)
        with contextlib.ExitStack() as stack:
            by_pos = [stack.enter_context((work / f"p{p}").open("wb")) for p in range(parts)]
            for p in range(parts):
                rows = np.fromfile(work / f"k{p}", dtype=np.uint64).reshape(-1, max(width, 1))
                if not len(rows):
                    continue
                # sort by key, then position: the first row of each key is its first copy
                order = np.lexsort([rows[:, -1], *(rows[:, w] for w in range(width - 2, -1, -1))])
                keys = rows[order, :-1]
                later = np.zeros(len(rows), dtype=bool)
                later[1:] = (keys[1:] == keys[:-1]).all(axis=1)
                found = rows[order[later], -1]
                slice_of = (found >> np.uint64(SLICE_BITS)).astype(np.int64)
                _scatter(found, slice_of * parts // max(slices, 1), by_pos)
        total = sum((work / f"p{p}").stat().st_size for p in range(parts)) // 8
        if not total:  # an empty file cannot be memory-mapped
            np.save(out, np.zeros(0, dtype=np.uint64))
            return out
        result = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint64, shape=(total,))
        start = 0
        for p in range(parts):
            found = np.sort(np.fromfile(work / f"p{p}", dtype=np.uint64))
            result[start:start + len(found)] = found
            start += len(found)
        result.flush()
        del result
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def positions_in(found: Path, slice_number: int) -> np.ndarray:
    """The positions in ``found`` (a :func:`later_copies` file) that belong to one slice."""
    data = np.load(found, mmap_mode="r")
    first = np.uint64(slice_number) << np.uint64(SLICE_BITS)
    last = np.uint64(slice_number + 1) << np.uint64(SLICE_BITS)
    lo, hi = np.searchsorted(data, [first, last])
    return np.array(data[lo:hi])
