"""Stage ``sft``: fine-tune the base model into a chat model on conversations.

In:  ``models/base`` (weights, config, tokenizer), the conversation sources of ``sft.data``
     (messages, ShareGPT or OASST files; JSONL or Parquet; by default ``data/demo/chat``)
     and the held-out prompt sets ``sft.eval.identity`` / ``harmful`` / ``benign``.
Out: ``models/sft``: the fine-tuned ``model.safetensors`` + ``config.json`` +
     ``tokenizer/``, ``loss_curve.png``, ``eval.json`` (the evaluation's numbers),
     ``replies.jsonl`` (every generated evaluation reply) and ``report.md``.

Training rows come from the chat template: the loss is taken on assistant tokens only.
``train_layers`` freezes the rest of the model; ``epochs`` sets the number of steps from
the data. Evaluation (chat_eval/evaluate.py): the held-out assistant-token loss before and
after fine-tuning; format compliance, the share of held-out prompts whose reply the model
ends with ``<|assistant_end|>`` within ``eval.max_new_tokens`` (the one behaviour a chat model
must have, whatever its size); the share of "who are you" prompts answered with the
assistant's name and what it is; and the refusal rates on harmful and on benign prompts.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from crawl2chat.chat.data import (
    SKIP_REASONS,
    Conversation,
    Source,
    hash_sample,
    load_sources,
    repeats,
    split,
)
from crawl2chat.chat.template import to_examples
from crawl2chat.chat_eval.evaluate import EvalCfg, assistant_loss, evaluate, rates, reply
from crawl2chat.chat_eval.refusal import load_prompts
from crawl2chat.chat_eval.report import write_report
from crawl2chat.config import NOT_A_PARAM, as_params, build
from crawl2chat.errors import ConfigError, InputError
from crawl2chat.model.config import TrainCfg

log = logging.getLogger("crawl2chat.sft")
EVAL_FILE = "eval.json"
REPLIES_FILE = "replies.jsonl"
MIDTRAIN_DIR = "midtrain"  # the midtraining phase's train log and loss curve
BASE_REPLIES_FILE = "base_replies.json"  # the base model on sft.eval.prompts, before SFT


def _demo_data() -> list[Source]:
    return [Source("data/demo/chat/assistant.jsonl", weight=3),
            Source("data/demo/chat/dialogues.jsonl")]


@dataclass
class Cfg:
    """The ``sft`` section of params.yaml."""

    # conversation sources (chat/data.py Source: path, format, lang, oasst, weight, max)
    data: list[Source] = field(default_factory=_demo_data)
    max_conversations: int | None = None  # cap on training conversations (a hash sample)
    heldout_fraction: float = 0.1  # share of conversations held out, by content hash
    block_size: int | None = None  # row length; null = the base model's context
    train: TrainCfg = field(default_factory=TrainCfg)
    epochs: float | None = None  # passes over the training rows; sets train.max_steps
    # steps before fine-tuning with the loss on every token of the same conversations
    # (questions, turn markers and answers: nanochat's midtraining), then train.max_steps
    # on the assistant's tokens alone; 0 = none
    midtrain_steps: int = 0
    # what is trained: all | last_N (the last N blocks + final norm) | a list of name
    # patterns (fnmatch) such as ["transformer.h.3.*"]; the rest is frozen
    train_layers: str | list[str] = "all"
    eval: EvalCfg = field(default_factory=EvalCfg)  # the evaluation and its quality gate
    min_train_conversations: int = 1000  # quality gate (crawl2chat.quality.sft)
    # the folder the relative data and prompt paths are read from (and origins named after)
    root: Path = field(default=Path("."), metadata=NOT_A_PARAM)

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("sft.data: name at least one conversation source")
        self.data = [build(Source, s, f"sft.data[{i}]") if isinstance(s, dict) else s
                     for i, s in enumerate(self.data)]
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ConfigError(f"sft.heldout_fraction must be in (0, 1), "
                              f"got {self.heldout_fraction}")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"sft.epochs must be > 0 or null, got {self.epochs}")
        if self.midtrain_steps < 0:
            raise ConfigError(f"sft.midtrain_steps must be >= 0, got {self.midtrain_steps}")
        layers = self.train_layers
        if isinstance(layers, str) and layers != "all" and not (
                layers.startswith("last_") and layers[5:].isdigit() and int(layers[5:]) > 0):
            raise ConfigError(f"sft.train_layers: all, last_N (N >= 1) or a list of parameter "
                              f"name patterns, got {layers!r}")


def _midtrain(cfg: Cfg, model: Any, tok: Any, train: list[Any], heldout: list[Any],
              block_size: int, train_cfg: TrainCfg, out_dir: Path) -> dict[str, float]:
    """``cfg.midtrain_steps`` steps on every token of the training conversations, logged
    to ``out_dir/midtrain`` (its own loss curve); its metrics, none when it is off."""
    if not cfg.midtrain_steps:
        return {}
    from crawl2chat.model.train import fit

    rows = to_examples([c.as_messages() for c in train], tok, block_size, every_token=True)
    heldout_rows = to_examples([c.as_messages() for c in heldout], tok, block_size,
                               every_token=True)
    folder = out_dir / MIDTRAIN_DIR
    folder.mkdir()
    fitted = fit(model, Rows(rows), Rows(heldout_rows),
                 dataclasses.replace(train_cfg, max_steps=cfg.midtrain_steps), folder)
    return {"midtrain_steps": float(fitted["steps"]),
            "midtrain_val_loss": float(fitted["val_loss"]),
            "midtrain_time_s": float(fitted["train_time_s"])}


def resolve(cfg: Cfg, root: Path) -> Cfg:
    """``cfg`` bound to the project in ``root``: its relative paths are read from there."""
    return dataclasses.replace(cfg, root=root)


def external_inputs(cfg: Cfg, root: Path) -> list[Path]:
    """The conversation files and evaluation prompt sets: lineage records their digests."""
    files = [f for source in cfg.data for f in source.files(root)]
    for key, name in cfg.eval.prompt_files().items():
        if not (root / name).is_file():
            raise InputError(f"sft.eval.{key}: no such file {root / name}")
        files.append(root / name)
    return files


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, torch.Tensor]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.rows[index]


def _train_set(cfg: Cfg, train: list[Conversation]) -> list[Conversation]:
    """The training conversations, capped, each repeated as its source's weight says."""
    train = hash_sample(train, cfg.max_conversations)
    return [c for c in train for _ in range(repeats(c, cfg.data[c.source].weight))]


