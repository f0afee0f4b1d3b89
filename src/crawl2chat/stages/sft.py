"""Stage ``sft``: fine-tune the base model into a chat model on conversations.

In:  ``models/base`` (weights, config, tokenizer) and the conversation files named by
     ``sft.sources`` (JSONL, messages format; by default ``data/demo/chat``).
Out: ``models/sft``: the fine-tuned ``model.safetensors`` + ``config.json`` +
     ``tokenizer/``, ``loss_curve.png``, ``eval.json`` (the evaluation's numbers),
     ``replies.jsonl`` (every generated evaluation reply) and ``report.md``.

Training rows come from the chat template: the loss is taken on assistant tokens only.
Evaluation on held-out conversations: the assistant-token loss before and after
fine-tuning, and format compliance, the share of held-out prompts whose reply the model
ends with ``<|assistant_end|>`` within ``max_new_tokens``: the one behaviour a chat
model must have, whatever its size.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from crawl2chat import paths
from crawl2chat.chat.data import SKIP_REASONS, Conversation, load_files, split
from crawl2chat.chat.session import Turn, complete
from crawl2chat.chat.template import IGNORE, render_prompt, to_examples
from crawl2chat.config import ConfigError
from crawl2chat.errors import InputError
from crawl2chat.model.train import TrainCfg

if TYPE_CHECKING:
    from crawl2chat.model.gpt import GPT
    from crawl2chat.tokenizer.tokenizer import Tokenizer

log = logging.getLogger("crawl2chat.sft")
EVAL_FILE = "eval.json"
REPLIES_FILE = "replies.jsonl"


@dataclass
class Cfg:
    """The ``sft`` section of params.yaml."""

    # conversation files (JSONL, messages format), relative to the project root
    sources: list[str] = field(default_factory=lambda: [
        "data/demo/chat/assistant.jsonl", "data/demo/chat/dialogues.jsonl"])
    repeat: list[int] = field(default_factory=list)  # per source: times it is seen; [] = 1s
    max_conversations: int | None = None  # cap on training conversations (a hash sample)
    heldout_fraction: float = 0.1  # share of conversations held out, by content hash
    block_size: int | None = None  # row length; null = the base model's context
    train: TrainCfg = field(default_factory=TrainCfg)
    eval_conversations: int = 64  # held-out prompts answered for format compliance
    max_new_tokens: int = 64  # a compliant reply ends within this many tokens
    # evaluation replies are sampled as `crawl2chat chat` samples by default, so the report
    # shows what a user sees (greedy decoding of a small model repeats one safe reply)
    temperature: float = 0.8  # 0 = greedy
    top_k: int | None = 50
    eval_prompts: list[str] = field(default_factory=list)  # answered into report.md
    # quality gate (crawl2chat.quality.sft)
    min_format_compliance: float = 0.5
    min_distinct_replies: float = 0.3  # distinct replies / replies: catches a collapsed model
    min_train_conversations: int = 100
    max_heldout_loss: float = 10.0

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("sft.sources: name at least one conversation file")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ConfigError(f"sft.heldout_fraction must be in (0, 1), "
                              f"got {self.heldout_fraction}")
        if self.repeat and (len(self.repeat) != len(self.sources)
                            or any(not isinstance(n, int) or n < 1 for n in self.repeat)):
            raise ConfigError(f"sft.repeat: one whole number >= 1 per source "
                              f"({len(self.sources)}), got {self.repeat}")


def external_inputs(cfg: Cfg, root: Path) -> list[Path]:
    """The conversation files: lineage records their digests."""
    files = [root / source for source in cfg.sources]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"sft.sources: no such file {', '.join(missing)}")
    return files


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, torch.Tensor]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.rows[index]


def _train_set(cfg: Cfg, train: list[Conversation], root: Path) -> list[Conversation]:
    if cfg.max_conversations is not None and len(train) > cfg.max_conversations:
        keep = {c.key for c in sorted(train, key=lambda c: c.key)[: cfg.max_conversations]}
        train = [c for c in train if c.key in keep]
    times = {str(root / s): n for s, n in zip(cfg.sources, cfg.repeat, strict=False)}
    return [c for c in train for _ in range(times.get(c.origin.rsplit(":", 1)[0], 1))]


@torch.inference_mode()
def assistant_loss(model: GPT, rows: list[dict[str, torch.Tensor]], batch_size: int) -> float:
    """Mean cross-entropy over all assistant tokens of ``rows`` (nats per token)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        batch = rows[i:i + batch_size]
        targets = torch.stack([r["targets"] for r in batch]).to(device)
        n = int((targets != IGNORE).sum())
        if n:
            _, loss = model(torch.stack([r["input_ids"] for r in batch]).to(device), targets)
            total, count = total + float(loss) * n, count + n
    return total / count if count else float("nan")


