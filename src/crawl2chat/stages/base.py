"""Stage ``base``: token shards -> a pretrained GPT base model.

In: ``data/tokens/`` (``tokenizer/``, ``train.bin``, ``val.bin``, ``meta.json``; see
:mod:`crawl2chat.tokenizer.shards`). Out (``models/base/``): ``model.safetensors``,
``config.json``, ``tokenizer/``, ``loss_curve.png``, ``train_log.jsonl`` (loss, lr,
grad norm, tokens/s, MFU every ``log_every`` steps), ``train_samples.jsonl``,
``samples.json`` and ``report.md``.

Long training is resumable: with ``train.checkpoint_every`` the stage keeps
``last.ckpt`` in :func:`checkpoint_dir`, a folder beside its output named after its
training params and input; a rerun after a crash or kill continues from there (same
losses as an uninterrupted run). The folder outlives a failed quality gate and is removed
by :func:`committed` once the runner has renamed the output into place.

The model trains on random windows of the train split, or with ``data.mix`` of several
tokens folders (same tokenizer) drawn by weight or epochs
(:class:`~crawl2chat.model.windows.DataCfg`; the mix, with each source's tokens and
expected passes, is in the report and the manifest's details); its loss is measured on
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crawl2chat import paths
from crawl2chat.config import NOT_A_PARAM
from crawl2chat.digest import file_digest, folder_digest
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
from crawl2chat.model.windows import DataCfg, MixedWindows, TokenWindows, mix_weights
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.shards import open_split, read_meta
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
    data: DataCfg = field(default_factory=DataCfg)
    """A pretraining mix of tokens folders; empty: the tokens stage's output alone."""
    root: Path = field(default=Path("."), metadata=NOT_A_PARAM)
    """The folder the mix's relative paths are read from (the project root)."""


def resolve(cfg: Cfg, root: Path) -> Cfg:
    """``cfg`` bound to the project in ``root``: the mix's relative paths are read there."""
    return replace(cfg, root=root)


def _mix_folders(cfg: Cfg) -> list[Path]:
    return [(cfg.root / e.path).resolve() for e in cfg.data.mix]


def external_inputs(cfg: Cfg, root: Path) -> list[Path]:
    """The mix's train splits beyond the tokens stage's own output (that one is the
    stage's input already)."""
    own = paths.stage_output("tokens", root).resolve()
    return [folder / "train.bin" for folder in _mix_folders(resolve(cfg, root))
            if folder != own]


def mixed_windows(cfg: Cfg, in_dir: Path, count: int) -> tuple[MixedWindows, list[dict]]:
    """``count`` training windows from the mix's folders, and what each source is: path,
    train tokens, share of the windows and the passes over it that share means."""
    own = folder_digest(in_dir / "tokenizer")
    sources = []
    for folder in _mix_folders(cfg):
        if not (folder / "train.bin").is_file():
            raise InputError(f"base.data.mix: {folder} has no train.bin (a tokens folder)")
        if folder_digest(folder / "tokenizer") != own:
            raise InputError(f"base.data.mix: {folder} was encoded with another tokenizer "
                             f"than {in_dir}; every source must share the stage's tokenizer")
        sources.append(open_split(folder, "train"))
    weights = mix_weights(cfg.data.mix, [len(s) for s in sources])
    tokens = count * cfg.model.block_size
    table = [{"path": e.path, "train_tokens": len(s), "share": round(float(w), 6),
              "passes": round(float(w) * tokens / len(s), 4)}
             for e, s, w in zip(cfg.data.mix, sources, weights, strict=True)]
    windows = MixedWindows(sources, weights, cfg.model.block_size, count, seed=cfg.train.seed)
    return windows, table


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


# TrainCfg fields that change how training runs, logs or saves, not what it computes
_NOT_TRAINING = ("progress_bar", "resume", "checkpoint_every", "num_workers", "log_every",
                 "peak_flops")


def checkpoint_dir(cfg: Cfg, in_dir: Path, out_dir: Path) -> Path:
    """``<outputs>/base.tmp-ckpt-<digest of training params and input>``: beside the
    stage's temporary output folder, not inside it (that one is new for every attempt) and
    not in ``models/base`` (DVC deletes a declared output before rerunning its stage). The
    ``*.tmp-*/`` pattern keeps it out of git. Only what decides the trained weights is
    hashed: the model, the training settings (less how it logs, saves and shows
    progress) and the content of the input files (not the upstream manifest, whose
    timestamps change on every rerun of an unchanged tokens stage). Evaluation, samples,
    prompts and gate settings may change between a kill and the rerun."""
    train = asdict(cfg.train)
    for name in _NOT_TRAINING:
        train.pop(name)
    digest = hashlib.sha256(json.dumps({"model": asdict(cfg.model), "train": train,
                                        "data": asdict(cfg.data)},
                                       sort_keys=True, default=str).encode())
    for file in sorted(p for p in in_dir.rglob("*") if p.is_file() and p.name != paths.MANIFEST):
        digest.update(f"{file.relative_to(in_dir).as_posix()}\0{file_digest(file)}\0".encode())
    for folder in _mix_folders(cfg):  # the mix's other sources decide the weights too
        digest.update(f"{folder}\0{file_digest(folder / 'train.bin')}\0".encode())
    return out_dir.parent / f"base.tmp-ckpt-{digest.hexdigest()[:16]}"


def committed(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> None:
    """Called by the runner once the output is in place (after the quality gate and the
    rename): only now is the checkpoint folder no longer needed. Until then a gate failure
    or a kill during evaluation leaves it for the rerun to resume from."""
    if in_dir is not None:
        shutil.rmtree(checkpoint_dir(cfg, in_dir, out_dir), ignore_errors=True)


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
    mix: list[dict] = []
    if cfg.data.mix:
        train, mix = mixed_windows(cfg, in_dir, windows)
    else:
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
        **({"data_mix": json.dumps(mix)} if mix else {}),
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
        if mix:
            report.write("\n## Pretraining mix\n\n| source | train tokens | share of windows "
                         "| passes |\n|---|---:|---:|---:|\n" + "".join(
                             f"| {m['path']} | {m['train_tokens']} | {m['share']:.3f} | "
                             f"{m['passes']:.2f} |\n" for m in mix))
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
