"""The report card of one pipeline run: one self-contained HTML page and its Markdown.

In: a pipeline run id (default: the latest) and the project root; the MLflow store and
the stage outputs DVC holds. Out: ``reports/<run>.html`` and ``reports/<run>.md``.
"""

from __future__ import annotations

from pathlib import Path

from crawl2chat import paths
from crawl2chat.report.collect import collect
from crawl2chat.report.plots import charts
from crawl2chat.report.render import to_html, to_markdown
from crawl2chat.report.runs import PIPELINE_RUN_TAG, latest_pipeline_run, stage_runs

__all__ = ["PIPELINE_RUN_TAG", "write_report"]
REPORTS_DIR = "reports"


def write_report(run: str | None = None, out: Path | None = None,
                 root: Path | None = None) -> tuple[Path, Path]:
    """Write the HTML page and the Markdown of pipeline run ``run``; return both paths."""
    root = (root or paths.project_root()).resolve()
    run = run or latest_pipeline_run()
    card = collect(run, stage_runs(run, root), root)
    drawn = charts(card)
    html_file = out or root / REPORTS_DIR / f"{run}.html"
    html_file.parent.mkdir(parents=True, exist_ok=True)
    html_file.write_text(to_html(card, drawn))
    md_file = html_file.with_suffix(".md")
    md_file.write_text(to_markdown(card, drawn))
    return html_file, md_file
