"""What exact resumption needs beyond Lightning's own checkpoint: data position and RNG.

Lightning's checkpoint holds the model, optimizer, LR scheduler and loop counters. This
module adds the rest:

- :class:`StepSampler`: the training order as a pure function of ``(seed, micro-batch
  index, rank)``: pass ``p`` over the dataset is the permutation drawn from
  ``(seed, p)``, and rank ``r``'s micro-batch ``k`` is slice ``k * world + r`` of that
  endless stream. One "epoch" spans the whole run, so Lightning never restarts the
  order at an epoch edge and the optimizer steps stay aligned with micro-batches.
- :class:`ResumableLoader`: a ``DataLoader`` that Lightning treats as stateful: its
  state (micro-batches consumed) goes into the checkpoint, and on resume its next
  iterator starts at that micro-batch.
- :class:`ResumeCallback`: counts consumed micro-batches (the loader itself cannot:
  Lightning fetches one batch ahead) and saves/restores the RNG states (torch, CUDA,
  numpy, Python), so dropout continues exactly where it stopped. All ranks start from
  the same seed and draw alike, so rank 0's states (the ones saved) fit every rank.

Everything stored is a tensor or a plain Python value, so checkpoints load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from crawl2chat.errors import InputError

RNG_KEY = "crawl2chat_rng_states"


class StepSampler(Sampler[int]):
    """Dataset indices for ``total_batches`` micro-batches of ``batch_size`` on one rank,
    from micro-batch ``start`` on (passes over the dataset repeat with new orders)."""

    def __init__(self, n_items: int, batch_size: int, total_batches: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if n_items < 1:
            raise InputError("cannot train on an empty dataset")
        self.n_items, self.batch_size, self.total_batches = n_items, batch_size, total_batches
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.start = 0  # first micro-batch the next iterator yields
        self.consumed = 0  # micro-batches trained on so far (kept by ResumeCallback)
        self._pass = -1
        self._order = np.empty(0, dtype=np.int64)

    def fingerprint(self) -> dict[str, int]:
        """What fixes the order: a checkpoint from another order cannot be continued."""
        return {"n_items": self.n_items, "batch_size": self.batch_size, "seed": self.seed,
                "world_size": self.world_size}

    def item(self, position: int) -> int:
        """The dataset index at ``position`` of the endless shuffled stream."""
        pass_, offset = divmod(position, self.n_items)
        if pass_ != self._pass:
            self._order = np.random.default_rng([self.seed, pass_]).permutation(self.n_items)
            self._pass = pass_
        return int(self._order[offset])

    def __iter__(self) -> Iterator[int]:
        for batch in range(self.start, self.total_batches):
            first = (batch * self.world_size + self.rank) * self.batch_size
            for position in range(first, first + self.batch_size):
                yield self.item(position)

    def __len__(self) -> int:
        # the whole run's length, also after a resume: Lightning counts the batches
        # already done (its restored progress) against it
        return self.total_batches * self.batch_size


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`StepSampler` with Lightning's stateful interface."""

    sampler: StepSampler

    def __init__(self, dataset: Dataset, sampler: StepSampler, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=sampler.batch_size, sampler=sampler,
                         drop_last=False, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {"micro_batches": self.sampler.consumed, **self.sampler.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = self.sampler.fingerprint()
        found = {k: state.get(k) for k in expected}
        if found != expected:
            raise InputError(f"the checkpoint was written for a different data order "
                             f"({found}, now {expected}); delete it to start afresh")
        self.sampler.start = self.sampler.consumed = int(state["micro_batches"])


def rng_states() -> dict[str, Any]:
    """This process's RNG states, as tensors and plain values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumeCallback(L.Callback):
    """Keeps the data position current and puts the RNG states into checkpoints."""

    def __init__(self, sampler: StepSampler) -> None:
        self.sampler = sampler

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # ranks are known once the strategy is set up, before the loader's first iterator
        self.sampler.rank, self.sampler.world_size = trainer.global_rank, trainer.world_size

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        # runs before ModelCheckpoint's hook (Lightning orders checkpoint callbacks last),
        # so a checkpoint written after this micro-batch counts it
        self.sampler.consumed += 1

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = rng_states()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if RNG_KEY in checkpoint:
            set_rng_states(checkpoint[RNG_KEY])
