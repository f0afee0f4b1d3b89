"""MLflow lineage above the stage runs: one parent run per pipeline run with the stage runs
nested (a failed one keeps its error, the Prefect flow-run id is a tag), and the model
registry's versions and ``champion`` alias by the rule in config."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from crawl2chat import lineage, paths, registry
from crawl2chat.errors import ConfigError
from crawl2chat.runner import execute

REPO = Path(__file__).resolve().parents[1]


def _project(tmp_path: Path, corrupt: bool = False) -> Path:
    """A project crawling one small WARC; ``corrupt``: bytes that are no gzip at all."""
    (tmp_path / "warc").mkdir(parents=True)
    if corrupt:
        (tmp_path / "warc/bad.warc.gz").write_bytes(b"not a warc file\n" * 10)
    else:
        shutil.copy(REPO / "data/demo/web/demo-web-00003.warc.gz", tmp_path / "warc")
    (tmp_path / paths.PARAMS_FILE).write_text(
        yaml.safe_dump({"crawl": {"sources": ["warc/*.warc.gz"], "max_records": 3}}))
    return tmp_path


def test_stage_runs_nest_under_the_pipeline_run_and_a_failure_keeps_its_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow

    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    good = _project(tmp_path / "good")
    bad = _project(tmp_path / "bad", corrupt=True)

    @flow(name="pipeline-test")
    def run_both() -> tuple[str, str, str]:
        from prefect.runtime import flow_run

        with lineage.pipeline_run(good) as parent:
            execute("crawl", good)
            with pytest.raises(Exception) as raised:  # whatever the WARC reader raises
                execute("crawl", bad)
        return parent, str(flow_run.id), str(raised.value)

    parent_id, flow_run_id, error = run_both()
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["prefect.flow_run_id"] == flow_run_id
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    by_status = {run.info.status: run for run in children}
    assert sorted(by_status) == ["FAILED", "FINISHED"]
    failed = by_status["FAILED"]
    assert error and error in failed.data.tags["error"]
    assert failed.data.tags["prefect.flow_run_id"] == flow_run_id
    assert "Traceback" in mlflow.artifacts.load_text(
        f"runs:/{failed.info.run_id}/error.txt")
    assert lineage.PARENT_RUN_ENV not in __import__("os").environ


def test_each_run_is_a_version_and_champion_follows_the_rule(tmp_path: Path) -> None:
    hf = tmp_path / "model" / "hf"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text("{}")
    rule = registry.ChampionRule.from_params(
        {"registry": {"champion": {"base": {"metric": "val_loss", "mode": "min"}}}}, "base")
    assert rule == registry.ChampionRule("val_loss", "min")
    client = mlflow.MlflowClient()
    name = registry.model_name("base")
    versions = {}
    mlflow.set_experiment(lineage.EXPERIMENT)
    for loss in (3.0, 4.0, 2.0):
        with mlflow.start_run() as run:
            mlflow.log_metric("val_loss", loss)
            versions[loss] = registry.register("base", run.info.run_id, tmp_path / "model",
                                               {"val_loss": loss}, [], rule)
        champion = str(client.get_model_version_by_alias(name, registry.CHAMPION).version)
        # 3.0 is crowned (first), 4.0 is not better, 2.0 is
        assert champion == versions[3.0 if loss != 2.0 else 2.0]
    assert len(set(versions.values())) == 3
    logged = mlflow.artifacts.download_artifacts(f"models:/{name}/{versions[2.0]}",
                                                 dst_path=str(tmp_path / "dl"))
    assert (Path(logged) / "config.json").read_text() == "{}"
    with pytest.raises(ConfigError, match=r"registry\.champion\.base\.mode"):
        registry.ChampionRule.from_params(
            {"registry": {"champion": {"base": {"metric": "x", "mode": "best"}}}}, "base")
