"""The stage contract in ``runner.execute``: the stage bound to its project, rank 0 owns
the output, other ranks none, leftovers of killed runs swept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest
from conftest import DEMO_WARC, crawl_over_http, crawl_project

from crawl2chat import paths
from crawl2chat.runner import execute

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder (not the working directory) whose params run the crawl stage on
    one bundled WARC file, named relative to the project."""
    return crawl_project(tmp_path)


def _crawl_runs() -> int:
    return len(mlflow.search_runs(search_all_experiments=True,
                                  filter_string="tags.mlflow.runName = 'crawl'"))


def test_rank_zero_writes_output_manifest_metrics_and_one_mlflow_run(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "CRAWL2CHAT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    before = _crawl_runs()
    metrics = execute("crawl", project)
    out = paths.stage_output("crawl", project)
    manifest = json.loads((out / paths.MANIFEST).read_text())
    assert manifest["stage"] == "crawl"
    # the relative source was read from the project, and is named relative to it
    [warc] = (project / "warc").iterdir()
    assert list(manifest["inputs"]) == [f"warc/{warc.name}"]
    assert json.loads((out / "sources.json").read_text())[0]["source"] == f"warc/{warc.name}"
    assert "CRAWL2CHAT_ROOT" not in os.environ  # the stage was bound, not the process
    assert json.loads(paths.metrics_file("crawl", project).read_text()) == metrics
    assert _crawl_runs() == before + 1


def test_a_rank_above_zero_runs_the_stage_but_owns_no_output(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    before = _crawl_runs()
    assert execute("crawl", project) == {}
    assert not paths.stage_output("crawl", project).exists()
    assert not paths.metrics_file("crawl", project).exists()
    assert _crawl_runs() == before
    data = project / "data"
    leftovers = [p.name for p in data.iterdir()] if data.exists() else []
    assert leftovers == [], f"scratch folders left behind: {leftovers}"


def test_a_remote_warc_is_an_input_of_the_manifest_and_the_mlflow_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A WARC streamed over HTTP from a real local server: DVC cannot hash the URL, so
    the manifest and the MLflow run name it with the sha256 of the bytes read."""
    import hashlib

    from crawl2chat.audit.chain import from_folder
    from crawl2chat.audit.checks import verify

    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    project, url = crawl_over_http(tmp_path, lambda path: f"http://{path}")
    source = DEMO_WARC
    out = paths.stage_output("crawl", project)
    inputs = json.loads((out / paths.MANIFEST).read_text())["inputs"]
    # max_records stopped the stream early: the digest is of the bytes read (whole MiBs)
    [read] = json.loads((out / "sources.json").read_text())
    assert read["bytes"] == min(1 << 20, source.stat().st_size)
    assert inputs == {url: {"digest": hashlib.sha256(source.read_bytes()[:read["bytes"]])
                            .hexdigest(), "kind": "url"}}
    report = verify(from_folder(out, project), project)
    assert report.verified, report.breaks
    assert any(f"{url} is a URL" in note for note in report.notes)  # not re-fetched


def test_folders_left_by_a_killed_run_are_swept_at_the_next_start(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import subprocess
    import sys

    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    out = paths.stage_output("crawl", project)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a run that made its temporary folder, then was SIGKILLed mid-stage
    script = ("import os, sys, time; from pathlib import Path; "
              "Path(sys.argv[1] + f'.tmp-{os.getpid()}').mkdir(); "
              "Path(sys.argv[1] + f'.tmp-{os.getpid()}', 'half.parquet').write_bytes(b'x'); "
              "print('ready', flush=True); time.sleep(60)")
    killed = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE)
    assert killed.stdout is not None and killed.stdout.readline().strip() == b"ready"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    stale = out.with_name(f"{out.name}.tmp-{killed.pid}")
    assert stale.is_dir()
    # a run still going (this test's parent process) and a resumable checkpoint stay
    alive = out.with_name(f"{out.name}.tmp-{os.getppid()}")
    checkpoint = out.with_name(f"{out.name}.tmp-ckpt-0123abcd")
    alive.mkdir()
    checkpoint.mkdir()
    execute("crawl", project)
    assert not stale.exists()
    assert alive.is_dir() and checkpoint.is_dir()
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith("crawl")) == sorted(
        ["crawl", alive.name, checkpoint.name])
