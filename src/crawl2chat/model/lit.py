"""The LightningModule that trains a plain :class:`~crawl2chat.model.gpt.GPT`.

In: a GPT (possibly ``torch.compile``-d), a :class:`~crawl2chat.model.config.TrainCfg`,
a :class:`Meter` (tokens per step, FLOPs per token, the devices' peak and its source),
optionally a :class:`~crawl2chat.model.progress.Progress` that shows and records the
run as it goes (on rank 0), and batches ``{"input_ids": [B, T], "targets": [B, T]}``.
Out: the same GPT, trained in place, and ``history``: every ``log_every`` optimizer
steps the loss (averaged over the steps and, under DDP, over the ranks), the learning
rate, the gradient norm before clipping, tokens/s and MFU (where the peak is known);
validation losses; samples. These go to
the Lightning logger (MLflow) as ``train/loss``, ``lr``, ``grad_norm``, ``tokens_per_s``,
``mfu`` and ``val/loss``. The learning rate warms up linearly, then follows a cosine
down to ``min_lr`` or, with ``schedule="wsd"``, stays flat and decays linearly over the
last ``decay_fraction`` of the steps; gradient clipping is the Trainer's job. History
and the partial loss sums are part of the checkpoint, so a resumed run logs the same
curve as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
from torch import nn

from crawl2chat.model.config import TrainCfg
from crawl2chat.model.flops import mfu
from crawl2chat.model.optim import build_optimizer
from crawl2chat.model.progress import History, Progress

HISTORY_KEY = "crawl2chat_history"


def lr_at(step: int, cfg: TrainCfg) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``; then a cosine to ``min_lr`` at
    ``max_steps``, or (``wsd``) ``lr`` until the last ``decay_fraction`` of the steps and
    a linear decay to ``min_lr`` over them; ``min_lr`` after ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.min_lr
    if cfg.schedule == "wsd":
        decay_start = max(cfg.warmup_steps, cfg.max_steps - round(cfg.decay_fraction
                                                                   * cfg.max_steps))
        if step < decay_start:
            return cfg.lr
        progress = (step - decay_start) / max(1, cfg.max_steps - decay_start)
        return cfg.lr + progress * (cfg.min_lr - cfg.lr)
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


@dataclass
class Meter:
    """What turns step times into tokens/s and MFU."""

    tokens_per_step: int  # all ranks together
    flops_per_token: float
    peak_flops: float | None = None  # all devices together; None: MFU not reported
    peak_source: str | None = None  # config | table | probed (see flops.training_peak)

    def utilisation(self, tokens_per_s: float) -> float | None:
        """MFU at ``tokens_per_s``. A probed CPU peak is the best rate this process has
        seen: when training beats the probe (which ran while the machine was busier),
        the peak rises to it, so a probed MFU never reads above 100%."""
        achieved = tokens_per_s * self.flops_per_token
        if self.peak_source == "probed" and self.peak_flops and achieved > self.peak_flops:
            self.peak_flops = achieved
        return mfu(tokens_per_s, self.flops_per_token, self.peak_flops)


class LitGPT(L.LightningModule):
    def __init__(self, model: nn.Module, cfg: TrainCfg, meter: Meter,
                 sample_fn: Callable[[], list[str]] | None = None,
                 progress: Progress | None = None,
                 eval_fn: Callable[[int], dict[str, float]] | None = None) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.meter = meter
        self.sample_fn = sample_fn
        self.eval_fn = eval_fn  # more held-out figures at each validation, logged at its step
        self._progress = progress
        self.history = History()
        # train losses are summed on the device and averaged every log_every steps
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        self._flushed_step = 0
        self._grad_norm: torch.Tensor | None = None
        self._mark = (0, 0.0)  # (step, time) where the current tokens/s window began
        self.start_step = 0  # where this process began: > 0 after a resume
        self._val_sum: torch.Tensor | None = None
        self._val_count = 0

    def _due(self, step: int) -> bool:
        return step % self.cfg.log_every == 0 or step >= self.cfg.max_steps

    def _restart_clock(self) -> None:
        self._mark = (self.global_step, time.perf_counter())

    @property
    def progress(self) -> Progress | None:
        """The run's console lines and log files: written by rank 0 alone."""
        return self._progress if self.trainer.is_global_zero else None

    def on_fit_start(self) -> None:
        # after a checkpoint's history is loaded, before the first step
        if self.progress:
            self.progress.begin(self.history)

    def on_train_start(self) -> None:
        self._restart_clock()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, loss = self.model(batch["input_ids"], batch["targets"])
        self.log("train/loss", loss, prog_bar=True, logger=False,
                 batch_size=batch["input_ids"].size(0))
        detached = loss.detach()
        self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached
        self._loss_count += 1
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # before clipping (Lightning clips right after this hook), and only when logged
        if not self._due(self.global_step + 1):
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        if self.cfg.strategy == "fsdp":  # each rank holds a shard of the gradients
            norm = self.trainer.strategy.reduce(norm.square(), reduce_op="sum").sqrt()
        self._grad_norm = norm

    def configure_callbacks(self) -> list[L.Callback]:
        return [_LogStep()]

    def log_step(self) -> None:
        """After each micro-batch: write the row of a step that is due and not written."""
        step = self.global_step  # optimizer steps done (differs from batches under grad_accum)
        if not self._due(step) or self._loss_sum is None or step == self._flushed_step:
            return
        mean = self._loss_sum / self._loss_count
        loss = float(self.trainer.strategy.reduce(mean, reduce_op="mean"))  # also a sync point
        steps, started = self._mark
        seconds_per_step = (time.perf_counter() - started) / (step - steps)
        rate = self.meter.tokens_per_step / seconds_per_step
        row = {"step": step, "loss": loss,
               "lr": lr_at(step, self.cfg),  # the schedule's, whichever groups scale it
               "grad_norm": float(self._grad_norm) if self._grad_norm is not None else math.nan,
               "tokens_per_s": rate}
        utilisation = self.meter.utilisation(rate)
        if utilisation is not None:
            row["mfu"] = utilisation
        self.history.train.append((step, loss))
        self.history.log.append(row)
        if self.progress:
            self.progress.step(row, seconds_per_step)
        if self.logger:
            self.logger.log_metrics({("train/loss" if k == "loss" else k): v
                                     for k, v in row.items() if k != "step"}, step=step)
        self._loss_sum, self._loss_count, self._flushed_step = None, 0, step
        self._grad_norm = None
        self._restart_clock()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, loss = self.model(batch["input_ids"], batch["targets"])
        size = batch["input_ids"].size(0)
        self.log("val/loss", loss, prog_bar=True, logger=False, batch_size=size)
        weighted = loss.detach() * size
        self._val_sum = weighted if self._val_sum is None else self._val_sum + weighted
        self._val_count += size

    def on_validation_epoch_end(self) -> None:
        if self._val_sum is None:
            return
        step = self.global_step
        # every rank sees the whole validation set (no distributed sampler): no reduction
        value = float(self._val_sum) / self._val_count
        self.history.val.append((step, value))
        if self.logger:
            self.logger.log_metrics({"val/loss": value}, step=step)
        self._val_sum, self._val_count = None, 0
        progress = self.progress
        if progress:
            progress.validation(step, value)
        if self.eval_fn is not None:
            figures = self.eval_fn(step)
            if self.logger:
                self.logger.log_metrics(figures, step=step)
        if self.sample_fn is not None:
            if progress:
                progress.generating()
            texts = self.sample_fn()
            self.history.samples.append((step, texts))
            if progress:
                progress.samples(step, texts)

    def on_validation_end(self) -> None:
        self._restart_clock()  # tokens/s counts training time only

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[HISTORY_KEY] = {
            "history": asdict(self.history), "flushed_step": self._flushed_step,
            "loss_sum": self._loss_sum, "loss_count": self._loss_count}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(HISTORY_KEY)
        if state is None:
            return
        self.start_step = int(checkpoint["global_step"])
        saved = state["history"]
        self.history = History(
            train=[tuple(x) for x in saved["train"]], val=[tuple(x) for x in saved["val"]],
            samples=[(s, list(t)) for s, t in saved["samples"]], log=list(saved["log"]))
        self._flushed_step, self._loss_count = state["flushed_step"], state["loss_count"]
        self._loss_sum = state["loss_sum"]

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.cfg
        optimizer = build_optimizer(self.model, self.cfg)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_at(step, cfg) / cfg.lr)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class _LogStep(L.Callback):
    """Writes a due log row before a checkpoint of that step is taken, so the checkpoint
    holds it: Lightning runs callbacks before the module's hooks, checkpointing last."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        assert isinstance(pl_module, LitGPT)
        pl_module.log_step()
