"""The figures a GPT-2 reproduction is judged by, at every validation of pretraining.

In:  ``base.eval`` (:class:`~crawl2chat.model.evaluate.EvalCfg`: ``bpb_windows``,
     ``batch_size``, ``hellaswag`` and ``hellaswag_items``), the tokenizer, the val split,
     and the model at each validation step (``model/train.py`` ``fit(eval_fn=...)``).
Out: per validation ``{"val/bits_per_byte", "eval.hellaswag.acc", "eval.hellaswag.acc_norm"}``
     (MLflow logs them at that step; HellaSwag only when its file is configured), the
     score after training, and a report section with one row per validation (val loss
     from ``train_log.jsonl``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from crawl2chat.errors import InputError
from crawl2chat.model.evaluate import EvalCfg, token_bytes, val_bits_per_byte
from crawl2chat.model.gpt import GPT
from crawl2chat.model.mc_eval import Item, Score, evaluate, load_items, markdown
from crawl2chat.tokenizer.tokenizer import Tokenizer

TRAIN_LOG = "train_log.jsonl"


class Watch:
    """Called as ``watch(model, step)`` after each validation; keeps the rows it measured."""

    def __init__(self, cfg: EvalCfg, tok: Tokenizer, val_tokens: np.ndarray,
                 vocab_size: int) -> None:
        self.cfg, self.tok, self.val = cfg, tok, val_tokens
        self.byte_lengths = token_bytes(tok, vocab_size)
        self.items: list[Item] = []
        if cfg.hellaswag:
            path = Path(cfg.hellaswag)
            if not path.is_file():
                raise InputError(f"base.eval.hellaswag: no such file {path}")
            self.items = load_items(path, "hellaswag", cfg.hellaswag_items)
        self.rows: list[tuple[int, dict[str, float]]] = []

    def _hellaswag(self, model: GPT) -> Score | None:
        return evaluate(model, self.tok, self.items, "hellaswag") if self.items else None

    def __call__(self, model: GPT, step: int) -> dict[str, float]:
        bpb = val_bits_per_byte(model, self.val, self.byte_lengths, self.cfg.bpb_windows,
                                self.cfg.batch_size)["val_bits_per_byte"]
        figures = {"val/bits_per_byte": bpb}
        score = self._hellaswag(model)
        if score:
            figures |= {k: v for k, v in score.metrics().items() if not k.endswith(".items")}
        self.rows.append((step, figures))
        return figures

    def final(self, model: GPT) -> Score | None:
        """HellaSwag after training (None when no file is configured)."""
        return self._hellaswag(model)

    def markdown(self, out_dir: Path, final: Score | None) -> str:
        """A table of the figures at each validation, then the final HellaSwag score."""
        val_loss = {}
        log = out_dir / TRAIN_LOG
        if log.is_file():
            for line in log.read_text().splitlines():
                row = json.loads(line)
                if "val_loss" in row:
                    val_loss[row["step"]] = row["val_loss"]
        head = "| step | val loss | bits per byte |" + (" HellaSwag acc_norm |"
                                                        if self.items else "")
        lines = ["", "## At every validation", "", head,
                 "|---:|---:|---:|" + ("---:|" if self.items else "")]
        for step, figures in self.rows:
            loss = f"{val_loss[step]:.3f}" if step in val_loss else "–"
            cell = (f" {figures['eval.hellaswag.acc_norm']:.3f} |" if self.items else "")
            lines.append(f"| {step} | {loss} | {figures['val/bits_per_byte']:.3f} |{cell}")
        text = "\n".join(lines) + "\n"
        return text + (markdown([final]) if final else "")
