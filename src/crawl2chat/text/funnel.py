"""The text stage's human report: the funnel (PNG + table), the language mix, removals.

In: the output folder, the stage ``Cfg``, the stage's ``counts`` (per-step rows from
:class:`~crawl2chat.text.steps.StepStats`, per language target, effective target and
achieved share of the kept characters, PII replacements, damaged records) and one
example URL per removal reason. Out: ``funnel.png``, ``mix.png``
(:mod:`crawl2chat.text.mix_plot`) and ``report.md`` in that folder.
Nothing here reads the documents: the report costs the same for any corpus size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crawl2chat import paths
from crawl2chat.text.mix_plot import MIX_PNG, filter_lines, plot_mix
from crawl2chat.text.shards import REMOVED_SAMPLE


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


def write_report(out_dir: Path, cfg: Any, counts: dict[str, Any],
                 examples: dict[str, str]) -> None:
    """Write ``funnel.png`` and ``report.md``."""
    _plot(out_dir, counts)
    lines = ["# text", "",
             f"Kept **{counts['kept']}** of {counts['docs_in']} pages "
             f"({counts['chars']:,} characters).", "",
             "![funnel](funnel.png)", "",
             "| step | docs in | docs out | removed | tokens in | tokens out | ms/doc |",
             "|---|---|---|---|---|---|---|"]
    for r in counts["steps"]:
        lines.append(f"| {r['name']} | {r['docs_in']} | {r['docs_out']} | "
                     f"{r['removed_share']:.1%} | {r['tokens_in']:,} | {r['tokens_out']:,} | "
                     f"{r['ms_per_doc']:.2f} |")
    lines += ["", "Tokens are whitespace words (of the HTML before extraction).", "",
              "## Language mix", "",
              "Shares are of the kept characters: the mix is a quota by characters. "
              "A configured language without documents cannot be met; the others then "
              "keep their shares relative to one another (the effective target).", "",
              "| language | target share | effective target | min score | achieved | gap "
              "| docs | characters |", "|---|---|---|---|---|---|---|---|"]
    for lang, row in counts["languages"].items():
        lines.append(f"| {lang} | {row['target']:.1%} | {row['effective']:.1%} | "
                     f"{cfg.min_scores.get(lang, float('nan')):.2f} | "
                     f"{row['achieved']:.1%} | {row['gap']:+.1%} | {row['docs']} | "
                     f"{row['chars']:,} |")
    short = [lang for lang, row in counts["languages"].items()
             if row["target"] > 0 and not row["chars"]]
    if short:
        lines += ["", f"No documents in: {', '.join(short)} (share not met)."]
    languages = counts["languages"]
    plot_mix(out_dir, {lang: row["effective"] for lang, row in languages.items()},
             {lang: row["achieved"] for lang, row in languages.items() if row["chars"]},
             cfg.mix_tolerance)
    lines += ["", f"![language mix]({MIX_PNG})", "", *filter_lines(cfg)]
    pii = counts["pii_replaced"]
    sample = (f"; `{REMOVED_SAMPLE}` holds {cfg.keep_removed_sample} of them with "
              "their text, PII redacted" if cfg.keep_removed_sample else "")
    lines += ["", f"PII replaced ({cfg.pii.mode}): "
              + (", ".join(f"{k} {v}" for k, v in sorted(pii.items())) or "none"), "",
              "## Removed, by reason", "",
              "Every removed page is in `removed-*.parquet` with its reason, URL and the "
              f"hash of its text (not the text){sample}.", "",
              "| reason | pages | example |", "|---|---|---|"]
    for reason, n in counts["removed"].items():
        lines.append(f"| `{reason}` | {n} | {examples.get(reason, '')} |")
    if counts["damaged_records"]:
        lines += ["", f"Damaged crawl records skipped: {counts['damaged_records']}"]
    (out_dir / paths.REPORT).write_text("\n".join(lines) + "\n")
