"""Generation speed with and without the KV cache, measured in one run.

A randomly initialised model of the demo's shape (4 x 256, context 256, vocab 4096;
weights do not change the cost) generates 256 tokens, greedy, on the CPU (or GPU, if
there is one), after two prompts: 1 token (<|bos|> alone: all 257 positions but the
last fit the 256-position cache) and 16 tokens (the last 16 steps overflow the context
and take the cropped-window fallback, which costs what the uncached path costs). The two
paths alternate in rounds whose order rotates, after an untimed warm-up of each. Prints
JSON: the machine, tokens/s of each path (min/median/max over the rounds), the speed-up
(of the medians, with the lowest and highest per-round value: on a loaded machine it
swings by a factor of two, so read the range) and whether both produced the same ids.

    .venv/bin/python benchmarks/bench_generate.py [--new-tokens 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from _machine import machine, rounds, spread

from crawl2chat.model.generate import generate
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.sampling import SamplingCfg


def _ids(model: GPT, prompt: list[int], n: int, use_cache: bool) -> list[int]:
    return list(generate(model, prompt, n, SamplingCfg(temperature=0), use_cache=use_cache))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens to generate")
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[1, 16],
                        help="prompt lengths, one measurement each")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = GPTConfig(vocab_size=4096, block_size=256, n_layer=4, n_head=4, n_embd=256)
    model = GPT(cfg).to(device).eval()
    results = [_compare(model, torch.randint(8, cfg.vocab_size, (n,)).tolist(),
                        args.new_tokens, args.repeats) for n in args.prompt_tokens]
    print(json.dumps({
        "machine": machine(),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "model": "4x256 ctx256 vocab4096 fp32 (random init)",
        "params": model.num_params(),
        "new_tokens": args.new_tokens, "repeats": args.repeats,
        "runs": results,
    }, indent=1))


def _compare(model: GPT, prompt: list[int], n: int, repeats: int) -> dict[str, object]:
    _ids(model, prompt, 8, True)  # warm-up: first-call allocations and kernel choice
    _ids(model, prompt, 8, False)
    times, outputs = rounds({"uncached": lambda: _ids(model, prompt, n, False),
                             "cached": lambda: _ids(model, prompt, n, True)},
                            repeats, warmup=False)
    speedups = [u / c for u, c in zip(times["uncached"], times["cached"], strict=True)]
    return {"prompt_tokens": len(prompt),
            "fallback_steps": max(0, len(prompt) + n - 1 - model.config.block_size),
            "tokens_per_s_cached": spread([n / s for s in times["cached"]], 1),
            "tokens_per_s_uncached": spread([n / s for s in times["uncached"]], 1),
            "speedup": {"of_medians": round(statistics.median(times["uncached"])
                                            / statistics.median(times["cached"]), 2),
                        "round_min": round(min(speedups), 2),
                        "round_max": round(max(speedups), 2)},
            "identical_output": all(c == u for c, u in zip(outputs["cached"],
                                                           outputs["uncached"], strict=True))}


if __name__ == "__main__":
    main()