def _reply(model: GPT, tok: Tokenizer, messages: list[dict[str, str]], cfg: Cfg, seed: int) -> Turn:
    prompt = render_prompt(messages, tok)
    return complete(Turn(model, tok, prompt, cfg.max_new_tokens, cfg.temperature, cfg.top_k,
                         seed))


def _prompt_and_answer(conversation: Conversation) -> tuple[list[dict[str, str]], str]:
    """The conversation before its last assistant turn, and that turn's text."""
    messages = conversation.as_messages()
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def _judgeable(conversation: Conversation, tok: Tokenizer, cfg: Cfg, block_size: int) -> bool:
    """Whether "ends its turn within max_new_tokens" is a fair question for this prompt:
    the reference answer itself is that short, and prompt + answer fit the context."""
    messages, answer = _prompt_and_answer(conversation)
    return (len(tok.encode(answer)) < cfg.max_new_tokens
            and len(render_prompt(messages, tok)) + cfg.max_new_tokens <= block_size)


def evaluate(model: GPT, tok: Tokenizer, heldout: list[Conversation], cfg: Cfg, block_size: int
             ) -> list[dict[str, Any]]:
    """Replies to held-out prompts (for format compliance) and to the fixed eval prompts."""
    model.eval()
    judged = [c for c in heldout if _judgeable(c, tok, cfg, block_size)]
    jobs = [("heldout", _prompt_and_answer(c)[0], c.origin)
            for c in judged[: cfg.eval_conversations]]
    jobs += [("prompt", [{"role": "user", "content": p}], "sft.eval_prompts")
             for p in cfg.eval_prompts]
    replies = []
    for n, (kind, messages, origin) in enumerate(tqdm(jobs, desc="sft eval", unit="reply",
                                                      mininterval=2, leave=False)):
        turn = _reply(model, tok, messages, cfg, seed=n)
        replies.append({"kind": kind, "origin": origin, "prompt": messages[-1]["content"],
                        "reply": turn.text(), "new_tokens": len(turn.ids) + (turn.stop is not None),
                        "ended": turn.ended})
    return replies


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, float]:
    from crawl2chat.model.checkpoint import load_model, save_model
    from crawl2chat.model.train import fit

    if in_dir is None:
        raise ConfigError("sft needs the base model folder as its input")
    root = paths.project_root()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(in_dir, device=device)
    block_size = cfg.block_size or model.config.block_size
    if block_size > model.config.block_size:
        raise ConfigError(f"sft.block_size {block_size} exceeds the base model's context "
                          f"{model.config.block_size}")

    loaded = load_files(root / s for s in cfg.sources)
    train, heldout = split(loaded.conversations, cfg.heldout_fraction)
    train = _train_set(cfg, train, root)
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

    base_loss = assistant_loss(model, heldout_rows, cfg.train.batch_size)
    fitted = fit(model, Rows(rows), Rows(heldout_rows), cfg.train, out_dir,
                 sample_fn=(lambda m: [_reply(m, tok, [{"role": "user", "content": p}], cfg,
                                              0).text() for p in cfg.eval_prompts[:2]]),
                 reference_lines={"base model, held-out": base_loss})
    model.to(device)  # Lightning hands the model back on the CPU
    heldout_loss = assistant_loss(model, heldout_rows, cfg.train.batch_size)
    replies = evaluate(model, tok, heldout, cfg, block_size)
    judged = [r for r in replies if r["kind"] == "heldout"]
    compliance = sum(r["ended"] for r in judged) / len(judged) if judged else 0.0

    metrics: dict[str, float] = {
        "records": float(unique),
        "trained_conversations": float(len(train)),
        "tokens": float(stats["assistant_tokens"]),
        "rows": float(stats["rows"]),
        "block_size": float(block_size),
        "heldout_conversations": float(len(heldout)),
        "heldout_loss": heldout_loss,
        "base_heldout_loss": base_loss,
        "format_compliance": compliance,
        "format_judged": float(len(judged)),
        "split_conversations": float(stats["split_conversations"]),
        "dropped_conversations": float(stats["dropped_conversations"]),
        "dropped_exchanges": float(stats["dropped_exchanges"]),
        **{f"skipped_{reason}": float(loaded.skipped[reason]) for reason in SKIP_REASONS},
        **{k: v for k, v in fitted.items() if k != "tokens"},
    }
    save_model(model, tok, out_dir, extra={"stage": "sft", "block_size_trained": block_size,
                                          "heldout_loss": heldout_loss,
                                          "format_compliance": compliance})
    (out_dir / EVAL_FILE).write_text(json.dumps(
        {"metrics": metrics, "cfg": asdict(cfg)}, indent=2, default=str) + "\n")
    (out_dir / REPLIES_FILE).write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in replies))
    _write_report(out_dir, cfg, metrics, replies)
    return metrics