def freeze(model: torch.nn.Module, spec: str | list[str]) -> tuple[int, int]:
    """Leave only the parameters ``spec`` names trainable; ``(trainable, total)`` counts.

    Frozen parameters get ``requires_grad = False`` before training, so the optimizer
    (built from trainable parameters only) neither updates nor decays them.
    """
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    if spec == "all":
        patterns = ["*"]
    elif isinstance(spec, str):  # last_N: the last N blocks and the final norm
        n_layer = len(model.transformer.h)  # type: ignore[union-attr, arg-type]
        first = max(0, n_layer - int(spec[5:]))
        patterns = [f"transformer.h.{i}.*" for i in range(first, n_layer)]
        patterns.append("transformer.ln_f.*")
    else:
        patterns = list(spec)
        unused = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
        if unused:
            raise ConfigError(f"sft.train_layers: {unused} match no parameter; names look "
                              f"like {', '.join(names[:4])}, ...")
    chosen = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
    for param in model.parameters():
        param.requires_grad_(False)
    for name, param in model.named_parameters(remove_duplicate=False):
        if name in chosen:  # a tied weight stays trainable if any of its names is chosen
            param.requires_grad_(True)
    params = list(model.parameters())  # tied weights once
    trainable = sum(p.numel() for p in params if p.requires_grad)
    if not trainable:
        raise ConfigError(f"sft.train_layers {spec!r} leaves nothing to train")
    return trainable, sum(p.numel() for p in params)


