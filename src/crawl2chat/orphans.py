"""What a killed stage process leaves running: its MLflow run, and the processes it started.

In:  the MLflow experiment of the stage runs; this host's processes. Out: :func:`claim`
     tags the active run with this process's pid and host; :func:`fail_dead_runs` marks
     every run of this host still RUNNING whose process is gone (killed by SIGKILL, the OOM
     killer, a power cut: nothing in the process could end its run) as FAILED, with a tag
     saying why. :func:`own_children` marks, through the environment they inherit, the
     processes a stage starts (Prefect's temporary API server, process-pool and Dask
     workers); :func:`stop_orphans` ends those whose stage process is gone: a SIGKILL gives
     the stage no chance to stop them, and the API server would otherwise run for ever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("crawl2chat")
PID_TAG = "crawl2chat.pid"
HOST_TAG = "crawl2chat.host"
REASON_TAG = "crawl2chat.failure"
OWNER_ENV = "CRAWL2CHAT_OWNER_PID"  # the stage process that started this one (inherited)


def claim() -> None:
    """Tag the active MLflow run with the process that owns it."""
    import mlflow

    mlflow.set_tags({PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()})


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs: not gone, and not a zombie (dead, its exit status not
    yet collected: an init that never reaps keeps killed orphans so)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (not Linux), or gone meanwhile
        return True
    return state != "Z"


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


@contextlib.contextmanager
def own_children() -> Iterator[None]:
    """While inside, every process this one starts carries this process's pid in
    ``$CRAWL2CHAT_OWNER_PID``; afterwards the variable is as it was."""
    before = os.environ.get(OWNER_ENV)
    os.environ[OWNER_ENV] = str(os.getpid())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OWNER_ENV, None)
        else:
            os.environ[OWNER_ENV] = before


def _owner(pid_dir: Path) -> int | None:
    """The owner pid in a process's (initial) environment, if it carries one."""
    try:
        environ = (pid_dir / "environ").read_bytes()
    except OSError:  # gone meanwhile, or another user's
        return None
    key = OWNER_ENV.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(key) and entry[len(key):].isdigit():
            return int(entry[len(key):])
    return None


def stop_orphans() -> list[int]:
    """SIGKILL this host's processes whose owning stage process is gone; return their pids.
    Reads ``/proc`` (Linux); where there is none, nothing is found."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    spared = {os.getpid(), os.getppid()}
    stopped = []
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) in spared:
            continue
        owner = _owner(pid_dir)
        if owner is None or alive(owner):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid_dir.name), signal.SIGKILL)
            stopped.append(int(pid_dir.name))
    if stopped:
        log.warning("stopped %d process(es) left running by killed stage runs: %s",
                    len(stopped), ", ".join(map(str, sorted(stopped))))
    return stopped
