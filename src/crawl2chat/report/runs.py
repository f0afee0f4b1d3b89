"""Which MLflow runs make up one pipeline run.

In: a pipeline run id (or none: the latest) and the MLflow store. Out: the run of each
stage. A stage run belongs to pipeline run ID when it is tagged
``crawl2chat.pipeline_run_id=ID`` (:data:`PIPELINE_RUN_TAG`) or nested under the MLflow
run ID (the pipeline's parent run). A stage that was up to date in that pipeline run did
not run, so its run is the one the current output's ``manifest.json`` names (what DVC
has in the workspace).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat import lineage, paths
from crawl2chat.errors import InputError, StageError

PIPELINE_RUN_TAG = "crawl2chat.pipeline_run_id"  # value: the pipeline run's id
PARENT_RUN_TAG = "mlflow.parentRunId"  # a stage run nested under the pipeline's MLflow run


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

    return mlflow.MlflowClient(_store())


def _experiments(client: Any) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def _pipeline_of(run: Any) -> str:
    tags = run.data.tags
    return str(tags.get(PIPELINE_RUN_TAG) or tags.get(PARENT_RUN_TAG) or "")


def latest_pipeline_run(client: Any | None = None) -> str:
    """The id of the pipeline run of the newest stage run."""
    client = client or _client()
    runs = client.search_runs(_experiments(client), filter_string="tags.stage LIKE '%'",
                              order_by=["attributes.start_time DESC"], max_results=200)
    for run in runs:
        if _pipeline_of(run):
            return _pipeline_of(run)
    raise InputError(f"the MLflow store ({_store()}) has no stage run of a pipeline run "
                     f"(tag {PIPELINE_RUN_TAG}): run the pipeline first (`crawl2chat run`)")


def _store() -> str:
    """The store ``$MLFLOW_TRACKING_URI`` names: Lightning's MLflow logger sets MLflow's
    process-wide URI to the one of the last training run, which need not be this one."""
    import mlflow

    return os.environ.get("MLFLOW_TRACKING_URI") or str(mlflow.get_tracking_uri())


def stage_runs(pipeline_run: str, root: Path, client: Any | None = None) -> dict[str, StageRecord]:
    """Each stage's run in ``pipeline_run``: its own, else the current output's."""
    client = client or _client()
    ours = [run for tag in (PIPELINE_RUN_TAG, PARENT_RUN_TAG)
            for run in client.search_runs(
                _experiments(client), filter_string=f"tags.`{tag}` = '{pipeline_run}'",
                order_by=["attributes.start_time DESC"])]
    if not ours and not _is_run(client, pipeline_run):
        raise InputError(f"no MLflow run in {_store()} is pipeline run {pipeline_run!r} or "
                         f"tagged {PIPELINE_RUN_TAG}={pipeline_run!r}")
    ours.sort(key=lambda run: -run.info.start_time)
    found: dict[str, Any] = {}
    for run in ours:  # newest first: a retried stage counts once, its last attempt
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


def _is_run(client: Any, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        return False
    return True


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
