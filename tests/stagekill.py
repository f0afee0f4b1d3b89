"""Helpers of the SIGKILL tests: start a stage in a child process, kill it once it has
made real progress, and see what it left behind (MLflow run, temporary folders, the
processes it started).

In: a stage name and project root (the child runs ``runner.execute``), or any process id.
Out: the killed attempt's MLflow run id; its living descendants; leftover folder names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

from crawl2chat import lineage
from crawl2chat.orphans import PID_TAG

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import os, signal, sys
from pathlib import Path
stage, root, kill_in_write = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1"
if kill_in_write:  # the process dies half-way through writing its second checkpoint
    from fsspec.implementations import local
    seen = []
    def dying_write(self, data):
        if str(self.path).endswith("last.ckpt"):
            seen.append(1)
            if len(seen) == 2:
                self.f.write(data[:len(data) // 2])
                self.f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return self.f.write(data)
    local.LocalFileOpener.write = dying_write
from crawl2chat.runner import execute
execute(stage, root)
"""
# under load Prefect's temporary API server may take long to come up: not a failure here
SLOW_START = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600"}


def start(stage: str, root: Path, kill_in_write: bool = False) -> subprocess.Popen[bytes]:
    """``execute(stage, root)`` in a child process (its stderr kept for a failure message)."""
    env = {**os.environ, **SLOW_START,
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    return subprocess.Popen([sys.executable, "-c", CHILD, stage, str(root),
                             "1" if kill_in_write else "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_of(pid: int, client: MlflowClient | None = None) -> str | None:
    """The MLflow run the stage process ``pid`` tagged as its own, if there is one yet."""
    client = client or MlflowClient()
    experiment = client.get_experiment_by_name(lineage.EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.`{PID_TAG}` = '{pid}'")
    return runs[0].info.run_id if runs else None


def _parents() -> dict[int, int]:
    """pid -> parent pid of every living (not zombie) process, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z":
            found[int(stat.parent.name)] = int(fields[1])
    return found


def descendants(pid: int) -> set[int]:
    """The living processes ``pid`` started, and theirs."""
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def still_running(pids: set[int], wait_s: float = 10.0) -> set[int]:
    """Those of ``pids`` still alive after up to ``wait_s`` (a SIGKILL takes a moment)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = pids & set(_parents())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], delay_s: float,
              pid: Callable[[], int | None] | None = None, timeout_s: float = 600
              ) -> tuple[str, set[int]]:
    """SIGKILL the stage process ``delay_s`` after ``ready()`` holds and its MLflow run
    exists; return the run's id and the processes the stage had started. ``pid`` finds
    the stage process when ``proc`` is not it (``dvc repro`` runs it as a child).
    ``ready`` is a sign of progress the stage leaves on disk, not a time: under load a
    stage may take minutes to get going, and a fixed wait would kill it too early."""
    deadline = time.monotonic() + timeout_s
    stage_pid = None
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "the stage made no progress"
        stage_pid = pid() if pid else proc.pid
        if stage_pid is not None and ready() and run_of(stage_pid) is not None:
            break
        time.sleep(0.05)
    time.sleep(delay_s)
    started = descendants(stage_pid)
    os.kill(stage_pid, signal.SIGKILL)
    if pid is None:
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the stage ended before it was killed"
    run_id = run_of(stage_pid)
    assert run_id is not None
    return run_id, started


def leftovers(root: Path) -> list[str]:
    """Temporary and old-output folders of killed runs anywhere under ``root``."""
    return sorted(p.name for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name)


def status(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.status
