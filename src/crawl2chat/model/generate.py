"""Sampling from a GPT, one token at a time.

``generate(model, ids, ...)`` yields new token ids as they are sampled (temperature,
top-k, top-p; temperature 0 is greedy). A seeded ``torch.Generator`` makes it repeatable: the
same model, prompt and seed give the same ids on the same device. ``run_generate`` is
the ``crawl2chat generate`` command: load a model folder, print prompt + continuation.

With the KV cache (the default) the prompt is run once and each new token costs one
position. Once the context outgrows ``block_size`` every step recomputes the last
``block_size`` ids, exactly as without the cache: the learned position embeddings
shift with the window, so cached keys cannot be reused, and the two paths stay equal.
A cached step is cheap in operations but still reads every weight once: at the demo's
size (17 MB of fp32 weights, more than the CPU cache keeps) that memory traffic, not
Python, is most of its cost.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from crawl2chat.model.gpt import GPT
from crawl2chat.model.kvcache import KVCache


def generate(model: GPT, ids: Sequence[int], max_new_tokens: int, temperature: float = 0.8,
             top_k: int | None = 50, seed: int = 0, stop_ids: Collection[int] = (),
             vocab_limit: int | None = None, use_cache: bool = True,
             top_p: float | None = None) -> Iterator[int]:
    """Yield up to ``max_new_tokens`` ids continuing ``ids``.

    A sampled id in ``stop_ids`` ends the stream and is not yielded (so fewer than
    ``max_new_tokens`` ids means a stop id was hit). ``vocab_limit`` keeps sampling
    below the tokenizer's vocabulary size: the model's vocab is padded past it.
    ``use_cache=False`` recomputes the whole (cropped) context for every token: the
    reference the cache is tested and benchmarked against. ``top_p`` keeps the smallest
    set of most likely ids whose probabilities add up to at least ``top_p`` (nucleus
    sampling), after ``top_k``.
    """
    if not ids:
        raise ValueError("generate needs at least one context id (e.g. <|bos|>)")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    device = next(model.parameters()).device
    sampler = _Sampler(temperature, top_k, top_p, vocab_limit,
                       torch.Generator(device=device).manual_seed(seed))
    context = list(ids)  # appending to a list is free; torch.cat copies the whole context
    stops = set(stop_ids)
    block_size = model.config.block_size
    cache = KVCache(model.config.n_layer, block_size) if use_cache else None
    was_training = model.training
    model.eval()
    try:
        for step in range(max_new_tokens):
            if step and cache is not None and cache.length < cache.capacity:
                fed = context[-1:]  # one new position after the cached ones
            else:  # the prompt, or (no cache, or a full one) the window the model can see
                if cache is not None:
                    cache.reset()
                fed = context[-block_size:]
            next_id = _step(model, torch.tensor([fed], device=device), cache, sampler)
            if next_id in stops:
                return
            yield next_id
            context.append(next_id)
    finally:
        model.train(was_training)


@dataclass
class _Sampler:
    """How to pick the next id from a row of logits."""

    temperature: float
    top_k: int | None
    top_p: float | None
    vocab_limit: int | None
    generator: torch.Generator

    def __call__(self, logits: torch.Tensor) -> int:
        logits = logits[:self.vocab_limit].float()
        if self.temperature == 0:
            return int(logits.argmax())
        logits = logits / self.temperature
        if self.top_k is not None and self.top_k < logits.numel():
            kth = torch.topk(logits, self.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p is not None and self.top_p < 1:
            sorted_probs, order = torch.sort(probs, descending=True)
            # drop an id when the ids more likely than it already reach top_p
            drop = sorted_probs.cumsum(0) - sorted_probs >= self.top_p
            sorted_probs[drop] = 0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=self.generator))


@torch.inference_mode()
def _step(model: nn.Module, ids: torch.Tensor, cache: KVCache | None,
          sampler: _Sampler) -> int:
    """Feed ``ids`` (after whatever ``cache`` holds) and sample the id that follows.
    One inference-mode region per token: the forward and the sampling share it."""
    logits, _ = model(ids, cache=cache)
    return sampler(logits[0, -1])


def run_generate(model_dir: Path, prompt: str, max_new_tokens: int, temperature: float,
                 top_k: int | None, seed: int, top_p: float | None = None) -> int:
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
                          top_k, seed, stop, vocab_limit=tok.vocab_size, top_p=top_p):
        new.append(token)
        text = tok.decode(new)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            continue
        sys.stdout.write(text[len(shown):])
        sys.stdout.flush()
        shown = text
    sys.stdout.write(tok.decode(new)[len(shown):] + "\n")
    return 0
