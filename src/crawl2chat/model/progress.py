"""A training run as it goes: console lines and log files written step by step.

In: the rows :class:`~crawl2chat.model.lit.LitGPT` logs (step, loss, lr, grad_norm,
tokens_per_s[, mfu]), validation losses and samples, as they happen. Out: one plain
line per logged row on the ``crawl2chat`` logger (INFO), in the spirit of llm.c's log::

    step 120/500 | loss 4.1234 | grad norm 0.812 | lr 9.2e-04 | 85 ms/step |
    48,210 tok/s | MFU 12.3% (CPU peak, probed) | ETA 2m31s

(one line, folded here),

``generating:`` and the samples at each validation, and ``train_log.jsonl`` /
``train_samples.jsonl`` appended and flushed row by row, so ``tail -f`` follows a run
and a killed run keeps what it logged. A run starts both files afresh from the history
it begins with (empty, or a checkpoint's), so a resumed run holds no row twice. The
rows of a finished run are those of :func:`log_rows` over its history.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat.model.config import TRAIN_LOG, TRAIN_SAMPLES

PEAK_LABELS = {"probed": " (CPU peak, probed)", "config": " (peak from train.peak_flops)",
               "table": ""}
log = logging.getLogger("crawl2chat")


@dataclass
class History:
    """Training as it went: ``(optimizer step, loss)`` pairs, the logged rows
    (step, loss, lr, grad_norm, tokens_per_s[, mfu]) and ``(step, texts)`` samples."""

    train: list[tuple[int, float]] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    samples: list[tuple[int, list[str]]] = field(default_factory=list)
    log: list[dict[str, float]] = field(default_factory=list)


def log_rows(history: History) -> list[dict[str, Any]]:
    """The step rows and validation rows of ``history`` in step order, a step's
    validation after its training row."""
    return sorted([*history.log, *({"step": s, "val_loss": v} for s, v in history.val)],
                  key=lambda row: (row["step"], "val_loss" in row))


def duration(seconds: float) -> str:
    """``2m31s``, ``1h05m``, ``12s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def step_line(row: dict[str, Any], max_steps: int, seconds_per_step: float,
              peak_source: str | None) -> str:
    """The console line of one logged row (see the module docstring)."""
    parts = [f"step {row['step']}/{max_steps}", f"loss {row['loss']:.4f}",
             f"grad norm {row['grad_norm']:.3f}", f"lr {row['lr']:.1e}",
             f"{seconds_per_step * 1000:.0f} ms/step", f"{row['tokens_per_s']:,.0f} tok/s"]
    if "mfu" in row:
        parts.append(f"MFU {row['mfu']:.1%}{PEAK_LABELS.get(peak_source or '', '')}")
    parts.append(f"ETA {duration((max_steps - row['step']) * seconds_per_step)}")
    return " | ".join(parts)


class Progress:
    """Shows and records a run (rank 0 only: the module calls it there)."""

    def __init__(self, out_dir: Path, max_steps: int, peak_source: str | None) -> None:
        self.out_dir, self.max_steps, self.peak_source = out_dir, max_steps, peak_source

    def _file_row(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "mfu_peak_source": self.peak_source} if "mfu" in row else row

    def _append(self, name: str, lines: list[str], mode: str = "a") -> None:
        with (self.out_dir / name).open(mode, encoding="utf-8") as file:
            file.writelines(line + "\n" for line in lines)
            file.flush()

    def begin(self, history: History) -> None:
        """Start both files with what ``history`` already holds (nothing, or a resumed
        checkpoint's rows), replacing whatever an earlier attempt left there."""
        self._append(TRAIN_LOG, [json.dumps(self._file_row(r)) for r in log_rows(history)],
                     mode="w")
        self._append(TRAIN_SAMPLES, [_samples_row(s, t) for s, t in history.samples], mode="w")

    def step(self, row: dict[str, Any], seconds_per_step: float) -> None:
        self._append(TRAIN_LOG, [json.dumps(self._file_row(row))])
        log.info(step_line(row, self.max_steps, seconds_per_step, self.peak_source))

    def validation(self, step: int, loss: float) -> None:
        self._append(TRAIN_LOG, [json.dumps({"step": step, "val_loss": loss})])
        log.info("step %d/%d | val loss %.4f", step, self.max_steps, loss)

    def generating(self) -> None:
        log.info("generating:")

    def samples(self, step: int, texts: list[str]) -> None:
        self._append(TRAIN_SAMPLES, [_samples_row(step, texts)])
        for text in texts:
            log.info("  %s", " ".join(text.split()))  # one line each, however it was spaced
        log.info("---")


def _samples_row(step: int, texts: list[str]) -> str:
    return json.dumps({"step": step, "samples": texts}, ensure_ascii=False)
