"""Sampling from a GPT, one token at a time.

``generate(model, ids, ...)`` yields new token ids as they are sampled as a
:class:`~crawl2chat.model.sampling.SamplingCfg` says (temperature, top-k, top-p;
temperature 0 is greedy). A seeded ``torch.Generator`` makes it repeatable: the
same model, prompt and seed give the same ids on the same device. ``observe`` sees each
step's distribution and the id drawn from it. ``run_generate`` is the ``crawl2chat
generate`` command (samples, stop strings, a random or given seed, the candidates of each
token, few-shot prompts from :mod:`crawl2chat.model.few_shot`); ``run_next_token`` is
``crawl2chat next-token``: the model's distribution over the token after a prompt.

With the KV cache (the default) the prompt is run once and each new token costs one
position. Once the context outgrows ``block_size`` every step recomputes the last
``block_size`` ids, exactly as without the cache: the learned position embeddings
shift with the window, so cached keys cannot be reused, and the two paths stay equal.
A cached step is cheap in operations but still reads every weight once: at the demo's
size (17 MB of fp32 weights, more than the CPU cache keeps) that memory traffic, not
Python, is most of its cost.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from crawl2chat.model.gpt import GPT
from crawl2chat.model.kvcache import KVCache
from crawl2chat.model.sampling import SamplingCfg
from crawl2chat.model.stops import StopCutter

if TYPE_CHECKING:
    from crawl2chat.tokenizer.tokenizer import Tokenizer

Observer = Callable[[torch.Tensor, int], None]  # (probabilities over the vocab, id drawn)
log = logging.getLogger("crawl2chat")


def generate(model: GPT, ids: Sequence[int], max_new_tokens: int,
             sampling: SamplingCfg = SamplingCfg(), seed: int = 0,
             stop_ids: Collection[int] = (), vocab_limit: int | None = None,
             use_cache: bool = True, observe: Observer | None = None) -> Iterator[int]:
    """Yield up to ``max_new_tokens`` ids continuing ``ids``.

    A sampled id in ``stop_ids`` ends the stream and is not yielded (so fewer than
    ``max_new_tokens`` ids means a stop id was hit). ``vocab_limit`` keeps sampling
    below the tokenizer's vocabulary size: the model's vocab is padded past it.
    ``use_cache=False`` recomputes the whole (cropped) context for every token: the
    reference the cache is tested and benchmarked against. ``sampling.top_p`` keeps the
    smallest set of most likely ids whose probabilities add up to at least ``top_p``
    (nucleus sampling), after ``top_k``. ``observe(probs, id)`` gets, for each sampled id, the
    probabilities it was drawn from (after temperature, top-k and top-p; greedy: the
    model's softmax), the stop ids included.
    """
    if not ids:
        raise ValueError("generate needs at least one context id (e.g. <|bos|>)")
    device = next(model.parameters()).device
    sampler = _Sampler(sampling, vocab_limit,
                       torch.Generator(device=device).manual_seed(seed), observe)
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

    cfg: SamplingCfg
    vocab_limit: int | None
    generator: torch.Generator
    observe: Observer | None = None

    def __call__(self, logits: torch.Tensor) -> int:
        cfg = self.cfg
        logits = logits[:self.vocab_limit].float()
        if cfg.temperature == 0:
            chosen = int(logits.argmax())
            if self.observe:
                self.observe(torch.softmax(logits, dim=-1), chosen)
            return chosen
        logits = logits / cfg.temperature
        if cfg.top_k is not None and cfg.top_k < logits.numel():
            kth = torch.topk(logits, cfg.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if cfg.top_p is not None and cfg.top_p < 1:
            sorted_probs, order = torch.sort(probs, descending=True)
            # drop an id when the ids more likely than it already reach top_p
            drop = sorted_probs.cumsum(0) - sorted_probs >= cfg.top_p
            sorted_probs[drop] = 0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        chosen = int(torch.multinomial(probs, 1, generator=self.generator))
        if self.observe:
            self.observe(probs / probs.sum(), chosen)
        return chosen


@torch.inference_mode()
def _step(model: nn.Module, ids: torch.Tensor, cache: KVCache | None,
          sampler: _Sampler) -> int:
    """Feed ``ids`` (after whatever ``cache`` holds) and sample the id that follows.
    One inference-mode region per token: the forward and the sampling share it."""
    logits, _ = model(ids, cache=cache)
    return sampler(logits[0, -1])


def stream_text(tok: Tokenizer, ids: Generator[int, None, None],
                stops: Sequence[str] = ()) -> Iterator[str]:
    """The text of ``ids`` in pieces as they come, cut before the earliest stop string
    (see :mod:`crawl2chat.model.stops`; generation ends there)."""
    cutter = StopCutter(stops)
    new: list[int] = []
    try:
        for token in ids:
            new.append(token)
            piece = cutter.update(tok.decode(new))
            if piece:
                yield piece
            if cutter.stopped:
                return
    finally:
        ids.close()  # ends the generation at a stop
    piece = cutter.update(tok.decode(new), final=True)
    if piece:
        yield piece


def _print_candidates(tok: Tokenizer, k: int) -> Observer:
    """Prints ``drawn 'piece' p | 'piece' p  'piece' p ...`` (the ``k`` most likely)."""

    def observe(probs: torch.Tensor, chosen: int) -> None:
        top = torch.topk(probs, min(k, probs.numel()))
        candidates = "  ".join(f"{tok.decode([int(i)])!r} {float(p):.3f}"
                               for p, i in zip(top.values, top.indices, strict=True))
        sys.stdout.write(f"drawn {tok.decode([chosen])!r} {float(probs[chosen]):.3f} | "
                         f"{candidates}\n")

    return observe


def run_generate(model_dir: Path, prompt: str, max_new_tokens: int, sampling: SamplingCfg,
                 seed: int | None, num_samples: int = 1, stops: Sequence[str] = (),
                 show_probs: int = 0, few_shot: Path | None = None) -> int:
    """Print ``num_samples`` continuations of ``prompt`` as they are generated (sample
    ``i`` drawn with ``seed + i``; no seed: a random one, printed on stderr so that
    ``--seed`` repeats the run), each cut at the first of ``stops``. ``show_probs``: for
    every new token, the ``show_probs`` most likely candidates and the one drawn.
    ``few_shot``: ``prompt`` is the input to a few-shot prompt built from that file,
    whose stops apply too, and only the model's answer is printed. Exit status."""
    from crawl2chat.model.checkpoint import load_model
    from crawl2chat.model.few_shot import load_few_shot
    from crawl2chat.tokenizer import special

    if seed is None:
        seed = secrets.randbelow(2**31)
    print(f"seed: {seed}", file=sys.stderr)
    shown_prompt, text_prompt = prompt, prompt
    if few_shot is not None:
        template = load_few_shot(few_shot)
        text_prompt, shown_prompt = template.prompt(prompt), ""
        stops = [*stops, *template.stop]
        log.debug("few-shot prompt:\n%s", text_prompt)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(model_dir, device=device)
    # training documents start with <|bos|>; a new <|bos|> means the document is over
    bos = tok.special_id(special.BOS)
    stop_ids = {bos, tok.special_id(special.ASSISTANT_END)}
    context = [bos, *tok.encode(text_prompt)]
    for i in range(num_samples):
        if i:
            sys.stdout.write("---\n")
        observe = _print_candidates(tok, show_probs) if show_probs else None
        ids = generate(model, context, max_new_tokens, sampling, seed + i, stop_ids,
                       vocab_limit=tok.vocab_size, observe=observe)
        pieces = stream_text(tok, ids, stops)
        if show_probs:  # a line per token as it is drawn; then the text in one piece
            sys.stdout.write(shown_prompt + "".join(pieces) + "\n")
            continue
        sys.stdout.write(shown_prompt)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    return 0


def run_next_token(model_dir: Path, prompt: str, top: int) -> int:
    """Print the ``top`` most likely tokens after ``prompt`` (after ``<|bos|>``, as in
    training) with their probabilities; exit status."""
    from crawl2chat.model.checkpoint import load_model
    from crawl2chat.tokenizer import special

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(model_dir, device=device)
    ids = [tok.special_id(special.BOS), *tok.encode(prompt)][-model.config.block_size:]
    with torch.inference_mode():
        logits, _ = model(torch.tensor([ids], device=device))
    probs = torch.softmax(logits[0, -1, :tok.vocab_size].float(), dim=-1)
    best = torch.topk(probs, min(top, probs.numel()))
    print(f"after {prompt!r} ({len(ids) - 1} tokens):")
    print(f"{'rank':>4}  {'id':>6}  {'prob':>6}  token")
    for rank, (p, i) in enumerate(zip(best.values, best.indices, strict=True), 1):
        print(f"{rank:>4}  {int(i):>6}  {float(p):.4f}  {tok.decode([int(i)])!r}")
    return 0
