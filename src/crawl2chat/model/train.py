"""Train a GPT with Lightning: ``fit(model, train, val, cfg, out_dir) -> metrics``.

In: a :class:`~crawl2chat.model.gpt.GPT`, map-style datasets whose items are
``{"input_ids": LongTensor[T], "targets": LongTensor[T]}`` (e.g.
:class:`~crawl2chat.model.windows.TokenWindows` over a flat token file), a
:class:`~crawl2chat.model.config.TrainCfg` and optionally a checkpoint folder. Out:
the model trained in place and, in ``out_dir``, ``loss_curve.png``, ``train_log.jsonl``
(a row per logged step: loss, lr, grad_norm, tokens_per_s, mfu and mfu_peak_source; and
per validation: val_loss) and ``train_samples.jsonl`` (the samples taken at each
validation), both written row by row as the run goes while the ``crawl2chat`` logger
prints a line per row (see :mod:`crawl2chat.model.progress`); Lightning's progress bar
shows only on an interactive terminal. The final metrics are returned. Metrics,
samples and the curve go to the active MLflow run, if there is one. Checkpoints
(``last.ckpt``, model + optimizer + scheduler + loop + data position + RNG states) go
to ``checkpoint_dir`` only; a rerun with the same folder continues from there, logging
the same losses an uninterrupted run would.
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from crawl2chat import runtime
from crawl2chat.errors import ConfigError, InputError
from crawl2chat.model import lightning_trainer as build
from crawl2chat.model.config import LOSS_CURVE, TRAIN_LOG, TrainCfg
from crawl2chat.model.flops import flops_per_token, matmul_params, training_peak
from crawl2chat.model.gpt import GPT
from crawl2chat.model.lit import LitGPT, Meter
from crawl2chat.model.precision import resolve
from crawl2chat.model.progress import History, Progress
from crawl2chat.model.resume import ResumableLoader, ResumeCallback, StepSampler

log = logging.getLogger("crawl2chat")


def fit(model: GPT, train: Dataset, val: Dataset, cfg: TrainCfg, out_dir: Path,
        sample_fn: Callable[[GPT], list[str]] | None = None,
        reference_lines: dict[str, float] | None = None,
        checkpoint_dir: Path | None = None,
        eval_fn: Callable[[GPT, int], dict[str, float]] | None = None) -> dict[str, Any]:
    """Train ``model`` in place up to ``cfg.max_steps`` optimizer steps; return metrics:
    train_loss, val_loss, steps, tokens, tokens_per_s and train_time_s (this process's
    work, validations and samples included), grad_accum, tokens_per_step, grad_norm,
    resumed_from_step, step_tokens_per_s (the median logged rate, training only) and
    mfu (its share of the devices' peak, where the peak is known); and, as strings,
    precision and precision_reason (what ``cfg.precision`` resolved to on this machine)
    and, with mfu, mfu_peak_source (config, table or probed: see
    :func:`~crawl2chat.model.flops.training_peak`).

    ``sample_fn(model)`` runs after every validation, and ``eval_fn(model, step)``, whose
    figures are logged to MLflow at that step. ``reference_lines`` (label -> loss)
    are drawn on the loss curve as baselines. With ``checkpoint_dir`` and
    ``cfg.checkpoint_every``, ``last.ckpt`` is kept there and, with ``cfg.resume``, an
    existing one is continued.
    """
    runtime.quiet_libraries()  # importing lightning set its logger back to INFO
    L.seed_everything(cfg.seed, verbose=False)
    precision = resolve(cfg.precision)
    if precision.warning:
        log.warning(precision.warning)
    log.info("precision %s (%s)", precision.value, precision.reason)
    # a bar redrawn in place is for a person at a terminal; logs (DVC, Prefect, CI) get
    # the plain step lines instead
    cfg = replace(cfg, precision=precision.value,
                  progress_bar=cfg.progress_bar and sys.stderr.isatty())
    model.train()  # a loaded checkpoint comes in eval mode; dropout must be on while training
    if len(train) < cfg.batch_size or len(val) == 0:
        raise InputError(f"too few windows for batch_size {cfg.batch_size}: "
                         f"{len(train)} train, {len(val)} val")
    window = _window_length(train)
    world = build.world_size(cfg)
    accum = build.grad_accum_for(cfg, window, world)
    sampler = StepSampler(len(train), cfg.batch_size, cfg.max_steps * accum, cfg.seed)
    workers = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
    # own generators: creating an iterator must not draw from the global RNG (dropout's)
    train_loader = ResumableLoader(train, sampler, pin_memory=torch.cuda.is_available(),
                                   generator=torch.Generator().manual_seed(cfg.seed), **workers)
    val_loader = DataLoader(val, batch_size=cfg.batch_size, shuffle=False,
                            generator=torch.Generator().manual_seed(cfg.seed), **workers)
    compile_ = torch.cuda.is_available() if cfg.compile is None else cfg.compile
    net = torch.compile(model) if compile_ else model  # the module, not Lightning's wrapper
    callbacks: list[L.Callback] = [ResumeCallback(sampler)]
    last = None
    if checkpoint_dir is not None and cfg.checkpoint_every > 0:
        callbacks.append(build.checkpoint_callback(checkpoint_dir, cfg.checkpoint_every))
        last = checkpoint_dir / build.LAST_CHECKPOINT
    logger = build.mlflow_logger()
    with tempfile.TemporaryDirectory(prefix="crawl2chat-trainer-") as scratch:
        trainer = build.build_trainer(cfg, accum, callbacks, logger, Path(scratch))
        if trainer.world_size != world:
            raise ConfigError(f"train.devices x num_nodes = {world} but the launcher started "
                              f"{trainer.world_size} processes")
        peak, peak_source = training_peak(trainer.strategy.root_device, cfg.peak_flops)
        tokens_per_step = accum * cfg.batch_size * window * world
        meter = Meter(tokens_per_step, flops_per_token(
            matmul_params(model), model.config.n_layer, window, model.config.n_embd),
            peak * world if peak else None, peak_source)
        lit = LitGPT(net, cfg, meter, sample_fn=(lambda: sample_fn(model)) if sample_fn else None,
                     progress=Progress(out_dir, cfg.max_steps, peak_source),
                     eval_fn=(lambda step: eval_fn(model, step)) if eval_fn else None)
        resume = last if cfg.resume and last is not None and last.exists() else None
        started = time.perf_counter()
        trainer.fit(lit, train_dataloaders=train_loader, val_dataloaders=val_loader,
                    ckpt_path=resume, weights_only=True)
        train_time = time.perf_counter() - started
        if not lit.history.val or lit.history.val[-1][0] != trainer.global_step:
            trainer.validate(lit, dataloaders=val_loader, verbose=False)
    model.eval()
    history = lit.history
    if trainer.is_global_zero:
        _write_outputs(history, out_dir, reference_lines, logger)
    rates = [row["tokens_per_s"] for row in history.log]
    rates = rates[1:] or rates  # the first window holds the warm-up (and compilation)
    utilisation = [row["mfu"] for row in history.log if "mfu" in row]
    utilisation = utilisation[1:] or utilisation
    metrics = {
        "train_loss": history.train[-1][1] if history.train else float("nan"),
        "val_loss": history.val[-1][1],
        "steps": float(trainer.global_step),
        "tokens": float(trainer.global_step * tokens_per_step),
        "tokens_per_s": (trainer.global_step - lit.start_step) * tokens_per_step / train_time,
        "train_time_s": train_time,
        "grad_accum": float(accum),
        "tokens_per_step": float(tokens_per_step),
        "grad_norm": history.log[-1]["grad_norm"] if history.log else float("nan"),
        "resumed_from_step": float(lit.start_step),
        "step_tokens_per_s": statistics.median(rates) if rates else float("nan"),
    }
    details = {"precision": precision.value, "precision_reason": precision.reason}
    if utilisation:
        metrics["mfu"] = statistics.median(utilisation)
        details["mfu_peak_source"] = str(peak_source)
    return {**metrics, **details}


def _window_length(dataset: Dataset) -> int:
    return int(dataset[0]["input_ids"].numel())


def _write_outputs(history: History, out_dir: Path, reference_lines: dict[str, float] | None,
                   logger: Any) -> None:
    """The loss curve into ``out_dir``; it, the step log (which
    :class:`~crawl2chat.model.progress.Progress` wrote as the run went) and the samples
    to MLflow."""
    plot_losses(history.train, history.val, out_dir / LOSS_CURVE, reference_lines)
    if logger:
        client, run_id = logger.experiment, logger.run_id
        for step, texts in history.samples:
            client.log_text(run_id, "\n\n---\n\n".join(texts), f"samples/step_{step:06d}.txt")
        for name in (LOSS_CURVE, TRAIN_LOG):
            client.log_artifact(run_id, str(out_dir / name), "train")


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