def steps_for(epochs: float, rows: int, train: TrainCfg) -> int:
    """Optimizer steps for ``epochs`` passes over ``rows`` (full micro-batches only)."""
    per_epoch = (rows // train.batch_size) / train.grad_accum
    return max(1, round(epochs * per_epoch))


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, Any]:
    from crawl2chat.model.checkpoint import load_model, save_model
    from crawl2chat.model.train import fit

    if in_dir is None:
        raise ConfigError("sft needs the base model folder as its input")
    root = cfg.root.resolve()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(in_dir, device=device)
    block_size = cfg.block_size or model.config.block_size
    if block_size > model.config.block_size:
        raise ConfigError(f"sft.block_size {block_size} exceeds the base model's context "
                          f"{model.config.block_size}")
    # named as configured (relative to the project): the output must not depend on where
    # the project sits
    prompt_sets = {k: load_prompts(root / f, name=f)[: cfg.eval.refusal_prompts]
                   for k, f in cfg.eval.prompt_files().items()}

    loaded = load_sources(cfg.data, root)
    train, heldout = split(loaded.conversations, cfg.heldout_fraction)
    train = _train_set(cfg, train)
    stats: Counter[str] = Counter()
    rows = to_examples([c.as_messages() for c in train], tok, block_size, stats)
    heldout_rows = to_examples([c.as_messages() for c in heldout], tok, block_size)
    unique = len({c.key for c in train})
    log.info("sft: %d train conversations (%d with repeats) -> %d rows, %d assistant tokens; "
             "%d held out", unique, len(train), len(rows), stats["assistant_tokens"],
             len(heldout))
    if len(rows) < cfg.train.batch_size or not heldout_rows:
        raise ConfigError(f"sft: {len(rows)} training rows and {len(heldout_rows)} held-out "
                          f"rows; need at least train.batch_size={cfg.train.batch_size} and 1")
    train_cfg = cfg.train if cfg.epochs is None else dataclasses.replace(
        cfg.train, max_steps=steps_for(cfg.epochs, len(rows), cfg.train))
    trainable, total = freeze(model, cfg.train_layers)

    base_loss = assistant_loss(model, heldout_rows, cfg.train.batch_size)
    # the same prompts, the same sampling, before any fine-tuning: what SFT changed
    before = [{"prompt": p, "reply": reply(model, tok, [{"role": "user", "content": p}],
                                           cfg.eval, i).text()}
              for i, p in enumerate(cfg.eval.prompts)]
    midtrained = _midtrain(cfg, model, tok, train, heldout, block_size, train_cfg, out_dir)
    model.to(device)
    fitted = fit(model, Rows(rows), Rows(heldout_rows), train_cfg, out_dir,
                 sample_fn=(lambda m: [reply(m, tok, [{"role": "user", "content": p}], cfg.eval,
                                             0).text() for p in cfg.eval.prompts[:2]]),
                 reference_lines={"base model, held-out": base_loss})
    model.to(device)  # Lightning hands the model back on the CPU
    heldout_loss = assistant_loss(model, heldout_rows, cfg.train.batch_size)
    replies = evaluate(model, tok, heldout, cfg.data, cfg.eval, block_size, prompt_sets)
    measured = rates(replies)

    metrics: dict[str, Any] = {
        "records": float(unique),
        "trained_conversations": float(len(train)),
        "tokens": float(stats["assistant_tokens"]),
        "rows": float(stats["rows"]),
        "block_size": float(block_size),
        "epochs": fitted["steps"] * train_cfg.grad_accum * train_cfg.batch_size / len(rows),
        "trainable_params": float(trainable),
        "params": float(total),
        "heldout_conversations": float(len(heldout)),
        "heldout_loss": heldout_loss,
        "base_heldout_loss": base_loss,
        **measured,
        "split_conversations": float(stats["split_conversations"]),
        "dropped_conversations": float(stats["dropped_conversations"]),
        "dropped_exchanges": float(stats["dropped_exchanges"]),
        **{f"skipped_{reason}": float(loaded.skipped[reason]) for reason in SKIP_REASONS},
        **{k: v for k, v in fitted.items() if k != "tokens"},
        **midtrained,
    }
    save_model(model, tok, out_dir, extra={"stage": "sft", "block_size_trained": block_size,
                                          "heldout_loss": heldout_loss,
                                          "format_compliance": measured["format_compliance"]})
    (out_dir / EVAL_FILE).write_text(json.dumps(
        {"metrics": metrics, "cfg": as_params(cfg)}, indent=2, default=str) + "\n")
    (out_dir / REPLIES_FILE).write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in replies))
    (out_dir / BASE_REPLIES_FILE).write_text(json.dumps(before, indent=2, ensure_ascii=False)
                                             + "\n")
    write_report(out_dir, metrics, replies, cfg=cfg.eval, sources=cfg.data,
                 train_layers=cfg.train_layers)
    return metrics
