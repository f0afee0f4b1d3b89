"""Sampling from a GPT, one token at a time.

``generate(model, ids, ...)`` yields new token ids as they are sampled (temperature,
top-k; temperature 0 is greedy). A seeded ``torch.Generator`` makes it repeatable: the
same model, prompt and seed give the same ids on the same device. ``run_generate`` is
the ``crawl2chat generate`` command: load a model folder, print prompt + continuation.
No KV cache: every step re-reads the (cropped) context, which is cheap at these sizes.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from crawl2chat.model.gpt import GPT


def generate(model: GPT, ids: Sequence[int], max_new_tokens: int, temperature: float = 0.8,
             top_k: int | None = 50, seed: int = 0, stop_ids: Collection[int] = (),
             vocab_limit: int | None = None) -> Iterator[int]:
    """Yield up to ``max_new_tokens`` ids continuing ``ids``.

    A sampled id in ``stop_ids`` ends the stream and is not yielded (so fewer than
    ``max_new_tokens`` ids means a stop id was hit). ``vocab_limit`` keeps sampling
    below the tokenizer's vocabulary size: the model's vocab is padded past it.
    """
    if not ids:
        raise ValueError("generate needs at least one context id (e.g. <|bos|>)")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    context = torch.tensor([list(ids)], dtype=torch.long, device=device)
    stops = set(stop_ids)
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            next_id = _next_id(model, context, temperature, top_k, generator, vocab_limit)
            if next_id in stops:
                return
            yield next_id
            context = torch.cat([context, context.new_tensor([[next_id]])], dim=1)
    finally:
        model.train(was_training)


@torch.inference_mode()
def _next_id(model: nn.Module, context: torch.Tensor, temperature: float,
             top_k: int | None, generator: torch.Generator, vocab_limit: int | None) -> int:
    block_size = model.config.block_size  # type: ignore[union-attr]
    logits, _ = model(context[:, -block_size:])  # the model sees at most block_size ids
    logits = logits[0, -1, :vocab_limit].float()
    if temperature == 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def run_generate(model_dir: Path, prompt: str, max_new_tokens: int, temperature: float,
                 top_k: int | None, seed: int) -> int:
    """Print ``prompt`` and its sampled continuation as it is generated; exit status."""
    from crawl2chat.model.checkpoint import load_model
    from crawl2chat.tokenizer import special

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(model_dir, device=device)
    # training documents start with <|bos|>; a new <|bos|> means the document is over
    bos = tok.special_id(special.BOS)
    stop = {bos, tok.special_id(special.ASSISTANT_END)}
    sys.stdout.write(prompt)
    sys.stdout.flush()
    new: list[int] = []
    shown = ""
    for token in generate(model, [bos, *tok.encode(prompt)], max_new_tokens, temperature,
                          top_k, seed, stop, vocab_limit=tok.vocab_size):
        new.append(token)
        text = tok.decode(new)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            continue
        sys.stdout.write(text[len(shown):])
        sys.stdout.flush()
        shown = text
    sys.stdout.write(tok.decode(new)[len(shown):] + "\n")
    return 0
