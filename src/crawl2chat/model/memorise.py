"""Does the model recite its training text? A memorisation check after pretraining.

In: a :class:`~crawl2chat.model.gpt.GPT`, its tokenizer and the train and val token
splits (every document is ``<|bos|>`` + its tokens). Out: a :class:`Memorisation` with
metrics and a markdown table for the stage report.

For each split, the first ``docs`` documents at least ``prefix + continuation`` tokens
long (within the first ``scan_tokens`` tokens) are cut after ``prefix`` tokens; the model
continues each greedily for ``continuation`` tokens. Reported per split: the share of
documents continued exactly (every token of the true text) and the mean longest run of
consecutive tokens the continuation shares with the true text. Val documents were never
trained on, so they are the baseline: train scores well above val mean the model
recites training text rather than predicting text in general.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crawl2chat.model.generate import generate
from crawl2chat.model.gpt import GPT
from crawl2chat.model.sampling import SamplingCfg
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.tokenizer import Tokenizer

SPLITS = ("train", "val")


def documents(tokens: np.ndarray, bos: int, count: int, min_tokens: int,
              scan_tokens: int) -> list[list[int]]:
    """The first ``count`` documents of at least ``min_tokens`` tokens (``<|bos|>`` left
    out) that end within the first ``scan_tokens`` tokens (or with the split)."""
    head = np.asarray(tokens[:scan_tokens])
    starts = np.flatnonzero(head == bos)
    ends = [*starts[1:], len(head)] if len(head) == len(tokens) else starts[1:]
    found: list[list[int]] = []
    for start, end in zip(starts, ends, strict=False):
        if len(found) == count:
            break
        if end - start - 1 >= min_tokens:
            found.append(head[start + 1:end].tolist())
    return found


def longest_common_run(a: list[int], b: list[int]) -> int:
    """Length of the longest run of consecutive ids found in both ``a`` and ``b``."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


@dataclass
class Memorisation:
    """``metrics`` (``memorise_<split>_exact``, ``_common_run``, ``_docs`` per split) and
    the settings, for the report."""

    metrics: dict[str, float]
    prefix: int
    continuation: int

    def markdown(self) -> str:
        m = self.metrics
        lines = ["", "## Memorisation", "",
                 f"The first {self.prefix} tokens of a document, then {self.continuation} "
                 "greedy tokens compared with the document's own.", "",
                 "| documents | n | exact continuation | mean longest common run (tokens) |",
                 "|---|---:|---:|---:|"]
        for split in SPLITS:
            lines.append(f"| {split} (seen in training: {'yes' if split == 'train' else 'no'})"
                         f" | {int(m[f'memorise_{split}_docs'])} "
                         f"| {m[f'memorise_{split}_exact']:.3f} "
                         f"| {m[f'memorise_{split}_common_run']:.1f} |")
        gap = m["memorise_train_common_run"] - m["memorise_val_common_run"]
        lines += ["", f"Train documents are continued with runs {gap:+.1f} tokens longer than "
                  "unseen ones" + (": the model recites parts of its training text."
                                   if gap > 1 else ".")]
        return "\n".join(lines) + "\n"


def memorisation(model: GPT, tok: Tokenizer, splits: dict[str, np.ndarray], docs: int,
                 prefix: int, continuation: int, scan_tokens: int) -> Memorisation:
    """The check of the module docstring on ``docs`` documents of each split."""
    bos = tok.special_id(special.BOS)
    metrics: dict[str, float] = {}
    for split in SPLITS:
        exact, runs = [], []
        for doc in documents(splits[split], bos, docs, prefix + continuation, scan_tokens):
            truth = doc[prefix:prefix + continuation]
            # special ids stop nothing here: the comparison itself counts a wrong token
            guess = list(generate(model, [bos, *doc[:prefix]], continuation,
                                  SamplingCfg(temperature=0), vocab_limit=tok.vocab_size))
            exact.append(guess == truth)
            runs.append(longest_common_run(guess, truth))
        metrics |= {f"memorise_{split}_docs": float(len(exact)),
                    f"memorise_{split}_exact": float(np.mean(exact)) if exact else 0.0,
                    f"memorise_{split}_common_run": float(np.mean(runs)) if runs else 0.0}
    return Memorisation(metrics, prefix, continuation)
