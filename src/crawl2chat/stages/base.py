"""Stage ``base``: token shards -> a pretrained GPT base model.

In: ``data/tokens/`` (``tokenizer/``, ``train.bin``, ``val.bin``, ``meta.json``; see
:mod:`crawl2chat.tokenizer.shards`). Out (``models/base/``): ``model.safetensors``,
``config.json``, ``tokenizer/``, ``loss_curve.png``, ``train_log.jsonl`` (loss, lr,
grad norm, tokens/s, MFU every ``log_every`` steps), ``train_samples.jsonl``,
``samples.json`` and ``report.md``.

Long training is resumable: with ``train.checkpoint_every`` the stage keeps
``last.ckpt`` in :func:`checkpoint_dir`, a folder beside its output named after its
params and input; a rerun after a crash or kill continues from there (same losses as an
uninterrupted run) and the folder is removed once the stage has its output.

The model trains on random windows of the train split; its loss is measured on
windows spread evenly over the val split and set beside two baselines in nats/token:
the unigram entropy of the train tokens (what a model that ignores context at best
achieves) and ln(vocab) (uniform guessing). The vocabulary is padded up to a multiple
of 64 (faster matmuls); padded ids never occur and are never sampled.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crawl2chat import paths
from crawl2chat.errors import ConfigError, InputError
from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.config import LOSS_CURVE, SAMPLES, TrainCfg
from crawl2chat.model.eval_watch import Watch
from crawl2chat.model.evaluate import EvalCfg, evaluate
from crawl2chat.model.generate import generate
from crawl2chat.model.gpt import GPT, VOCAB_MULTIPLE, GPTConfig, ModelCfg, padded_vocab
from crawl2chat.model.lightning_trainer import grad_accum_for, world_size
from crawl2chat.model.memorise import memorisation
from crawl2chat.model.sampling import SamplingCfg
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.shards import META_FILE, open_split, read_meta
from crawl2chat.tokenizer.tokenizer import Tokenizer

UNIGRAM_MAX_TOKENS = 1 << 26  # the entropy of larger splits is estimated on a spread sample
_CHUNK = 1 << 22


@dataclass
class Cfg:
    """Params of the ``base`` stage (``params.yaml`` section ``base``)."""

    model: ModelCfg
    """The GPT's size and architecture options; the tokenizer sets its vocabulary."""
    train: TrainCfg = field(default_factory=TrainCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    prompts: list[str] = field(default_factory=lambda: [
        "The", "In this article, we", "How to install"])
    """Continued after training (and at every validation) to show what the model learned."""
    sample_tokens: int = 64
    """New tokens per sample."""
    sampling: SamplingCfg = field(default_factory=SamplingCfg)
    """How the prompts are continued."""
    require_beats_unigram: bool = False
    """Quality gate: val loss must be below the unigram entropy (off for tiny smoke runs)."""


def unigram_entropy(tokens: np.ndarray, vocab_size: int,
                    max_tokens: int = UNIGRAM_MAX_TOKENS) -> float:
    """Entropy (nats/token) of the token frequencies; beyond ``max_tokens`` it is
    estimated from evenly spread chunks, so a 10B-token split costs no more than 64M."""
    n = len(tokens)
    if n <= max_tokens:
        starts: Any = range(0, n, _CHUNK)
    else:
        starts = np.linspace(0, n - _CHUNK, max(1, max_tokens // _CHUNK)).astype(np.int64)
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in starts:
        counts += np.bincount(np.asarray(tokens[start:start + _CHUNK]), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def sample(model: GPT, tok: Tokenizer, cfg: Cfg) -> list[dict[str, Any]]:
    """{prompt, continuation, tokens} for every prompt; a new <|bos|> (the next
    document) stops a continuation early."""
    bos = tok.special_id(special.BOS)
    out = []
    for i, prompt in enumerate(cfg.prompts):
        # a seed per prompt: one shared random stream makes similar prompts look alike
        ids = list(generate(model, [bos, *tok.encode(prompt)], cfg.sample_tokens,
                            cfg.sampling, seed=cfg.train.seed + i,
                            stop_ids={bos}, vocab_limit=tok.vocab_size))
        out.append({"prompt": prompt, "continuation": tok.decode(ids), "tokens": len(ids)})
    return out


def checkpoint_dir(cfg: Cfg, in_dir: Path, out_dir: Path) -> Path:
    """``<outputs>/base.tmp-ckpt-<digest of params and input>``: beside the stage's
    temporary output folder, not inside it (that one is new for every attempt) and not in
    ``models/base`` (DVC deletes a declared output before rerunning its stage). The
    ``*.tmp-*/`` pattern keeps it out of git. Only the same params on the same tokens
    find it again; settings that do not change the training are left out of the digest."""
    params = asdict(cfg)
    for name in ("progress_bar", "resume", "checkpoint_every", "num_workers"):
        params["train"].pop(name)
    upstream = in_dir / paths.MANIFEST  # names the tokens run; meta.json when run by hand
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update((upstream if upstream.exists() else in_dir / META_FILE).read_bytes())
    return out_dir.parent / f"base.tmp-ckpt-{digest.hexdigest()[:16]}"


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, Any]:
    if in_dir is None:
        raise InputError("the base stage needs the tokens stage's output folder")
    meta = read_meta(in_dir)
    tok = Tokenizer.load(in_dir / "tokenizer")
    if int(meta["vocab_size"]) != tok.vocab_size:
        raise InputError(f"{in_dir / 'meta.json'}: vocab_size {meta['vocab_size']} but "
                         f"{in_dir / 'tokenizer'} has {tok.vocab_size}; rerun the tokens stage")
    splits = {split: open_split(in_dir, split) for split in ("train", "val")}
    block_size = cfg.model.block_size
    for split, tokens in splits.items():
        if len(tokens) <= block_size + 1:
            raise InputError(f"{in_dir / (split + '.bin')}: {len(tokens)} tokens, fewer than "
                             f"one window of block_size {block_size} + 1; lower "
                             f"base.model.block_size or give the tokens stage more text")
    try:
        gpt_cfg = GPTConfig(vocab_size=padded_vocab(tok.vocab_size), **asdict(cfg.model))
    except ValueError as err:
        raise ConfigError(f"base.model: {err}") from err
    torch.manual_seed(cfg.train.seed)
    model = GPT(gpt_cfg)
    tc = cfg.train
    ranks = world_size(tc)
    # a fresh window for every sequence the run trains on (all ranks)
    windows = tc.max_steps * grad_accum_for(tc, block_size, ranks) * tc.batch_size * ranks
    train = TokenWindows(splits["train"], block_size, "random", windows, seed=tc.seed)
    val = TokenWindows(splits["val"], block_size, "strided", tc.eval_batches * tc.batch_size)
    entropy = unigram_entropy(splits["train"], gpt_cfg.vocab_size)
    uniform = math.log(tok.vocab_size)

    def sample_texts(m: GPT) -> list[str]:
        return [s["prompt"] + s["continuation"] for s in sample(m, tok, cfg)]

    watch = Watch(cfg.eval, tok, splits["val"], gpt_cfg.vocab_size)
    checkpoints = checkpoint_dir(cfg, in_dir, out_dir)
    result = fit(model, train, val, tc, out_dir, sample_fn=sample_texts,
                 reference_lines={"unigram entropy": entropy, "uniform": uniform},
                 checkpoint_dir=checkpoints, eval_fn=watch)
    samples = sample(model, tok, cfg)
    held_out = evaluate(model, tok, splits["val"], cfg.eval)  # bits per byte, next word
    hellaswag = watch.final(model)
    ev = cfg.eval  # does it recite training text? (train vs val continuations)
    recited = memorisation(model, tok, splits, ev.memorise_docs, ev.memorise_prefix_tokens,
                           ev.memorise_continue_tokens, ev.scan_tokens)
    metrics: dict[str, Any] = {
        "records": result["tokens"] / block_size,  # windows trained on
        "tokens": result["tokens"],
        "val_loss": result["val_loss"],
        "train_loss": result["train_loss"],
        "unigram_entropy": entropy,
        "uniform_loss": uniform,
        "params": float(model.num_params()),
        "steps": result["steps"],
        **{k: v for k, v in result.items() if k not in ("tokens", "val_loss", "train_loss",
                                                        "steps")},
        **held_out.metrics,
        **recited.metrics,
        **(hellaswag.metrics() if hellaswag else {}),
    }
    save_model(model, tok, out_dir, extra={
        "stage": "base", "tokenizer_vocab_size": tok.vocab_size,
        **{k: metrics[k] for k in ("val_loss", "train_loss", "unigram_entropy",
                                   "uniform_loss", "steps", "tokens", *held_out.metrics)}})
    (out_dir / SAMPLES).write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n")
    _write_report(out_dir, cfg, gpt_cfg, metrics, samples, meta)
    with (out_dir / paths.REPORT).open("a") as report:
        report.write(held_out.markdown())
        report.write(watch.markdown(out_dir, hellaswag))
        report.write(recited.markdown() if ev.memorise_docs else "")
    shutil.rmtree(checkpoints, ignore_errors=True)  # the output now holds what they did
    return metrics


def _write_report(out_dir: Path, cfg: Cfg, gpt_cfg: GPTConfig, m: dict[str, Any],
                  samples: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    tc = cfg.train
    gap = m["unigram_entropy"] - m["val_loss"]
    verdict = (f"{gap:.2f} nats/token below the unigram entropy: the model uses context"
               if gap > 0 else
               f"{-gap:.2f} nats/token above the unigram entropy: it has not yet learned "
               "more than token frequencies (train longer or on more text)")
    lines = [
        "# base: GPT pretrained on the crawl",
        "",
        f"- Model: {gpt_cfg.n_layer} layers x {gpt_cfg.n_embd} wide, {gpt_cfg.n_head} heads, "
        f"context {gpt_cfg.block_size}, vocab {gpt_cfg.vocab_size} (tokenizer "
        f"{meta['vocab_size']}, padded to a multiple of {VOCAB_MULTIPLE}); "
        f"{m['params'] / 1e6:.2f}M parameters.",
        f"- Training: {int(m['steps'])} steps x {m['tokens_per_step']:.0f} tokens "
        f"({tc.batch_size} windows x {m['grad_accum']:.0f} accumulated x "
        f"{world_size(tc)} rank(s)) = {m['tokens'] / 1e6:.2f}M tokens "
        f"({m['tokens'] / max(1, meta['train_tokens']):.2f} passes over "
        f"{meta['train_tokens']} train tokens) at {m['step_tokens_per_s']:.0f} tokens/s"
        + (f", MFU {m['mfu']:.1%}" if "mfu" in m else "")
        + (" (of a probed CPU peak)" if m.get("mfu_peak_source") == "probed" else "")
        + f"; lr {tc.lr} -> {tc.min_lr} ({tc.schedule}); precision {m['precision']} "
        f"({m['precision_reason']})"
        + (f"; resumed from the checkpoint of step {m['resumed_from_step']:.0f}"
           if m["resumed_from_step"] else "") + ".",
        "",
        "| loss (nats/token) | value |",
        "|---|---:|",
        f"| train (last steps) | {m['train_loss']:.3f} |",
        f"| **validation** | **{m['val_loss']:.3f}** |",
        f"| unigram entropy of train tokens | {m['unigram_entropy']:.3f} |",
        f"| uniform over the vocabulary, ln({meta['vocab_size']}) | {m['uniform_loss']:.3f} |",
        "",
        f"Validation loss is {verdict}.",
        "",
        f"![loss curve]({LOSS_CURVE})",
        "",
        f"## Samples ({cfg.sampling.describe()}, seeds {tc.seed}, {tc.seed} + 1, ...)",
        "",
    ]
    for s in samples:
        lines += [f"> **{s['prompt']}**{s['continuation']}".replace("\n", "\n> "), ""]
    (out_dir / paths.REPORT).write_text("\n".join(lines))
