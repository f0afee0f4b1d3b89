"""Log-probabilities of given token sequences under a model: what scoring needs.

In:  a :class:`~crawl2chat.model.gpt.GPT` and token id sequences (each at most
     ``block_size`` long), optionally how many top alternatives to return per position.
Out: one :class:`Scored` per sequence: for every token after the first, its log-probability
     given the tokens before it, and the ``top`` most likely tokens at that position.

Multiple-choice evaluation (model/mc_eval.py) sums these over an answer's tokens; the
server's ``/v1/completions`` returns them as ``logprobs`` (``echo`` includes the prompt's).
The distribution is over the tokenizer's ids only (``vocab_limit``): the ids that pad the
model's vocabulary never occur in text and are left out of the softmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from crawl2chat.model.gpt import GPT


@dataclass
class Scored:
    """``logprobs[i]``: log P(ids[i + 1] | ids[: i + 1]); ``top[i]``: the ``(id, logprob)``
    pairs of the most likely tokens at that position, most likely first."""

    ids: list[int]
    logprobs: list[float]
    top: list[list[tuple[int, float]]] = field(default_factory=list)


@torch.inference_mode()
def score(model: GPT, sequences: Sequence[Sequence[int]], vocab_limit: int | None = None,
          top: int = 0, batch_size: int = 8) -> list[Scored]:
    """Score every sequence (a ValueError names one longer than the model's context)."""
    limit = model.config.block_size
    for n, seq in enumerate(sequences):
        if len(seq) > limit:
            raise ValueError(f"sequence {n} has {len(seq)} tokens, more than the model's "
                             f"context of {limit}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[Scored] = []
    try:
        for start in range(0, len(sequences), batch_size):
            batch = [list(s) for s in sequences[start:start + batch_size]]
            width = max(len(s) for s in batch)
            # right padding: a causal model's positions before the padding are unaffected
            x = torch.tensor([s + [0] * (width - len(s)) for s in batch], device=device)
            logits, _ = model(x)
            logp = torch.log_softmax(logits[..., :vocab_limit].float(), dim=-1)
            for row, seq in enumerate(batch):
                n = len(seq) - 1
                targets = torch.tensor(seq[1:], device=device)
                taken = logp[row, :n].gather(-1, targets[:, None])[:, 0] if n > 0 else \
                    torch.empty(0)
                best: list[list[tuple[int, float]]] = []
                if top > 0 and n > 0:
                    values, indices = logp[row, :n].topk(min(top, logp.size(-1)), dim=-1)
                    best = [list(zip(i.tolist(), v.tolist(), strict=True))
                            for i, v in zip(indices, values, strict=True)]
                out.append(Scored(seq, taken.tolist(), best))
    finally:
        model.train(was_training)
    return out
