"""Where every artifact lives. The one owner of paths: dvc.yaml is checked against it."""

from __future__ import annotations

import os
from pathlib import Path

# stage name -> output folder, relative to the project root; the order is the pipeline's
STAGE_OUTPUTS: dict[str, str] = {
    "crawl": "data/crawl",
    "text": "data/text",
    "tokens": "data/tokens",
    "base": "models/base",
    "sft": "models/sft",
}
STAGES: tuple[str, ...] = tuple(STAGE_OUTPUTS)
DEMO_DATA = "data/demo"
PARAMS_FILE = "params.yaml"
OVERRIDES_FILE = "conf/overrides.yaml"
METRICS_DIR = "metrics"
MANIFEST = "manifest.json"
REPORT = "report.md"  # every stage output's human-readable report
# files one stage writes and the next reads
CRAWL_INDEX = "index.parquet"
FLOWS_DIR = "flows"  # the Prefect flows: files of the project, run from there


def project_root() -> Path:
    """The project root: $CRAWL2CHAT_ROOT (a user's override; the library never sets it),
    else the nearest folder above cwd with dvc.yaml and conf/."""
    env = os.environ.get("CRAWL2CHAT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "conf").is_dir():
            return folder
    return here


def stage_output(stage: str, root: Path | None = None) -> Path:
    return (root or project_root()) / STAGE_OUTPUTS[stage]


def stage_input(stage: str, root: Path | None = None) -> Path | None:
    """The predecessor's output folder, or None for the first stage."""
    index = STAGES.index(stage)
    return stage_output(STAGES[index - 1], root) if index else None


def metrics_file(stage: str, root: Path | None = None) -> Path:
    return (root or project_root()) / METRICS_DIR / f"{stage}.json"


def flow_file(name: str, root: Path | None = None) -> Path:
    return (root or project_root()) / FLOWS_DIR / f"{name}.py"
