"""``dvc repro`` in a temp git repo, its crawl stage's process killed by SIGKILL at a seeded
point, then ``dvc repro`` again: DVC cached and locked nothing of the killed attempt; the
second run's output equals an uninterrupted run's, ``dvc.lock`` records it and the cache
holds exactly its files; the killed attempt's temporary folder, processes and MLflow run
are cleaned up."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from stagekill import SLOW_START, descendants, kill_when, leftovers, status, still_running

from crawl2chat import config, paths
from crawl2chat.runner import execute

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGE = "crawl"
# 60 pages of one bundled WARC file, in two shards: a few seconds of work to interrupt
CRAWL = ("experiment=smoke",)


def _project(root: Path) -> Path:
    """The crawl stage as dvc.yaml defines it, with the deps it names that exist here."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][STAGE]
    root.mkdir(parents=True)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {STAGE: stage}}, sort_keys=False))
    for dep in stage["deps"]:
        if (REPO / dep).exists() and dep != "data/demo/web":
            (root / dep).parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if (REPO / dep).is_dir() else shutil.copy
            copy(REPO / dep, root / dep)
    (root / "data/demo/web").mkdir(parents=True)
    warc = sorted((REPO / "data/demo/web").glob("*.warc.gz"))[0]
    shutil.copy(warc, root / "data/demo/web" / warc.name)
    shutil.copytree(REPO / "flows", root / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf", root / "conf")
    tree = config.compose(REPO, list(CRAWL))
    (root / paths.PARAMS_FILE).write_text(
        yaml.safe_dump({STAGE: tree[STAGE], "deploy": tree["deploy"]}, sort_keys=False))
    return root


def _dvc(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)


def _stage_pid(dvc_pid: int) -> int | None:
    """The ``crawl2chat stage crawl`` process under ``dvc repro``, once it is there."""
    for pid in descendants(dvc_pid):
        try:
            if b"stage\0" + STAGE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def _cache(root: Path) -> set[str]:
    """The objects in the project's DVC cache, as ``md5`` (``.dir`` for a folder)."""
    files = root / ".dvc/cache/files/md5"
    return {f.parent.name + f.name for f in files.rglob("*") if f.is_file()}


def _data(folder: Path) -> dict[str, bytes]:
    """Every output file but those that name the run (manifest, report, gate results)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (paths.MANIFEST, paths.REPORT)
            and p.relative_to(folder).parts[0] != "quality"}


@pytest.mark.slow
def test_dvc_repro_after_a_killed_stage_caches_only_the_complete_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    reference = _project(tmp_path / "reference")
    execute(STAGE, reference)
    expected = _data(paths.stage_output(STAGE, reference))

    root = _project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CRAWL2CHAT_"))}
    env.update(SLOW_START, PATH=f"{BIN}{os.pathsep}{env['PATH']}",
               PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]),
               PREFECT_HOME=str(tmp_path / "prefect"))  # MLflow: the tests' own store
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    assert _dvc(root, env, "init", "-q").returncode == 0

    out = paths.stage_output(STAGE, root)
    rng = random.Random(0)
    log = (tmp_path / "repro.log").open("wb")  # a pipe: the orphans would hold it open
    repro = subprocess.Popen([str(BIN / "dvc"), "repro"], cwd=root, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    killed, started = kill_when(
        repro, lambda: any(out.parent.glob(f"{out.name}.tmp-*/crawl-*.warc.gz")),
        rng.uniform(0.0, 0.5), pid=lambda: _stage_pid(repro.pid))
    repro.wait(timeout=300)
    log.close()
    said = (tmp_path / "repro.log").read_text()
    # DVC saw it fail: "-9" when the shell exec'd the stage, "137" (128 + SIGKILL) when the
    # shell stayed its parent (which one depends on the machine's /bin/sh) ...
    assert repro.returncode != 0 and re.search(r"exited with (-9|137)\b", said), said
    assert _cache(root) == set() and not (root / "dvc.lock").exists()  # ... and kept nothing
    assert not out.exists()
    assert started  # Prefect's temporary API server at least, which outlives the kill

    again = _dvc(root, env, "repro")
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    assert _data(out) == expected
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"][STAGE]
    (locked,) = [o for o in lock["outs"] if o["path"] == paths.STAGE_OUTPUTS[STAGE]]
    cached_dir = root / ".dvc/cache/files/md5" / locked["md5"][:2] / locked["md5"][2:]
    listing = json.loads(cached_dir.read_text())
    assert {e["relpath"] for e in listing} == {p.relative_to(out).as_posix()
                                             for p in out.rglob("*") if p.is_file()}
    for entry in listing:  # what DVC recorded is what the finished run wrote
        digest = hashlib.md5((out / entry["relpath"]).read_bytes()).hexdigest()
        assert entry["md5"] == digest, entry["relpath"]
    # the cache holds what dvc.lock records (the metrics file too: DVC's run cache keeps
    # it), and nothing else
    assert _cache(root) == {o["md5"] for o in lock["outs"]} | {e["md5"] for e in listing}
    assert "up to date" in _dvc(root, env, "status").stdout.lower()
    assert leftovers(root) == []
    assert still_running(started) == set()
    assert status(killed) == "FAILED"
