"""The whole pipeline as one Prefect flow: ``dvc repro`` rebuilds exactly the stale stages.

DVC decides what is stale (code, data or params changed since ``dvc.lock``); each stage
it runs is itself a Prefect flow (``crawl2chat stage NAME``), reported to the same API as
a child of this flow's run: the API URL and this run's id travel down to the stage
processes in their environment. One MLflow run (``pipeline``, tagged with this flow run's
id) is the parent of the stage runs of this pipeline run. After a successful run the
outputs are pushed to the DVC remote.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

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
    context = FlowRunContext.get()
    if context and context.flow_run:  # the stages attach to this run (flows/stages.py)
        env["CRAWL2CHAT_PARENT_FLOW_RUN"] = str(context.flow_run.id)
    _run_logged(command, root, env)


# what DVC itself says (which stage runs or is skipped); the stages log to their own runs
_DVC_SAYS = re.compile(r"(Running stage|Stage '|Updating lock file|Data and pipelines|ERROR)")


def _run_logged(command: list[str], root: str, env: dict[str, str]) -> None:
    """Run ``command``, echoing its output; DVC's own lines also go to this run's log."""
    logger = get_run_logger()
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        if _DVC_SAYS.match(line):
            logger.info(line.rstrip())
    if process.wait():
        raise subprocess.CalledProcessError(process.returncode, command)


@task(name="dvc-push")
def dvc_push(root: str) -> None:
    """Send the stage outputs to the default DVC remote (.dvc/config): a fresh clone then
    `dvc pull`s them instead of retraining. A project with no default remote (a copy
    made without .dvc/config's remote) is told so, and the run still succeeds."""
    default = subprocess.run([_dvc(), "remote", "default"], cwd=root, capture_output=True,
                             text=True)
    if default.returncode != 0 or not default.stdout.strip():
        get_run_logger().warning("no default DVC remote in %s: outputs not pushed "
                                 "(`dvc remote add -d NAME URL` to set one)", root)
        return
    subprocess.run([_dvc(), "push"], cwd=root, check=True)


@flow(name="pipeline", description="crawl -> text -> tokens -> base -> sft via dvc repro")
def pipeline(force: bool = False, root: str | None = None) -> None:
    folder = root or str(project_root())
    with pipeline_run(Path(folder)):
        dvc_repro(folder, force=force)
        dvc_push(folder)  # only after every stage succeeded


if __name__ == "__main__":
    pipeline()
