"""Lightning overhead: ``crawl2chat.model.train.fit`` vs a plain PyTorch loop, one run.

Both train the same model (the demo shape: 4 x 256, context 256, vocab 4096, from the
same seed) on the same windows, in the same order (the resumable ``StepSampler``), with
the same settings: the same optimizer (``build_optimizer``), warmup + cosine LR,
gradient clipping at 1.0 and bf16 autocast (the demo's ``bf16-mixed``). fit() also does
what a real run needs: a log row every 10 steps (loss, lr, grad norm, tokens/s) and a
resumable checkpoint every ``--checkpoint-every`` steps (0: none). Validation is off in
both timed parts. The runs alternate (plain, fit, plain, fit ...) so machine load hits
both alike; the best of each counts. Prints JSON with tokens/s of each and the overhead
of fit in percent.

Tokens: ``--tokens DIR`` (a ``data/tokens`` folder) or, by default, random ids, which
cost the same per step.

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--repeats 2] [--checkpoint-every 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from crawl2chat import runtime
from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.lit import lr_at
from crawl2chat.model.optim import build_optimizer
from crawl2chat.model.resume import StepSampler
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows

MODEL = GPTConfig(vocab_size=4096, block_size=256, n_layer=4, n_head=4, n_embd=256)


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
        with torch.autocast("cpu", dtype=torch.bfloat16):
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
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; best counts")
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
    # the demo's base settings, validation pushed past the end of the run
    cfg = TrainCfg(lr=1e-3, min_lr=1e-4, warmup_steps=5, max_steps=args.steps, batch_size=16,
                   eval_every=10**6, eval_batches=1, log_every=10,
                   checkpoint_every=args.checkpoint_every, compile=False, progress_bar=False)
    train = TokenWindows(tokens, MODEL.block_size, "random", args.steps * cfg.batch_size)
    val = TokenWindows(val_tokens, MODEL.block_size, "strided", cfg.batch_size)
    plain(train, TrainCfg(max_steps=2, batch_size=cfg.batch_size))  # warm-up
    best = {"plain": 0.0, "lightning": 0.0}
    for _ in range(args.repeats):
        best["plain"] = max(best["plain"], plain(train, cfg))
        best["lightning"] = max(best["lightning"], lightning(train, val, cfg))
    print(json.dumps({
        "device": "cpu", "threads": torch.get_num_threads(),
        "model": "4x256 ctx256 vocab4096, batch 16, bf16-mixed, clip 1.0",
        "steps": args.steps, "tokens": "data" if args.tokens else "random",
        "checkpoint_every": args.checkpoint_every,
        "tokens_per_s_plain": round(best["plain"]),
        "tokens_per_s_lightning": round(best["lightning"]),
        "lightning_overhead_pct": round(100 * (best["plain"] / best["lightning"] - 1), 2),
    }))


if __name__ == "__main__":
    main()
