"""One Prefect flow per stage. Each is a thin adapter around ``runner.execute``:
the stage's pure core, quality gate, manifest and MLflow run live in the library.
DVC calls them through ``crawl2chat stage NAME``, which runs :func:`run_stage` from this
file of the project.

In: the stage name, and from the environment the pipeline run to report under
(:data:`PARENT_ENV`, set by the pipeline flow for the ``dvc repro`` it starts). Out: the
stage's metrics; in Prefect, a flow run that is a child of the pipeline's run, with the
stage's ``report.md`` and metrics as artifacts. A failure that is not a
``Crawl2chatError`` (a network source timing out) is retried ``deploy.retries.NAME``
times; a failed quality gate, bad config or bad input never is: retrying cannot help.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from prefect import Flow, Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.states import Pending, Running, State

from crawl2chat import paths
from crawl2chat.artifacts import publish_artifacts
from crawl2chat.errors import Crawl2chatError
from crawl2chat.runner import execute

# the pipeline's flow-run id, handed through `dvc repro` to each stage process
PARENT_ENV = "CRAWL2CHAT_PARENT_FLOW_RUN"


def _transient(_task: Any, _run: Any, state: Any) -> bool:
    """Retry only what may pass on a second try: not a Crawl2chatError (gate, config, input)."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, Exception) and not isinstance(error, Crawl2chatError)


def _retries(stage: str) -> tuple[int, float]:
    """``deploy.retries[stage]`` and ``deploy.retry_delay_s`` from the project's params."""
    # deploy.py is a file beside this one (flows/ is a folder of the project, not a package)
    spec = importlib.util.spec_from_file_location("crawl2chat_deploy",
                                                  Path(__file__).with_name("deploy.py"))
    assert spec and spec.loader
    deploy = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = deploy  # its dataclass looks its module up there
    spec.loader.exec_module(deploy)
    cfg = deploy.load_cfg(paths.project_root())
    return cfg.retries.get(stage, 0), cfg.retry_delay_s


def _stage_flow(stage: str) -> Flow[[], dict[str, float]]:
    @task(name=f"{stage}-execute", cache_policy=NO_CACHE, retry_condition_fn=_transient)
    def attempt() -> dict[str, float]:
        return execute(stage)

    @flow(name=stage, description=f"crawl2chat stage '{stage}'", log_prints=True,
          validate_parameters=False)
    def stage_flow() -> dict[str, float]:
        retries, delay = _retries(stage)
        metrics = attempt.with_options(retries=retries, retry_delay_seconds=delay)()
        publish_artifacts(stage)
        return metrics

    return stage_flow


# one module-level flow per stage, named after it
crawl, text, tokens, base, sft = (_stage_flow(name) for name in paths.STAGES)
FLOWS: dict[str, Flow[[], dict[str, float]]] = dict(
    zip(paths.STAGES, (crawl, text, tokens, base, sft), strict=True))


def run_stage(stage: str) -> dict[str, float]:
    """Run ``stage``'s flow: as a child of the pipeline run named by ``$PARENT_ENV``, or
    as a run of its own when there is none (``crawl2chat stage NAME`` by hand)."""
    stage_flow = FLOWS[stage]
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return stage_flow()
    return _as_child(stage_flow, uuid.UUID(parent))


def _as_child(stage_flow: Flow[[], dict[str, float]], parent: uuid.UUID) -> dict[str, float]:
    """What Prefect does for a subflow called in-process, across the process boundary:
    a task run in the parent stands for the stage, and the stage's flow run hangs off it,
    so the UI draws the stage inside the pipeline run."""
    tracker = Task(name=stage_flow.name, fn=stage_flow.fn)
    with get_client(sync_client=True) as client:
        task_run = client.create_task_run(
            task=tracker, flow_run_id=parent, name=stage_flow.name,
            dynamic_key=f"{stage_flow.name}-{uuid.uuid4().hex}", state=Running())
        child = client.create_flow_run(flow=stage_flow, parameters={}, state=Pending(),
                                       parent_task_run_id=task_run.id, tags=["crawl2chat"])
    state = run_flow(stage_flow, flow_run=child, return_type="state")
    with get_client(sync_client=True) as client:
        # the stand-in ends as the stage did; the result stays with the child run
        client.set_task_run_state(task_run.id, State(type=state.type, message=state.message),
                                  force=True)
    return state.result()  # raises the stage's error when it failed
