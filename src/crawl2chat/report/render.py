"""A :class:`Card` and its charts as one self-contained HTML page and as Markdown.

In: the card and chart name -> data URI. Out: text; both forms carry the same sections
in the same order, images inline (no script, no stylesheet or font from the network).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

from crawl2chat.report.collect import Card

Section = tuple[str, str | None, list[str], list[list[str]]]  # title, chart, header, rows


def _fmt(value: Any, form: str = "{:,.0f}") -> str:
    return "" if value is None else form.format(value)


def _sections(card: Card) -> Iterator[Section]:
    stages = [[s, "rebuilt" if r.rebuilt else "reused", r.status, r.run_id[:12]]
              for s, r in card.stages.items()]
    yield "Stages", None, ["stage", "in this run", "status", "MLflow run"], stages
    yield ("Data funnel", "funnel", ["step", "documents in", "kept", "removed"],
           [[f["step"], str(f["docs_in"]), str(f["docs_out"]),
             str(f["docs_in"] - f["docs_out"])] for f in card.funnel])
    yield ("Removal reasons", None, ["reason", "documents"],
           [[reason, str(n)] for reason, n in card.reasons.items()])
    yield ("Language mix", "language_mix", ["language", "target", "achieved"],
           [[lang, f"{t:.1%}", f"{a:.1%}"] for lang, t, a in card.language_mix])
    yield ("Tokenizer compression", "compression", ["tokenizer", "bytes per token"],
           [[name, f"{v:.3f}"] for name, v in card.compression.items()])
    yield "Loss curves", "loss", [], []
    yield ("Throughput and MFU", "throughput",
           ["stage", "steps", "tokens/s", "MFU", "train time (s)", "precision"],
           [[t["stage"], _fmt(t["steps"]), _fmt(t["tokens_per_s"]), _fmt(t["mfu"], "{:.1%}"),
             _fmt(t["train_time_s"], "{:.1f}"), t["precision"]] for t in card.training])
    yield "MFU", "mfu", [], []
    yield ("Evaluation", None, ["stage", "measure", "value"],
           [list(row) for row in card.evaluation])
    yield ("Sample generations, base and SFT", None, ["prompt", "base", "SFT"],
           [list(row) for row in card.samples])
    yield ("Lineage", None, ["stage", "output", "output sha256", "git revision", "inputs (sha256)"],
           [[link["stage"], link["output"], link["output_digest"][:16],
             link["git_revision"][:12],
             "; ".join(f"{name} {digest[:16]}" for name, digest in link["inputs"].items())]
            for link in card.lineage])


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
code { font-size: 0.9em; }
"""


def to_html(card: Card, charts: dict[str, str]) -> str:
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>crawl2chat run {html.escape(card.pipeline_run)}</title>",
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>crawl2chat pipeline run <code>{html.escape(card.pipeline_run)}</code></h1>"]
    for title, chart, header, rows in _sections(card):
        if not rows and chart not in charts:
            continue
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if chart in charts:
            parts.append(f'<img class="plot" alt="{html.escape(title)}" src="{charts[chart]}">')
        if rows:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                         + "</tr>")
            parts.extend("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                         for row in rows)
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(card: Card, charts: dict[str, str]) -> str:
    lines = [f"# crawl2chat pipeline run `{card.pipeline_run}`", ""]
    for title, chart, header, rows in _sections(card):
        if not rows and chart not in charts:
            continue
        lines += [f"## {title}", ""]
        if chart in charts:
            lines += [f"![{title}]({charts[chart]})", ""]
        if rows:
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)
