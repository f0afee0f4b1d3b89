"""The LightningModule that trains a plain :class:`~crawl2chat.model.gpt.GPT`.

In: a GPT (possibly ``torch.compile``-d), a :class:`~crawl2chat.model.train.TrainCfg`
and batches ``{"input_ids": [B, T], "targets": [B, T]}``. Out: the same GPT, trained in
place; ``history`` (train/val losses by step, for the loss curve) and the logged
metrics ``train/loss``, ``lr``, ``val/loss``. The optimizer is AdamW with weight decay
on matrices only and a linear-warmup + cosine learning-rate schedule down to
``min_lr``; gradient clipping is the Trainer's job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import nn

if TYPE_CHECKING:
    from crawl2chat.model.train import TrainCfg

_FUSED_ADAMW_DEVICES = ("cuda", "cpu", "xpu", "mps")


def lr_at(step: int, cfg: TrainCfg) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr``
    at ``max_steps`` (and ``min_lr`` after it)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices (linear and embedding weights), not biases or LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]  # tied ones appear once
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


@dataclass
class History:
    """Losses as training went: ``(optimizer step, loss)`` pairs."""

    train: list[tuple[int, float]] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    samples: list[tuple[int, list[str]]] = field(default_factory=list)


class LitGPT(L.LightningModule):
    def __init__(self, model: nn.Module, cfg: TrainCfg,
                 sample_fn: Callable[[], list[str]] | None = None) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.sample_fn = sample_fn
        self.history = History()
        # train losses are summed on the device and averaged every log_every steps
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        self._flushed_step = 0
        self._val_sum: torch.Tensor | None = None
        self._val_count = 0

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, loss = self.model(batch["input_ids"], batch["targets"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0))
        detached = loss.detach()
        self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached
        self._loss_count += 1
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = self.global_step  # optimizer steps done (differs from batches under grad_accum)
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        due = step % self.cfg.log_every == 0 or step >= self.cfg.max_steps
        if due and self._loss_sum is not None and step != self._flushed_step:
            self.history.train.append((step, float(self._loss_sum) / self._loss_count))
            self._loss_sum, self._loss_count, self._flushed_step = None, 0, step

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, loss = self.model(batch["input_ids"], batch["targets"])
        size = batch["input_ids"].size(0)
        self.log("val/loss", loss, prog_bar=True, batch_size=size)
        weighted = loss.detach() * size
        self._val_sum = weighted if self._val_sum is None else self._val_sum + weighted
        self._val_count += size

    def on_validation_epoch_end(self) -> None:
        if self._val_sum is None:
            return
        step = self.global_step
        self.history.val.append((step, float(self._val_sum) / self._val_count))
        self._val_sum, self._val_count = None, 0
        if self.sample_fn is not None:
            self.history.samples.append((step, self.sample_fn()))

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.cfg
        # Lightning's mixed-precision plugin refuses to clip gradients for a fused
        # optimizer (it could unscale them itself); the foreach one costs only a few
        # percent of a step at these sizes
        fused = self.device.type in _FUSED_ADAMW_DEVICES and not (
            cfg.grad_clip and cfg.precision.endswith("-mixed"))
        optimizer = torch.optim.AdamW(
            param_groups(self.model, cfg.weight_decay), lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2), fused=fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_at(step, cfg) / cfg.lr)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
