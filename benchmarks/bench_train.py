"""Lightning overhead: ``crawl2chat.model.train.fit`` vs a plain PyTorch loop, one run.

Both train the same model (the demo shape: 4 x 256, context 256, vocab 4096, from the
same seed) on the same windows, in the same order (the resumable ``StepSampler``), with
the same settings: the same optimizer (``build_optimizer``), warmup + cosine LR,
gradient clipping at 1.0 and the same precision (``--precision``, default ``auto``:
what :func:`crawl2chat.model.precision.resolve` picks on this machine, bf16 autocast only
where bf16 is native, else fp32). fit() also does
what a real run needs: a log row every 10 steps (loss, lr, grad norm, tokens/s) and a
resumable checkpoint every ``--checkpoint-every`` steps (0: none). Validation is off in
both timed parts. The runs alternate in rounds whose order rotates (plain, fit; fit,
plain; ...) so machine load hits both alike. Prints JSON with the machine, tokens/s of
each (min/median/max over the rounds) and the overhead of fit in percent (of the
medians, with the range of the per-round overheads): on a shared machine one round can
be off by several percent, so the spread says how far to trust the median.

Tokens: ``--tokens DIR`` (a ``data/tokens`` folder) or, by default, random ids, which
cost the same per step.

    .venv/bin/python benchmarks/bench_train.py [--steps 60] [--repeats 3] [--precision auto]
        [--checkpoint-every 0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _machine import machine, rounds, spread
from torch.utils.data import DataLoader

from crawl2chat import runtime
from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.lit import lr_at
from crawl2chat.model.optim import build_optimizer
from crawl2chat.model.precision import resolve
from crawl2chat.model.resume import StepSampler
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows

MODEL = GPTConfig(vocab_size=4096, block_size=256, n_layer=4, n_head=4, n_embd=256)


def _autocast(precision: str) -> contextlib.AbstractContextManager[None]:
    """What Lightning's CPU precision plugin wraps the step in for ``precision``."""
    if precision.startswith("bf16"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast("cpu", dtype=torch.float16)
    return contextlib.nullcontext()


def plain(train: TokenWindows, cfg: TrainCfg) -> float:
    """Tokens/s of a hand-written loop doing what fit() does per optimizer step."""
    torch.manual_seed(cfg.seed)
    model = GPT(MODEL).train()
    loader = DataLoader(train, batch_size=cfg.batch_size,
                        sampler=StepSampler(len(train), cfg.batch_size, cfg.max_steps, cfg.seed))
    opt = build_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg) / cfg.lr)
    started = time.perf_counter()
    for step, batch in enumerate(loader):
        if step == cfg.max_steps:
            break
        with _autocast(cfg.precision):
            _, loss = model(batch["input_ids"], batch["targets"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    float(loss.detach())  # like fit's final loss read-out: all work is done when the clock stops
    seconds = time.perf_counter() - started
    return cfg.max_steps * cfg.batch_size * MODEL.block_size / seconds


def lightning(train: TokenWindows, val: TokenWindows, cfg: TrainCfg) -> float:
    torch.manual_seed(cfg.seed)
    model = GPT(MODEL)
    with tempfile.TemporaryDirectory() as out:
        return fit(model, train, val, cfg, Path(out), checkpoint_dir=Path(out) / "ckpt")[
            "tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of both")
    parser.add_argument("--precision", default="auto",
                        help="Lightning precision for both, or auto (this machine's choice)")
    parser.add_argument("--tokens", type=Path, help="a tokens folder (default: random ids)")
    parser.add_argument("--checkpoint-every", type=int, default=0,
                        help="fit() writes last.ckpt every this many steps (0: never)")
    args = parser.parse_args()
    runtime.configure()
    if args.tokens:
        from crawl2chat.tokenizer.shards import open_split
        tokens, val_tokens = open_split(args.tokens, "train"), open_split(args.tokens, "val")
    else:
        rng = np.random.default_rng(0)
        tokens = rng.integers(8, MODEL.vocab_size, 2_000_000).astype(np.uint16)
        val_tokens = tokens[:20_000]
    precision = resolve(args.precision)
    # the demo's base settings, validation pushed past the end of the run
    cfg = TrainCfg(lr=1e-3, min_lr=1e-4, warmup_steps=5, max_steps=args.steps, batch_size=16,
                   eval_every=10**6, eval_batches=1, log_every=10,
                   checkpoint_every=args.checkpoint_every, compile=False, progress_bar=False,
                   precision=precision.value)
    train = TokenWindows(tokens, MODEL.block_size, "random", args.steps * cfg.batch_size)
    val = TokenWindows(val_tokens, MODEL.block_size, "strided", cfg.batch_size)
    plain(train, TrainCfg(max_steps=2, batch_size=cfg.batch_size,
                          precision=precision.value))  # warm-up: kernel choice, allocations
    _, rates = rounds({"plain": lambda: plain(train, cfg),
                       "lightning": lambda: lightning(train, val, cfg)},
                      args.repeats, warmup=False)
    overheads = [100 * (p / f - 1) for p, f in zip(rates["plain"], rates["lightning"],
                                                    strict=True)]
    print(json.dumps({
        "machine": machine(), "device": "cpu", "threads": torch.get_num_threads(),
        "precision": precision.value, "precision_reason": precision.reason,
        "model": "4x256 ctx256 vocab4096, batch 16, clip 1.0",
        "steps": args.steps, "repeats": args.repeats,
        "tokens": "data" if args.tokens else "random",
        "checkpoint_every": args.checkpoint_every,
        "tokens_per_s_plain": spread(rates["plain"], 0),
        "tokens_per_s_lightning": spread(rates["lightning"], 0),
        "lightning_overhead_pct": {
            "of_medians": round(100 * (statistics.median(rates["plain"])
                                       / statistics.median(rates["lightning"]) - 1), 2),
            "round_min": round(min(overheads), 2), "round_max": round(max(overheads), 2)},
    }))


if __name__ == "__main__":
    main()
