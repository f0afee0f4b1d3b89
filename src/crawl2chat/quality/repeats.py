"""Keys repeated anywhere in a stage output, counted on disk in bounded memory.

In: the key columns of an output's parts (shards), read one part at a time. Out:
:func:`repeated` counts the rows whose key an earlier row already had, across all
parts, with the sort on disk of :func:`crawl2chat.text.dedup.later_copies` (memory for
``max_rows`` keys, whatever the output's size). A gate that validates shard by shard
sees duplicates inside one shard; this is how it sees those in different shards.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from crawl2chat.text.dedup import hash_words, later_copies, positions

MAX_ROWS = 1_000_000  # keys sorted in memory at once
T = TypeVar("T")


def digests(values: Iterable[object]) -> list[str]:
    """A stable sha1 hex digest of each value's text (missing values count as empty)."""
    return [hashlib.sha1(("" if v is None else str(v)).encode("utf-8"),
                         usedforsecurity=False).hexdigest() for v in values]


def repeated(parts: Sequence[T], keys: Callable[[T], list[str]], total_rows: int,
             max_rows: int = MAX_ROWS) -> int:
    """How many rows of ``parts`` (shard files, row group numbers ...; ``keys`` reads
    one part's keys as hex digests) repeat the key of an earlier row, in the same part
    or an earlier one."""
    def runs() -> Iterator[np.ndarray]:
        for number, part in enumerate(parts):
            found = keys(part)
            if found:
                yield np.column_stack([hash_words(found), positions(number, len(found))])

    with tempfile.TemporaryDirectory(prefix="crawl2chat-gate-") as work:
        found = later_copies(runs, max(total_rows, 1), len(parts), Path(work) / "repeats.npy",
                             max_rows)
        return len(np.load(found, mmap_mode="r"))
