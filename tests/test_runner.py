"""The stage contract in ``runner.execute``: rank 0 owns the output, other ranks none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from crawl2chat import paths
from crawl2chat.stages.runner import execute

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder whose params run the crawl stage on one bundled WARC file."""
    # execute() points CRAWL2CHAT_ROOT at the project: restore it for the tests after
    monkeypatch.setenv("CRAWL2CHAT_ROOT", str(tmp_path))
    (tmp_path / "warc").mkdir()
    source = sorted((REPO / "data/demo/web").glob("*.warc.gz"))[0]
    shutil.copy(source, tmp_path / "warc" / source.name)
    params = {"crawl": {"sources": ["warc/*.warc.gz"], "max_records": 5}}
    (tmp_path / paths.PARAMS_FILE).write_text(yaml.safe_dump(params))
    return tmp_path


def _crawl_runs() -> int:
    return len(mlflow.search_runs(search_all_experiments=True,
                                  filter_string="tags.mlflow.runName = 'crawl'"))


def test_rank_zero_writes_output_manifest_metrics_and_one_mlflow_run(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    before = _crawl_runs()
    metrics = execute("crawl", project)
    out = paths.stage_output("crawl", project)
    assert json.loads((out / paths.MANIFEST).read_text())["stage"] == "crawl"
    assert json.loads(paths.metrics_file("crawl", project).read_text()) == metrics
    assert _crawl_runs() == before + 1


def test_a_rank_above_zero_runs_the_stage_but_owns_no_output(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    before = _crawl_runs()
    assert execute("crawl", project) == {}
    assert not paths.stage_output("crawl", project).exists()
    assert not paths.metrics_file("crawl", project).exists()
    assert _crawl_runs() == before
    data = project / "data"
    leftovers = [p.name for p in data.iterdir()] if data.exists() else []
    assert leftovers == [], f"scratch folders left behind: {leftovers}"
