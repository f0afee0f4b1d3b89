"""Fixed-length windows over a flat token array: the samples a GPT trains and is scored on.

In: a 1-D token array (e.g. the memmap of ``train.bin`` / ``val.bin``, see
:mod:`crawl2chat.tokenizer.shards`), a window length and how to place the windows. Out:
a map-style dataset whose items are ``{"input_ids": LongTensor[T], "targets":
LongTensor[T]}`` (the targets shifted by one token), for
:func:`crawl2chat.model.train.fit` and :mod:`crawl2chat.model.evaluate` alike.

A pretraining mix (:class:`DataCfg`, the ``base.data`` section) draws training windows
from several token arrays by weight (:class:`MixedWindows`); a source given in
``epochs`` weighs its size times its epochs, so over a run whose tokens add up to the
sum of size x epochs each source is seen that many times (the higher-quality one more).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from crawl2chat.config import build
from crawl2chat.errors import ConfigError, InputError


@dataclass
class MixEntry:
    """One source of a pretraining mix: a tokens folder and its ``weight`` or ``epochs``."""

    path: str
    weight: float | None = None
    epochs: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.weight, self.epochs) if v is not None]
        if len(given) != 1 or given[0] <= 0:
            raise ConfigError(f"base.data.mix: {self.path!r} needs one of weight or epochs, "
                              f"> 0 (got weight {self.weight}, epochs {self.epochs})")


@dataclass
class DataCfg:
    """Where training windows come from: ``mix`` empty = the stage's tokens alone."""

    mix: list[Any] = field(default_factory=list)  # MixEntry, or its mapping in params

    def __post_init__(self) -> None:
        self.mix = [e if isinstance(e, MixEntry) else build(MixEntry, e, f"base.data.mix[{i}]")
                    for i, e in enumerate(self.mix)]
        if len({e.weight is None for e in self.mix}) > 1:
            raise ConfigError("base.data.mix: give every source a weight, or every source "
                              "epochs (the two do not mix)")


def mix_weights(entries: list[MixEntry], sizes: list[int]) -> np.ndarray:
    """Each source's share of the windows: its weight, or its size times its epochs."""
    raw = np.array([e.weight if e.weight is not None else float(e.epochs or 0) * n
                    for e, n in zip(entries, sizes, strict=True)], dtype=np.float64)
    return raw / raw.sum()


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
            start = self.random_start(np.random.default_rng([self.seed, index]))
        return self.at(start)

    def at(self, start: int) -> dict[str, torch.Tensor]:
        """The window that begins at token ``start``."""
        chunk = torch.from_numpy(
            np.asarray(self.tokens[start:start + self.block_size + 1], dtype=np.int64))
        return {"input_ids": chunk[:-1], "targets": chunk[1:]}

    def random_start(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, self._high))


class MixedWindows(Dataset):
    """``count`` random windows drawn from several token arrays in proportion to
    ``weights``; item ``i`` depends on ``seed`` and ``i`` only. With one source it gives
    exactly :class:`TokenWindows`'s random windows."""

    def __init__(self, sources: list[np.ndarray], weights: np.ndarray, block_size: int,
                 count: int, seed: int = 0) -> None:
        self.parts = [TokenWindows(tokens, block_size, "random", count, seed)
                      for tokens in sources]
        self.edges = np.cumsum(weights)[:-1]  # source k for a uniform draw in its span
        self.count, self.seed = count, seed

    def __len__(self) -> int:
        return self.count

    def source_of(self, index: int) -> tuple[int, np.random.Generator]:
        """Which source item ``index`` comes from, and the generator that places it."""
        rng = np.random.default_rng([self.seed, index])
        if len(self.parts) == 1:
            return 0, rng
        return int(np.searchsorted(self.edges, rng.random(), side="right")), rng

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        k, rng = self.source_of(index)
        return self.parts[k].at(self.parts[k].random_start(rng))
