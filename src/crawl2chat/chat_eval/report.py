"""The ``sft`` stage's ``report.md``: what was trained on, the evaluation, sample replies.

In:  the stage's metrics, the evaluation's replies and :class:`EvalCfg`
     (chat_eval/evaluate.py), the conversation sources and which layers were trained.
Out: ``report.md`` in the stage's output folder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawl2chat import paths
from crawl2chat.chat.data import SKIP_REASONS, Source

if TYPE_CHECKING:
    from crawl2chat.chat_eval.evaluate import EvalCfg


def _fmt(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) and value != int(value) else f"{value:g}"


def _share(part: int, whole: int) -> str:
    """``"89.6% (86/96)"``: one decimal, so that a share just under a threshold never
    rounds up to it."""
    return f"{part / whole:.1%} ({part}/{whole})" if whole else "n/a (0 judged)"


def _quote(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "*(empty)*"


def _reply_row(reply: dict[str, Any], flag: str = "ended") -> str:
    mark = "yes" if reply[flag] else "no"
    return f"| {_quote(reply['prompt'])} | {_quote(reply['reply'])} | {mark} |"


def _source(source: Source) -> str:
    extra = [source.format] + ([",".join(source.lang)] if source.lang else []) + (
        [source.oasst] if source.format == "oasst" else []) + (
        [f"×{source.weight:g}"] if source.weight != 1 else []) + (
        [f"max {source.max:,}"] if source.max else [])
    return f"`{source.path}` ({', '.join(extra)})"


def _compliance_by_source(heldout: list[dict[str, Any]]) -> list[str]:
    """One row per conversation source, when there is more than one."""
    sources = sorted({r["source"] for r in heldout})
    if len(sources) < 2:
        return []
    rows = []
    for source in sources:
        mine = [r for r in heldout if r["source"] == source]
        rows.append(f"| … of them from `{source}` | "
                    f"{_share(sum(r['ended'] for r in mine), len(mine))} |")
    return rows


def _refusal_lines(m: dict[str, float]) -> list[str]:
    lines = []
    if "identity" in m:
        n = int(m["identity_prompts"])
        lines.append(f"| identity: held-out \"who are you\" prompts answered with the "
                     f"assistant's name and what it is | {_share(round(m['identity'] * n), n)} |")
    for kind, want in (("harmful", "high"), ("benign", "near 0")):
        if f"refusal_{kind}" in m:
            n = int(m[f"refusal_{kind}_prompts"])
            lines.append(f"| refusal rate on {kind} prompts (should be {want}) | "
                         f"{_share(round(m[f'refusal_{kind}'] * n), n)} |")
    return lines


def write_report(out_dir: Path, metrics: dict[str, Any], replies: list[dict[str, Any]], *,
                 cfg: EvalCfg, sources: Sequence[Source], train_layers: str | list[str]
                 ) -> None:
    m = metrics
    judged = int(m["format_judged"])
    heldout = [r for r in replies if r["kind"] == "heldout"]
    trained = "all" if train_layers == "all" else (
        f"{int(m['trainable_params']):,} of {int(m['params']):,} (train_layers "
        f"{train_layers})")
    midtrained = (f"First midtrained for {int(m['midtrain_steps'])} steps "
                  f"({m['midtrain_time_s']:.0f} s) on the same conversations with the loss "
                  f"on every token (held-out loss {_fmt(m['midtrain_val_loss'])}; "
                  f"`midtrain/loss_curve.png`). " if m.get("midtrain_steps") else "")
    lines = [
        "# SFT: chat model",
        "",
        midtrained + f"Fine-tuned from `models/base` for {int(m['steps'])} steps, "
        f"{m['epochs']:.1f} passes "
        f"({m['train_time_s']:.0f} s), on {int(m['records']):,} conversations "
        f"({int(m['trained_conversations']):,} with repeats: {int(m['tokens']):,} assistant "
        f"tokens in {int(m['rows']):,} rows of {int(m['block_size'])} tokens) from "
        + ", ".join(_source(s) for s in sources) + ". The loss is taken on assistant "
        f"tokens only; parameters trained: {trained}. Precision {m['precision']} "
        f"({m['precision_reason']}).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| held-out assistant-token loss, base → SFT | {_fmt(m['base_heldout_loss'])} → "
        f"{_fmt(m['heldout_loss'])} |",
        f"| format compliance: replies that end with `<|assistant_end|>` within "
        f"{cfg.max_new_tokens} tokens (held-out prompts with a shorter reference answer; "
        f"temperature {cfg.sampling.temperature:g}) | "
        f"{_share(round(m['format_compliance'] * judged), judged)} |",
        *_compliance_by_source(heldout),
        *_refusal_lines(m),
        f"| held-out conversations | {int(m['heldout_conversations']):,} |",
        f"| conversations split at turn boundaries / dropped (too long) | "
        f"{int(m['split_conversations'])} / {int(m['dropped_conversations'])} |",
        "| skipped input records | " + (", ".join(
            f"{r}: {int(m[f'skipped_{r}'])}" for r in SKIP_REASONS if m[f"skipped_{r}"])
            or "none") + " |",
        "",
        "Refusals are detected by a fixed list of refusal phrasings "
        "(`crawl2chat.chat_eval.refusal`), identity by the name plus what the assistant is "
        "(`crawl2chat.chat_eval.identity`); the prompt sets are held out: no training "
        "conversation asks them.",
        "",
        "![loss curve](loss_curve.png)",
        "",
        "## Answers to the fixed prompts",
        "",
        "| prompt | reply | ended its turn |",
        "|---|---|---|",
    ]
    lines += [_reply_row(r) for r in replies if r["kind"] == "prompt"]
    for kind, flag in (("identity", "identified"), ("harmful", "refused"),
                       ("benign", "refused")):
        some = [r for r in replies if r["kind"] == kind][:6]
        if some:
            lines += ["", f"## {kind.capitalize()} prompts (first 6)", "",
                      f"| prompt | reply | {flag} |", "|---|---|---|"]
            lines += [_reply_row(r, flag) for r in some]
    lines += ["", "## Held-out prompts (first 8)", "", "| prompt | reply | ended its turn |",
              "|---|---|---|"]
    lines += [_reply_row(r) for r in heldout[:8]]
    unended = [r for r in heldout if not r["ended"]]
    if unended:
        lines += ["", f"## Held-out replies that did not end their turn (first 8 of "
                      f"{len(unended)})", "", "| prompt | reply | tokens |", "|---|---|---|"]
        lines += [f"| {_quote(r['prompt'])} | {_quote(r['reply'])} | {r['new_tokens']} |"
                  for r in unended[:8]]
    (out_dir / paths.REPORT).write_text("\n".join(lines) + "\n")
