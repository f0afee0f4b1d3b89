"""Argument types and option groups that several subcommands share."""

from __future__ import annotations

import argparse

from crawl2chat.model.sampling import SamplingCfg


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def sampling_args(p: argparse.ArgumentParser, max_new_tokens: int,
                   seed: int | None = 0) -> None:
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                   help="stop after this many new tokens (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=SamplingCfg().temperature,
                   help="sampling temperature; 0 means greedy (default: %(default)s)")
    p.add_argument("--top-k", type=positive_int, default=SamplingCfg().top_k,
                   help="sample among the k most likely tokens (default: %(default)s)")
    p.add_argument("--seed", type=int, default=seed,
                   help="random seed: the same seed gives the same text (default: "
                   + ("%(default)s)" if seed is not None else "a random one, printed)"))
