"""MLflow runs whose process died: found by the pid and host they were tagged with.

In:  the MLflow experiment of the stage runs. Out: :func:`claim` tags the active run with
     this process's pid and host; :func:`fail_dead_runs` marks every run of this host still
     RUNNING whose process is gone (killed by SIGKILL, the OOM killer, a power cut: nothing
     in the process could end its run) as FAILED, with a tag saying why.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("crawl2chat")
PID_TAG = "crawl2chat.pid"
HOST_TAG = "crawl2chat.host"
REASON_TAG = "crawl2chat.failure"


def claim() -> None:
    """Tag the active MLflow run with the process that owns it."""
    import mlflow

    mlflow.set_tags({PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()})


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def fail_dead_runs(experiment: str) -> list[str]:
    """Mark this host's RUNNING runs of ``experiment`` whose process is gone as FAILED;
    return their ids. Runs of other hosts are left alone: their pids mean nothing here."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], filter_string=(
        f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'"))
    failed = []
    for run in runs:
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            client.set_tag(run.info.run_id, REASON_TAG, f"process {pid} ended without "
                           "closing its run (killed)")
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    if failed:
        log.warning("marked %d MLflow run(s) of killed processes as FAILED: %s", len(failed),
                    ", ".join(failed))
    return failed
