"""Train a GPT with Lightning: ``fit(model, train, val, cfg, out_dir) -> metrics``.

In: a :class:`~crawl2chat.model.gpt.GPT`, map-style datasets whose items are
``{"input_ids": LongTensor[T], "targets": LongTensor[T]}`` (e.g. :class:`TokenWindows`
over a flat token file) and a :class:`TrainCfg`. Out: the model trained in place,
``out_dir/loss_curve.png`` and the final metrics. Metrics go to the active MLflow run,
if there is one; nothing else is written (no checkpoints, no ``lightning_logs``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from crawl2chat.errors import InputError
from crawl2chat.model.gpt import GPT

LOSS_CURVE = "loss_curve.png"


@dataclass
class TrainCfg:
    """How to train; the ``train`` subsection of the ``base`` / ``sft`` params."""

    lr: float = 6e-4  # peak learning rate, reached after warmup
    min_lr: float = 6e-5  # end of the cosine decay (GPT-3 / nanoGPT: lr / 10)
    warmup_steps: int = 20  # linear warmup, in optimizer steps
    max_steps: int = 200  # optimizer steps in all
    batch_size: int = 16  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (tokens/step = this x batch x T)
    weight_decay: float = 0.1  # AdamW decay on matrices; biases and norms are not decayed
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # clip the global grad norm to this; 0 turns clipping off
    eval_every: int = 50  # optimizer steps between validations (and samples)
    eval_batches: int = 8  # micro-batches per validation
    log_every: int = 10  # optimizer steps between logged train losses
    precision: str = "bf16-mixed"  # Lightning precision: bf16 autocast is fastest on CPU too
    seed: int = 1337  # weights, data order, dropout: the same seed, the same model
    num_workers: int = 0  # DataLoader workers; 0 leaves both cores of a laptop to the model
    compile: bool = False  # torch.compile the model: pays off on GPUs, not on small CPUs
    progress_bar: bool = True


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


def fit(model: GPT, train: Dataset, val: Dataset, cfg: TrainCfg, out_dir: Path,
        sample_fn: Callable[[GPT], list[str]] | None = None,
        reference_lines: dict[str, float] | None = None) -> dict[str, float]:
    """Train ``model`` in place for ``cfg.max_steps`` optimizer steps; return metrics
    (train_loss, val_loss, steps, tokens, tokens_per_s, train_time_s; the time and the
    rate include the validations and samples along the way).

    ``sample_fn(model)`` runs after every validation; its texts are logged to MLflow.
    ``reference_lines`` (label -> loss) are drawn on the loss curve as baselines.
    """
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar

    from crawl2chat import runtime
    from crawl2chat.model.lit import LitGPT

    runtime.quiet_libraries()  # importing lightning set its logger back to INFO
    L.seed_everything(cfg.seed, verbose=False)
    model.train()  # a loaded checkpoint comes in eval mode; dropout must be on while training
    train_loader = DataLoader(
        train, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed), num_workers=cfg.num_workers,
        pin_memory=torch.cuda.is_available(), persistent_workers=cfg.num_workers > 0)
    val_loader = DataLoader(val, batch_size=cfg.batch_size, shuffle=False,
                            num_workers=cfg.num_workers)
    if len(train_loader) == 0 or len(val_loader) == 0:
        raise InputError(f"too few windows for batch_size {cfg.batch_size}: "
                         f"{len(train)} train, {len(val)} val")
    net = torch.compile(model) if cfg.compile else model  # compile the module, not Lightning's
    lit = LitGPT(net, cfg, sample_fn=(lambda: sample_fn(model)) if sample_fn else None)
    logger = _mlflow_logger()
    with tempfile.TemporaryDirectory(prefix="crawl2chat-trainer-") as scratch:
        trainer = L.Trainer(
            accelerator="auto", devices=1, precision=cfg.precision,  # type: ignore[arg-type]
            max_steps=cfg.max_steps, max_epochs=-1,
            accumulate_grad_batches=cfg.grad_accum,
            gradient_clip_val=cfg.grad_clip or None,
            # counted in micro-batches across epochs, so small SFT sets can loop
            val_check_interval=cfg.eval_every * cfg.grad_accum, check_val_every_n_epoch=None,
            limit_val_batches=cfg.eval_batches, num_sanity_val_steps=0,
            log_every_n_steps=cfg.log_every, logger=logger, enable_checkpointing=False,
            enable_model_summary=False, enable_progress_bar=cfg.progress_bar,
            # tqdm, not the rich bar Lightning picks when rich is installed: plain lines in logs
            callbacks=[TQDMProgressBar()] if cfg.progress_bar else [],
            default_root_dir=scratch)
        started = time.perf_counter()
        trainer.fit(lit, train_dataloaders=train_loader, val_dataloaders=val_loader)
        train_time = time.perf_counter() - started
        if not lit.history.val or lit.history.val[-1][0] != trainer.global_step:
            trainer.validate(lit, dataloaders=val_loader, verbose=False)
    model.eval()
    if logger:
        for step, texts in lit.history.samples:
            logger.experiment.log_text(logger.run_id, "\n\n---\n\n".join(texts),
                                       f"samples/step_{step:06d}.txt")
    plot_losses(lit.history.train, lit.history.val, out_dir / LOSS_CURVE, reference_lines)
    tokens = trainer.global_step * cfg.grad_accum * cfg.batch_size * _window_length(train)
    return {
        "train_loss": lit.history.train[-1][1] if lit.history.train else float("nan"),
        "val_loss": lit.history.val[-1][1],
        "steps": float(trainer.global_step),
        "tokens": float(tokens),
        "tokens_per_s": tokens / train_time,
        "train_time_s": train_time,
    }


def _window_length(dataset: Dataset) -> int:
    return int(dataset[0]["input_ids"].numel())


def _mlflow_logger() -> Any:
    """A Lightning logger writing into the active MLflow run, or False when there is none."""
    mlflow = sys.modules.get("mlflow")  # not imported: no run can be active
    if mlflow is None or mlflow.active_run() is None:
        return False
    from lightning.pytorch.loggers import MLFlowLogger

    class _AttachedMLFlowLogger(MLFlowLogger):
        """Logs into a run that someone else owns: leaves ending it to the owner."""

        def finalize(self, status: str = "success") -> None:
            return None

    return _AttachedMLFlowLogger(run_id=mlflow.active_run().info.run_id,
                                 tracking_uri=mlflow.get_tracking_uri())


def plot_losses(train: list[tuple[int, float]], val: list[tuple[int, float]], file: Path,
                reference_lines: dict[str, float] | None = None) -> None:
    """Train and validation loss against optimizer step, with optional baselines."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(7, 4), dpi=110)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train, strict=True), label="train", color="tab:blue")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", color="tab:orange")
    for i, (label, value) in enumerate((reference_lines or {}).items()):
        ax.axhline(value, linestyle="--", linewidth=1, color=f"C{i + 2}",
                   label=f"{label} ({value:.2f})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(file)
