"""Training throughput and MFU of the 124M presets through ``crawl2chat.model.train.fit``.

Each case builds the model of an experiment preset (``conf/experiment/<name>.yaml``, its
``base`` section over ``conf/base/default.yaml``) and trains it with the preset's own
train settings (optimizer, precision, micro-batch, compile) for ``--steps`` optimizer
steps on random token ids (the cost of a step does not depend on the ids), with
``--accum`` micro-batches per step instead of the preset's 16 so a case takes seconds.
fit() measures tokens/s and MFU per logged window; the first window (compilation,
warm-up) is left out of the medians. Cases run one after another in one process:

- ``gpt2_124m``            the preset as it is (torch.compile on, AdamW)
- ``gpt2_124m-eager``      the same without torch.compile: the baseline of compile's gain
- ``modern_124m``          rotary, RMSNorm, QK-norm, SwiGLU, untied head, Muon

Needs only torch, lightning, numpy, pyyaml and matplotlib, so it runs from a source
checkout on a GPU host without the project's environment:

    PYTHONPATH=src python3 benchmarks/bench_train_gpu.py [--steps 30] [--accum 4]

Prints JSON: the device, and per case its parameters, tokens per step, median tokens/s,
MFU against the device's bf16 peak (crawl2chat.model.flops), the time to the first
logged window (compilation included) and peak GPU memory. ``--tiny`` shrinks every
model to 2 x 64 (context 128) to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from crawl2chat.config import build
from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows

ROOT = Path(__file__).resolve().parents[1]
CASES = {"gpt2_124m": ("gpt2_124m", {}),
         "gpt2_124m-eager": ("gpt2_124m", {"compile": False}),
         "modern_124m": ("modern_124m", {})}
GPT2_VOCAB = 50304  # 50257 padded to a multiple of 64, as the base stage pads it


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def preset_base(name: str) -> dict[str, Any]:
    """The ``base`` section of an experiment preset, its ``defaults`` presets under it,
    all over ``conf/base/default.yaml``: what ``crawl2chat.config.compose`` gives for
    this section (a test checks), without Hydra, which GPU hosts may lack."""
    data = yaml.safe_load((ROOT / "conf" / "experiment" / f"{name}.yaml").read_text())
    section: dict[str, Any] = yaml.safe_load((ROOT / "conf/base/default.yaml").read_text())
    for parent in data.get("defaults", []):
        if isinstance(parent, str) and parent != "_self_":
            section = _merge(section, preset_base(parent))
    return _merge(section, data.get("base", {}))


def run_case(name: str, tokens: np.ndarray, steps: int, accum: int, tiny: bool
             ) -> dict[str, Any]:
    preset, changes = CASES[name]
    section = preset_base(preset)
    fields = dict(section["model"])
    if tiny:
        fields.update(n_layer=2, n_head=2, n_embd=64, block_size=128)
    config = GPTConfig(vocab_size=GPT2_VOCAB, **fields)
    train_section = {**section["train"], **changes}
    train_section.update(max_steps=steps, tokens_per_step=None, grad_accum=accum,
                         warmup_steps=min(5, steps), log_every=max(1, steps // 6),
                         eval_every=10**6, eval_batches=1, checkpoint_every=0,
                         num_workers=2, progress_bar=False)
    if tiny:
        train_section.update(batch_size=4, compile=False)
    cfg = build(TrainCfg, train_section, f"{preset}.base.train")
    train = TokenWindows(tokens, config.block_size, "random",
                         steps * accum * cfg.batch_size, seed=1)
    val = TokenWindows(tokens, config.block_size, "strided", cfg.batch_size)
    torch.manual_seed(0)
    model = GPT(config)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-train-gpu-") as out:
        metrics = fit(model, train, val, cfg, Path(out))
        log = [json.loads(line) for line in (Path(out) / "train_log.jsonl").read_text()
               .splitlines()]
    first = next((row for row in log if "tokens_per_s" in row), None)
    result = {
        "case": name, "preset": preset,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "options": {k: fields[k] for k in ("positions", "norm", "qk_norm", "mlp",
                                           "tie_embeddings", "bias") if k in fields},
        "optimizer": cfg.optimizer, "compile": cfg.compile, "precision": cfg.precision,
        "micro_batch": cfg.batch_size, "block_size": config.block_size,
        "tokens_per_step": int(metrics["tokens_per_step"]), "steps": int(metrics["steps"]),
        "tokens_per_s": round(metrics["step_tokens_per_s"]),
        "mfu": round(metrics["mfu"], 4) if "mfu" in metrics else None,
        "first_window_tokens_per_s": round(first["tokens_per_s"]) if first else None,
        "wall_s": round(time.perf_counter() - started, 1),
        "final_train_loss": round(metrics["train_loss"], 3),
    }
    if torch.cuda.is_available():
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per case")
    parser.add_argument("--accum", type=int, default=4, help="micro-batches per step")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--tiny", action="store_true", help="2 x 64 models: a CPU check")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    tokens = np.random.default_rng(0).integers(8, 50257, 4_000_000).astype(np.uint16)
    results = []
    for name in args.cases:
        results.append(run_case(name, tokens, args.steps, args.accum, args.tiny))
        print(json.dumps(results[-1]), flush=True)  # one line per case as it ends
    by_case = {r["case"]: r for r in results}
    summary: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__, "steps": args.steps, "accum": args.accum,
        "tiny": args.tiny, "cases": results,
    }
    if "gpt2_124m" in by_case and "gpt2_124m-eager" in by_case:
        summary["compile_speedup"] = round(by_case["gpt2_124m"]["tokens_per_s"]
                                           / by_case["gpt2_124m-eager"]["tokens_per_s"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
