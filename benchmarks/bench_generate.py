"""Generation speed with and without the KV cache, measured in one run.

A randomly initialised model of the demo's shape (4 x 256, context 256, vocab 4096;
weights do not change the cost) generates 256 tokens, greedy, on the CPU (or GPU, if
there is one), after two prompts: 1 token (<|bos|> alone: all 257 positions but the
last fit the 256-position cache) and 16 tokens (the last 16 steps overflow the context
and take the cropped-window fallback, which costs what the uncached path costs). Prints
JSON: tokens/s of each path, their ratio, and whether both produced the same ids.

    .venv/bin/python benchmarks/bench_generate.py [--new-tokens 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from crawl2chat.model.generate import generate
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.sampling import SamplingCfg


def _timed(model: GPT, prompt: list[int], n: int, use_cache: bool) -> tuple[float, list[int]]:
    started = time.perf_counter()
    ids = list(generate(model, prompt, n, SamplingCfg(temperature=0), use_cache=use_cache))
    return time.perf_counter() - started, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens to generate")
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[1, 16],
                        help="prompt lengths, one measurement each")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = GPTConfig(vocab_size=4096, block_size=256, n_layer=4, n_head=4, n_embd=256)
    model = GPT(cfg).to(device).eval()
    results = [_compare(model, torch.randint(8, cfg.vocab_size, (n,)).tolist(),
                        args.new_tokens, args.repeats) for n in args.prompt_tokens]
    print(json.dumps({
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "model": "4x256 ctx256 vocab4096 fp32 (random init)",
        "params": model.num_params(),
        "new_tokens": args.new_tokens,
        "runs": results,
    }))


def _compare(model: GPT, prompt: list[int], n: int, repeats: int) -> dict[str, object]:
    _timed(model, prompt, 8, True)  # warm-up: first-call allocations and kernel choice
    _timed(model, prompt, 8, False)
    best: dict[bool, float] = {True: float("inf"), False: float("inf")}
    outputs: dict[bool, list[int]] = {}
    for _ in range(repeats):  # interleaved, so machine load hits both alike
        for use_cache in (False, True):
            seconds, outputs[use_cache] = _timed(model, prompt, n, use_cache)
            best[use_cache] = min(best[use_cache], seconds)
    cached, uncached = n / best[True], n / best[False]
    return {"prompt_tokens": len(prompt),
            "fallback_steps": max(0, len(prompt) + n - 1 - model.config.block_size),
            "tokens_per_s_cached": round(cached, 1),
            "tokens_per_s_uncached": round(uncached, 1),
            "speedup": round(cached / uncached, 2),
            "identical_output": outputs[True] == outputs[False]}

if __name__ == "__main__":
    main()
