"""The whole pipeline as one Prefect flow: ``dvc repro`` rebuilds exactly the stale stages.

DVC decides what is stale (code, data or params changed since ``dvc.lock``); each stage
it runs is itself a Prefect flow (``crawl2chat stage NAME``), reported to the same API.
One MLflow run (``pipeline``, tagged with this flow run's id) is the parent of the stage
runs of this pipeline run. After a successful run the outputs are pushed to the DVC
remote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, task
from prefect.client.orchestration import get_client

from crawl2chat.lineage import pipeline_run
from crawl2chat.paths import project_root


def _dvc() -> str:
    dvc = Path(sys.executable).with_name("dvc")
    return str(dvc if dvc.exists() else "dvc")


@task(name="dvc-repro")
def dvc_repro(root: str, force: bool = False) -> None:
    command = [_dvc(), "repro", *(["--force"] if force else [])]
    env = dict(os.environ)
    # DVC runs `crawl2chat stage NAME` through a shell: it must find this environment's bin/
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # stage flows started by DVC report to this flow's API instead of starting their own
    with get_client(sync_client=True) as client:
        env.setdefault("PREFECT_API_URL", str(client.api_url))
    subprocess.run(command, cwd=root, env=env, check=True)


@task(name="dvc-push")
def dvc_push(root: str) -> None:
    """Send the stage outputs to the default DVC remote (.dvc/config): a fresh clone then
    `dvc pull`s them instead of retraining."""
    subprocess.run([_dvc(), "push"], cwd=root, check=True)


@flow(name="pipeline", description="crawl -> text -> tokens -> base -> sft via dvc repro")
def pipeline(force: bool = False, root: str | None = None) -> None:
    folder = root or str(project_root())
    with pipeline_run(Path(folder)):
        dvc_repro(folder, force=force)
        dvc_push(folder)  # only after every stage succeeded


if __name__ == "__main__":
    pipeline()
