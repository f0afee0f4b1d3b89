"""A finished stage in the Prefect UI.

In: a stage name and the project root. Out: on the current Prefect flow run, the stage's
``report.md`` as a markdown artifact (its images inlined) and its DVC metrics as a table
artifact, keyed ``NAME-report`` and ``NAME-metrics``.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from crawl2chat import paths


def publish_artifacts(stage: str, root: Path | None = None) -> None:
    """The stage's ``report.md`` as a Prefect markdown artifact and its DVC metrics as a
    table artifact, on the current flow run (Prefect shows them in the run's Artifacts)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    root = (root or paths.project_root()).resolve()
    report = paths.stage_output(stage, root) / paths.REPORT
    if report.is_file():
        create_markdown_artifact(inline_images(report.read_text(), report.parent),
                                 key=f"{stage}-report", description=f"report.md of stage {stage}")
    metrics_file = paths.metrics_file(stage, root)
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        create_table_artifact([{"metric": k, "value": v} for k, v in sorted(metrics.items())],
                              key=f"{stage}-metrics", description=f"metrics of stage {stage}")


_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s:]+\.png)\)")


def inline_images(markdown: str, folder: Path) -> str:
    """``markdown`` with its PNG images of ``folder`` as data URIs: an artifact has no folder
    beside it, so a relative image would not load."""
    def embed(found: re.Match[str]) -> str:
        file = folder / found[2]
        if not file.is_file():
            return found[0]
        data = base64.b64encode(file.read_bytes()).decode()
        return f"![{found[1]}](data:image/png;base64,{data})"

    return _IMAGE.sub(embed, markdown)
