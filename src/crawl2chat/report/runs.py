"""Which MLflow runs make up one pipeline run.

In: a pipeline run id (or none: the latest) and the MLflow store. Out: the run of each
stage. The pipeline tags every stage run it starts with :data:`PIPELINE_RUN_TAG`; a stage
that was up to date in that pipeline run did not run, so its run is the one the current
output's ``manifest.json`` names (what DVC has in the workspace).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat import lineage, paths
from crawl2chat.errors import InputError, StageError

PIPELINE_RUN_TAG = "crawl2chat.pipeline_run_id"  # value: the pipeline run's id


@dataclass
class StageRecord:
    """One stage's MLflow run as the report reads it."""

    stage: str
    run_id: str
    status: str
    start_ms: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    rebuilt: bool  # ran in this pipeline run (else: reused from an earlier one)
    histories: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def _client() -> Any:
    import mlflow

    return mlflow.MlflowClient()


def _experiments(client: Any) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def latest_pipeline_run(client: Any | None = None) -> str:
    """The id of the most recent pipeline run that has at least one stage run."""
    client = client or _client()
    runs = client.search_runs(_experiments(client),
                              filter_string=f"tags.`{PIPELINE_RUN_TAG}` LIKE '%'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise InputError(f"the MLflow store has no stage run tagged {PIPELINE_RUN_TAG}: "
                         "run the pipeline first (`crawl2chat run`)")
    return str(runs[0].data.tags[PIPELINE_RUN_TAG])


def stage_runs(pipeline_run: str, root: Path, client: Any | None = None) -> dict[str, StageRecord]:
    """Each stage's run in ``pipeline_run``: the tagged one, else the current output's."""
    client = client or _client()
    tagged = client.search_runs(
        _experiments(client), filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run}'",
        order_by=["attributes.start_time DESC"])
    if not tagged:
        raise InputError(f"no MLflow run is tagged {PIPELINE_RUN_TAG}={pipeline_run!r}")
    found: dict[str, Any] = {}
    for run in tagged:  # newest first: a retried stage counts once, its last attempt
        found.setdefault(run.data.tags.get("stage", run.info.run_name), run)
    records = {}
    for stage in paths.STAGES:
        run, rebuilt = found.get(stage), True
        if run is None:
            run_id = _manifest_run(stage, root)
            if not run_id:
                continue
            run, rebuilt = client.get_run(run_id), False
        records[stage] = StageRecord(
            stage=stage, run_id=run.info.run_id, status=run.info.status,
            start_ms=run.info.start_time, params=dict(run.data.params),
            metrics=dict(run.data.metrics), tags=dict(run.data.tags), rebuilt=rebuilt,
            histories=_histories(client, run))
    return records


def _manifest_run(stage: str, root: Path) -> str:
    try:
        return str(lineage.read_manifest(paths.stage_output(stage, root)).get("mlflow_run_id", ""))
    except StageError:  # no output yet: the stage has nothing to show
        return ""


# curves the report draws: base and SFT training, per step
CURVES = ("train/loss", "val/loss", "tokens_per_s", "mfu")


def _histories(client: Any, run: Any) -> dict[str, list[tuple[int, float]]]:
    curves = {}
    for key in CURVES:
        if key in run.data.metrics:
            points = client.get_metric_history(run.info.run_id, key)
            curves[key] = sorted((m.step, m.value) for m in points)
    return curves
