"""The quality gate's results are kept: JSON and Data Docs HTML in the stage output and
in its MLflow run, passed or failed; ``$CRAWL2CHAT_KEEP_FAILED`` keeps a failed folder."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from conftest import crawl_project

from crawl2chat import paths
from crawl2chat.errors import GateFailed
from crawl2chat.quality import crawl as crawl_suite
from crawl2chat.runner import KEEP_FAILED_ENV, execute

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose crawl stage reads 5 records of one bundled WARC file."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "CRAWL2CHAT_ROOT", KEEP_FAILED_ENV):
        monkeypatch.delenv(name, raising=False)
    return crawl_project(tmp_path)


def _artifacts(run_id: str) -> set[str]:
    client = mlflow.MlflowClient()
    return {a.path for a in client.list_artifacts(run_id, "quality")}


def _tighten_crawl_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real crawl suite plus one expectation no crawl can meet (at most 0 rows): the
    simplest way to make a real gate fail on a real output."""
    import great_expectations as gx

    strict = crawl_suite.tables

    def tables(out_dir: Path, cfg: object) -> list:
        found = strict(out_dir, cfg)
        found[0].expectations.append(gx.expectations.ExpectTableRowCountToBeBetween(
            max_value=0))
        return found

    monkeypatch.setattr(crawl_suite, "tables", tables)


def test_a_passed_gate_keeps_json_and_data_docs_in_the_output_and_mlflow(
        project: Path) -> None:
    execute("crawl", project)
    out = paths.stage_output("crawl", project)
    result = json.loads((out / "quality/index.json").read_text())
    assert result["success"] is True and len(result["results"]) > 5
    assert "<html" in (out / "quality/index.html").read_text().lower()
    run_id = json.loads((out / paths.MANIFEST).read_text())["mlflow_run_id"]
    assert {"quality/index.json", "quality/index.html", "quality/lookups.json"} <= _artifacts(
        run_id)


def test_a_failed_gate_logs_its_results_and_keep_failed_keeps_the_folder(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tighten_crawl_gate(monkeypatch)
    monkeypatch.setenv(KEEP_FAILED_ENV, "1")
    with pytest.raises(GateFailed, match="expect_table_row_count_to_be_between"):
        execute("crawl", project)
    out = paths.stage_output("crawl", project)
    assert not out.exists()
    kept = out.with_name("crawl.failed")
    result = json.loads((kept / "quality/index.json").read_text())
    assert result["success"] is False
    assert (kept / crawl_suite.INDEX).is_file()  # the output itself, for inspection
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list",
                               filter_string="tags.mlflow.runName = 'crawl'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    assert run.info.status == "FAILED"
    assert "quality/index.json" in _artifacts(run.info.run_id)


def test_without_keep_failed_a_failed_gate_leaves_no_folder(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tighten_crawl_gate(monkeypatch)
    with pytest.raises(GateFailed):
        execute("crawl", project)
    assert sorted(p.name for p in (project / "data").iterdir()) == []