def _fmt(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) and value != int(value) else f"{value:g}"


def _quote(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "*(empty)*"


def _reply_row(reply: dict[str, Any]) -> str:
    ended = "yes" if reply["ended"] else "no"
    return f"| {_quote(reply['prompt'])} | {_quote(reply['reply'])} | {ended} |"


def _write_report(out_dir: Path, cfg: Cfg, metrics: dict[str, float],
                  replies: list[dict[str, Any]]) -> None:
    m = metrics
    judged = int(m["format_judged"])
    lines = [
        "# SFT: chat model",
        "",
        f"Fine-tuned from `models/base` for {int(m['steps'])} steps "
        f"({m['train_time_s']:.0f} s) on {int(m['records']):,} conversations "
        f"({int(m['trained_conversations']):,} with repeats: {int(m['tokens']):,} assistant "
        f"tokens in {int(m['rows']):,} rows of {int(m['block_size'])} tokens) from "
        + ", ".join(f"`{s}`" for s in cfg.sources) + ". The loss is taken on assistant "
        "tokens only.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| held-out assistant-token loss, base → SFT | {_fmt(m['base_heldout_loss'])} → "
        f"{_fmt(m['heldout_loss'])} |",
        f"| format compliance: replies that end with `<|assistant_end|>` within "
        f"{cfg.max_new_tokens} tokens (held-out prompts with a shorter reference answer; "
        f"temperature {cfg.temperature:g}) | {m['format_compliance']:.0%} "
        f"({round(m['format_compliance'] * judged)}/{judged}) |",
        f"| held-out conversations | {int(m['heldout_conversations']):,} |",
        f"| conversations split at turn boundaries / dropped (too long) | "
        f"{int(m['split_conversations'])} / {int(m['dropped_conversations'])} |",
        "| skipped input lines | " + (", ".join(
            f"{r}: {int(m[f'skipped_{r}'])}" for r in SKIP_REASONS if m[f"skipped_{r}"])
            or "none") + " |",
        "",
        "![loss curve](loss_curve.png)",
        "",
        "## Answers to the fixed prompts",
        "",
        "| prompt | reply | ended its turn |",
        "|---|---|---|",
    ]
    lines += [_reply_row(r) for r in replies if r["kind"] == "prompt"]
    lines += ["", "## Held-out prompts (first 8)", "", "| prompt | reply | ended its turn |",
              "|---|---|---|"]
    lines += [_reply_row(r) for r in [r for r in replies if r["kind"] == "heldout"][:8]]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
