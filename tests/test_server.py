"""Scheduled operation on a real Prefect server: ``flows/server.py start`` (what `make
server` runs) brings up a server on loopback and the serving process; a run triggered
through the REST API executes ``dvc repro`` in a two-stage project (crawl -> text);
stage flow runs hang off the pipeline run and carry their artifacts and logs.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from crawl2chat import config

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ("crawl", "text")
DEPLOY = {"name": "c2c-test", "cron": "30 4 * * *", "timezone": "Europe/Berlin",
          "retries": {"crawl": 1}, "retry_delay_s": 1}
pytestmark = pytest.mark.slow


def _project(root: Path) -> None:
    """crawl -> text on 5 records of one bundled WARC file, as dvc.yaml defines them."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    stages = {name: stages[name] for name in STAGES}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    for name in STAGES:
        for dep in stages[name]["deps"]:
            if not (root / dep).exists() and (REPO / dep).exists() and dep != "data/demo/web":
                copy = shutil.copytree if (REPO / dep).is_dir() else shutil.copy
                (root / dep).parent.mkdir(parents=True, exist_ok=True)
                copy(REPO / dep, root / dep)
    (root / "data/demo/web").mkdir(parents=True)
    warc = sorted((REPO / "data/demo/web").glob("*.warc.gz"))[0]
    shutil.copy(warc, root / "data/demo/web" / warc.name)
    shutil.copytree(REPO / "flows", root / "flows",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf", root / "conf")
    tree = config.compose(REPO, ["experiment=smoke", "crawl.max_records=5",
                                 "text.runner.kind=threads", "text.runner.workers=1"])
    params = {name: tree[name] for name in STAGES} | {"deploy": DEPLOY}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _run(args: list[str], root: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args} failed:\n{(done.stdout + done.stderr)[-5000:]}"
    return done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("served")
    _project(root)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_", "CRAWL2CHAT_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", PREFECT_HOME=str(root / ".prefect"),
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
               # the scheduler creates the upcoming runs within a second or two
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1")
    _run([str(BIN / "dvc"), "init", "--no-scm", "-q"], root, env)
    run_dir = root / "run"
    server = [sys.executable, "flows/server.py"]
    # the server comes up while the project is built once, outside it
    starting = subprocess.Popen([*server, "start", "--port", str(_free_port()),
                                 "--run-dir", str(run_dir)], cwd=root, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # its stages run on an ephemeral API: a database of its own, not the server's
        _run([str(BIN / "dvc"), "repro"], root, env | {"PREFECT_HOME": str(root / ".build")})
        output, _ = starting.communicate(timeout=600)
        assert starting.returncode == 0, output
        api = (run_dir / "api_url").read_text().strip()
        with httpx.Client(base_url=api, timeout=30) as client:
            yield {"root": root, "api": api, "client": client, "run_dir": run_dir}
    finally:
        if starting.poll() is None:  # the build failed first: stop the starting, then stop
            starting.kill()
            starting.wait()
        pids = [int(f.read_text()) for f in run_dir.glob("*.pid")]
        _run([*server, "stop", "--run-dir", str(run_dir)], root, env)
    assert len(pids) == 2 and not list(run_dir.glob("*.pid"))
    for pid in pids:  # each process group is gone
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def _deployment(client: httpx.Client) -> dict[str, Any]:
    reply = client.get(f"/deployments/name/pipeline/{DEPLOY['name']}")
    reply.raise_for_status()
    return dict(reply.json())


def _trigger_and_wait(client: httpx.Client, timeout_s: float = 240) -> tuple[dict, float]:
    deployment = _deployment(client)
    started = time.monotonic()
    run = client.post(f"/deployments/{deployment['id']}/create_flow_run", json={}).json()
    while time.monotonic() - started < timeout_s:
        run = client.get(f"/flow_runs/{run['id']}").json()
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run, time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"run {run['id']} still {run['state']['type']} after {timeout_s} s")


def _said(client: httpx.Client, run_id: str, wanted: str, timeout_s: float = 30) -> list[str]:
    """The log messages of ``run_id`` once one contains ``wanted`` (a run's last lines
    reach the API after its final state)."""
    deadline = time.monotonic() + timeout_s
    while True:
        messages = [line["message"] for line in client.post("/logs/filter", json={
            "logs": {"flow_run_id": {"any_": [run_id]}}}).json()]
        if any(wanted in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def _children(client: httpx.Client, run_id: str) -> dict[str, dict]:
    """The stage flow runs attached to ``run_id``, by flow name."""
    task_runs = client.post("/task_runs/filter",
                            json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
    ids = [t["id"] for t in task_runs]
    if not ids:
        return {}
    runs = client.post("/flow_runs/filter",
                       json={"flow_runs": {"parent_task_run_id": {"any_": ids}}}).json()
    return {client.get(f"/flows/{r['flow_id']}").json()["name"]: r for r in runs}


def test_a_stale_free_run_completes_in_seconds_and_runs_no_stage(
        served: dict[str, Any]) -> None:
    run, took = _trigger_and_wait(served["client"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert _children(served["client"], run["id"]) == {}
    assert took < 60, f"a run with nothing stale took {took:.0f} s"
    said = _said(served["client"], run["id"], "Data and pipelines are up to date")
    assert any("Data and pipelines are up to date" in line for line in said), said


def test_one_stale_stage_rebuilds_alone_as_a_child_run_with_artifacts_and_logs(
        served: dict[str, Any]) -> None:
    client, root = served["client"], served["root"]
    code = root / "src/crawl2chat/stages/text.py"  # a dependency of text only
    code.write_text(code.read_text() + "\n# changed\n")
    run, _ = _trigger_and_wait(client)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    children = _children(client, run["id"])
    assert list(children) == ["text"]
    child = children["text"]
    assert child["state"]["type"] == "COMPLETED"
    artifacts = client.post("/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [child["id"]]}}}).json()
    kinds = {a["key"]: a["type"] for a in artifacts}
    assert kinds == {"text-report": "markdown", "text-metrics": "table"}
    report = next(a for a in artifacts if a["key"] == "text-report")
    written = (root / "data/text/report.md").read_text()
    assert "![funnel](funnel.png)" in written  # the image goes inline into the artifact
    expected = written
    for image in re.findall(r"\]\(([\w.-]+\.png)\)", written):  # funnel.png, mix.png
        expected = expected.replace(f"({image})", "(data:image/png;base64," + base64.b64encode(
            (root / "data/text" / image).read_bytes()).decode() + ")")
    assert report["data"] == expected
    said = _said(client, child["id"], "quality gate text")
    assert any("quality gate text" in line for line in said), said
    said = _said(client, run["id"], "Running stage")
    assert [line for line in said if line.startswith("Running stage")] == [
        "Running stage 'text':"], said


def test_the_ui_talks_to_this_server(served: dict[str, Any]) -> None:
    base = served["api"].removesuffix("/api")
    assert httpx.get(f"{base}/ui-settings").json()["api_url"] == served["api"]
    page = httpx.get(f"{base}/", headers={"Accept": "text/html"}, follow_redirects=True)
    assert "<html" in page.text.lower()


def test_the_schedule_comes_from_conf_deploy_with_its_next_run_time(
        served: dict[str, Any]) -> None:
    client = served["client"]
    deployment = _deployment(client)
    [schedule] = deployment["schedules"]
    assert schedule["schedule"]["cron"] == DEPLOY["cron"]
    assert schedule["schedule"]["timezone"] == DEPLOY["timezone"]
    zone = ZoneInfo(DEPLOY["timezone"])
    now = datetime.now(zone)
    expected = now.replace(hour=4, minute=30, second=0, microsecond=0)
    if expected <= now:
        expected = (expected + timedelta(days=1)).replace(hour=4, minute=30)
    deadline = time.monotonic() + 30
    while True:
        scheduled = client.post("/flow_runs/filter", json={
            "deployments": {"id": {"any_": [deployment["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            "sort": "EXPECTED_START_TIME_ASC", "limit": 1}).json()
        if scheduled or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert scheduled, "the server scheduled no run"
    first = datetime.fromisoformat(scheduled[0]["expected_start_time"])
    assert first == expected, (first, expected)
