"""The text stage's human report: the funnel (PNG + table), the language mix, removals.

In: the output folder, the stage ``Cfg``, the kept and removed frames and the stage's
``counts`` (per-step rows from :class:`~crawl2chat.text.steps.StepStats`, target and
achieved language shares, PII replacements, damaged records). Out: ``funnel.png``,
``mix.png`` (:mod:`crawl2chat.text.mix_plot`) and ``report.md`` in that folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawl2chat import paths
from crawl2chat.text.mix_plot import MIX_PNG, filter_lines, plot_mix

if TYPE_CHECKING:
    import pandas as pd


def _plot(out_dir: Path, counts: dict[str, Any]) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    rows = counts["steps"]
    labels = ["crawled pages"] + [f"after {r['name']}" for r in rows]
    values = [counts["docs_in"]] + [_left(counts, i) for i in range(len(rows))]
    fig = Figure(figsize=(7, 0.35 * len(labels) + 1.2))
    ax = fig.add_subplot()
    ax.barh(labels[::-1], values[::-1], color="#4c72b0")
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v}", va="center")
    ax.set_xlabel("pages")
    ax.set_title("text stage: pages left after each step")
    ax.set_xlim(0, max(values) * 1.15 or 1)
    fig.tight_layout()
    fig.savefig(out_dir / "funnel.png", dpi=100)


def _left(counts: dict[str, Any], i: int) -> int:
    """Pages left after step ``i``: pages in, minus every step's removals so far."""
    removed = sum(r["docs_in"] - r["docs_out"] for r in counts["steps"][:i + 1])
    return int(counts["docs_in"] - removed)


def write_report(out_dir: Path, cfg: Any, docs: pd.DataFrame, gone: pd.DataFrame,
                 counts: dict[str, Any]) -> None:
    """Write ``funnel.png`` and ``report.md``."""
    _plot(out_dir, counts)
    target, achieved = counts["languages_target"], counts["languages_achieved"]
    lines = ["# text", "",
             f"Kept **{counts['kept']}** of {counts['docs_in']} pages "
             f"({int(docs['text'].str.len().sum()):,} characters).", "",
             "![funnel](funnel.png)", "",
             "| step | docs in | docs out | removed | tokens in | tokens out | ms/doc |",
             "|---|---|---|---|---|---|---|"]
    for r in counts["steps"]:
        lines.append(f"| {r['name']} | {r['docs_in']} | {r['docs_out']} | "
                     f"{r['removed_share']:.1%} | {r['tokens_in']:,} | {r['tokens_out']:,} | "
                     f"{r['ms_per_doc']:.2f} |")
    lines += ["", "Tokens are whitespace words (of the HTML before extraction).", "",
              "## Language mix", "", "| language | target share | min score | achieved | docs |",
              "|---|---|---|---|---|"]
    per_lang = docs["lang"].value_counts()
    for lang in sorted(set(target) | set(achieved)):
        lines.append(f"| {lang} | {target.get(lang, 0.0):.1%} | "
                     f"{cfg.min_scores.get(lang, float('nan')):.2f} | "
                     f"{achieved.get(lang, 0.0):.1%} | {int(per_lang.get(lang, 0))} |")
    plot_mix(out_dir, target, achieved, cfg.mix_tolerance)
    lines += ["", f"![language mix]({MIX_PNG})", "", *filter_lines(cfg)]
    pii = counts["pii_replaced"]
    lines += ["", f"PII replaced ({cfg.pii.mode}): "
              + (", ".join(f"{k} {v}" for k, v in sorted(pii.items())) or "none"), "",
              "## Removed, by reason", "",
              "Every removed page is in `removed.parquet` with its reason and text.", "",
              "| reason | pages | example |", "|---|---|---|"]
    for reason, n in counts["removed"].items():
        example = gone.loc[gone["reason"].str.startswith(reason)].iloc[0]
        lines.append(f"| `{reason}` | {n} | {example['url']} |")
    if counts["damaged_records"]:
        lines += ["", f"Damaged crawl records skipped: {counts['damaged_records']}"]
    (out_dir / paths.REPORT).write_text("\n".join(lines) + "\n")
