"""The Lightning ``Trainer`` that :func:`crawl2chat.model.train.fit` runs, built from a
:class:`~crawl2chat.model.config.TrainCfg`.

In: the config, the derived gradient accumulation, callbacks and a logger. Out: a
Trainer with the configured strategy (``auto``, ``ddp``, ``fsdp`` sharding per
transformer block), devices and nodes, the precision (already resolved by
:mod:`crawl2chat.model.precision`), gradient clipping, validation every ``eval_every``
optimizer steps and optional checkpoints (``last.ckpt`` every ``checkpoint_every`` steps, written by
rank 0 only). Under ``torchrun`` or SLURM, Lightning reads ranks and world size from
the environment; started plainly with ``devices > 1`` it launches the other ranks itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch

from crawl2chat.errors import ConfigError
from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import Block

LAST_CHECKPOINT = "last.ckpt"


def world_size(cfg: TrainCfg) -> int:
    """Processes in all: devices per node (``-1``: every visible GPU) times nodes."""
    devices = cfg.devices if cfg.devices > 0 else max(1, torch.cuda.device_count())
    return devices * cfg.num_nodes


def grad_accum_for(cfg: TrainCfg, window: int, world: int) -> int:
    """Micro-batches per optimizer step: ``grad_accum``, or what ``tokens_per_step`` needs
    given ``batch_size`` sequences of ``window`` tokens on each of ``world`` ranks."""
    if cfg.tokens_per_step is None:
        return cfg.grad_accum
    per_micro_batch = cfg.batch_size * window * world
    accum, rest = divmod(cfg.tokens_per_step, per_micro_batch)
    if rest or not accum:
        raise ConfigError(
            f"train.tokens_per_step {cfg.tokens_per_step} is not a multiple of batch_size "
            f"{cfg.batch_size} x context {window} x {world} rank(s) = {per_micro_batch}")
    if cfg.grad_accum not in (1, accum):
        raise ConfigError(f"train.grad_accum {cfg.grad_accum} contradicts tokens_per_step "
                          f"{cfg.tokens_per_step} (which needs {accum}); set only one")
    return accum


def _strategy(cfg: TrainCfg) -> Any:
    if cfg.strategy != "fsdp":
        return cfg.strategy
    from lightning.pytorch.strategies import FSDPStrategy

    # one FSDP unit per block: parameters gathered layer by layer, not all at once
    return FSDPStrategy(auto_wrap_policy={Block})


def checkpoint_callback(folder: Path, every: int) -> L.Callback:
    """Overwrites ``folder/last.ckpt`` every ``every`` optimizer steps (atomically)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return ModelCheckpoint(dirpath=folder, save_top_k=0, save_last=True,
                           every_n_train_steps=every, enable_version_counter=False)


def build_trainer(cfg: TrainCfg, accum: int, callbacks: list[L.Callback], logger: Any,
                  root_dir: Path) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

    if cfg.progress_bar:
        # tqdm, not the rich bar Lightning picks when rich is installed: plain lines in logs
        callbacks = [*callbacks, TQDMProgressBar()]
    return L.Trainer(
        accelerator="auto", strategy=_strategy(cfg), devices=cfg.devices,
        num_nodes=cfg.num_nodes, precision=cfg.precision,  # type: ignore[arg-type]
        max_steps=cfg.max_steps, max_epochs=-1, accumulate_grad_batches=accum,
        gradient_clip_val=cfg.grad_clip or None, deterministic=cfg.deterministic,
        # counted in micro-batches; the one long epoch (see resume.StepSampler) holds them all
        val_check_interval=cfg.eval_every * accum, check_val_every_n_epoch=None,
        limit_val_batches=cfg.eval_batches, num_sanity_val_steps=0,
        log_every_n_steps=cfg.log_every, logger=logger,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        # the sampler shards by rank itself, in an order that survives a resume
        use_distributed_sampler=False,
        enable_model_summary=False, enable_progress_bar=cfg.progress_bar,
        callbacks=callbacks, default_root_dir=root_dir)


def mlflow_logger() -> Any:
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
