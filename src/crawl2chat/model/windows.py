"""Fixed-length windows over a flat token array: the samples a GPT trains and is scored on.

In: a 1-D token array (e.g. the memmap of ``train.bin`` / ``val.bin``, see
:mod:`crawl2chat.tokenizer.shards`), a window length and how to place the windows. Out:
a map-style dataset whose items are ``{"input_ids": LongTensor[T], "targets":
LongTensor[T]}`` (the targets shifted by one token), for
:func:`crawl2chat.model.train.fit` and :mod:`crawl2chat.model.evaluate` alike.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from crawl2chat.errors import InputError


class TokenWindows(Dataset):
    """Windows of ``block_size + 1`` tokens from a flat token array (e.g. a memmap).

    ``mode="random"``: ``count`` windows at random offsets drawn from ``seed`` and the
    item index, so an item is the same whatever order or worker reads it.
    ``mode="strided"``: ``count`` windows spread evenly over the array (default: every
    non-overlapping window), for a validation set that covers the whole split.
    """

    def __init__(self, tokens: np.ndarray, block_size: int, mode: str = "strided",
                 count: int | None = None, seed: int = 0) -> None:
        span = len(tokens) - block_size - 1  # the last valid start
        if span < 0:
            raise InputError(f"{len(tokens)} tokens cannot fill one window of "
                             f"block_size + 1 = {block_size + 1}")
        if mode not in ("random", "strided"):
            raise ValueError(f"mode must be 'random' or 'strided', got {mode!r}")
        if mode == "random" and not count:
            raise ValueError("random windows need a count")
        self.tokens, self.block_size, self.mode, self.seed = tokens, block_size, mode, seed
        self.starts: np.ndarray | None = None
        if mode == "strided":
            every = np.arange(0, span + 1, block_size)
            self.starts = every if count is None or count >= len(every) else (
                np.linspace(0, span, count).astype(np.int64))
            self.count = len(self.starts)
        else:
            self.count = int(count or 0)
        self._high = span + 1

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        if self.starts is not None:
            start = int(self.starts[index])
        else:
            start = int(np.random.default_rng([self.seed, index]).integers(0, self._high))
        chunk = torch.from_numpy(
            np.asarray(self.tokens[start:start + self.block_size + 1], dtype=np.int64))
        return {"input_ids": chunk[:-1], "targets": chunk[1:]}
