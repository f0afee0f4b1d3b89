"""Stages (crawl, tokens, base) killed with SIGKILL at a random point (seeded), then run
again: the output equals an uninterrupted run's, nothing partial is left beside it, and the
killed attempt's MLflow run is marked FAILED. Base training killed after a checkpoint, and
in the middle of writing one, resumes to bit-identical weights."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import documents
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from crawl2chat import config, lineage, paths
from crawl2chat.orphans import PID_TAG
from crawl2chat.runner import execute
from crawl2chat.text.shards import DOCUMENTS, shard_name

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
from crawl2chat.text.shards import DOCUMENTS, shard_name
execute(stage, root)
"""
BASE = ("experiment=smoke", "base.model.n_embd=32", "base.model.block_size=32",
        "base.train.lr=0.01", "base.train.warmup_steps=2", "base.train.max_steps=12",
        "base.train.eval_every=6", "base.train.log_every=3", "base.train.deterministic=true",
        "base.train.checkpoint_every=4", "base.train.progress_bar=false",
        "base.prompts=['A']", "base.sample_tokens=4", "base.eval.memorise_docs=0",
        "base.model.dropout=0.1")


def _start(stage: str, root: Path, kill_in_write: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    return subprocess.Popen([sys.executable, "-c", CHILD, stage, str(root),
                             "1" if kill_in_write else "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _run_of(pid: int) -> str | None:
    client = MlflowClient()
    experiment = client.get_experiment_by_name(lineage.EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.`{PID_TAG}` = '{pid}'")
    return runs[0].info.run_id if runs else None


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], delay_s: float
               ) -> str:
    """SIGKILL ``proc`` ``delay_s`` after ``ready()`` holds (its MLflow run exists by
    then); return the run's id."""
    deadline = time.monotonic() + 180
    while not ready() or _run_of(proc.pid) is None:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "the stage never got going"
        time.sleep(0.05)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run_id = _run_of(proc.pid)
    assert run_id is not None
    return run_id


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name)


def _status(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.status


def _crawl_project(root: Path) -> Path:
    (root / "warc").mkdir(parents=True)
    for source in sorted((REPO / "data/demo/web").glob("*.warc.gz")):
        shutil.copy(source, root / "warc" / source.name)
    (root / paths.PARAMS_FILE).write_text(
        yaml.safe_dump({"crawl": {"sources": ["warc/*.warc.gz"]}}))
    return root


def _tokens_project(root: Path) -> Path:
    text = paths.stage_output("text", root)
    text.mkdir(parents=True)
    docs = documents(400)
    pd.DataFrame({"doc_id": [f"d{i}" for i in range(len(docs))], "text": docs}).to_parquet(
        text / shard_name(DOCUMENTS, 0), index=False)
    (text / paths.MANIFEST).write_text(json.dumps({"stage": "text", "created_unix": 0}))
    section = config.compose(REPO, ["experiment=smoke", "tokens.vocab_size=320"])["tokens"]
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump({"tokens": section}))
    return root


PROJECTS = {"crawl": _crawl_project, "tokens": _tokens_project}


def _data(folder: Path) -> dict[str, bytes]:
    """Every output file but the ones that name the run (manifest: its time and run id;
    the gate's results under ``quality/``: their validation time and id)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (paths.MANIFEST, paths.REPORT)
            and p.relative_to(folder).parts[0] != "quality"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    outputs = {}
    for stage, build in PROJECTS.items():
        root = build(tmp_path_factory.mktemp(f"whole-{stage}"))
        execute(stage, root)
        outputs[stage] = _data(paths.stage_output(stage, root))
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "seed"), [("crawl", 0), ("crawl", 1), ("tokens", 0),
                                             ("tokens", 1)])
def test_a_stage_killed_anywhere_reruns_to_the_same_output(
        stage: str, seed: int, uninterrupted: dict[str, dict[str, bytes]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    root = PROJECTS[stage](tmp_path)
    out = paths.stage_output(stage, root)
    proc = _start(stage, root)
    killed = _kill_when(proc, lambda: any(out.parent.glob(f"{out.name}.tmp-*")),
                        random.Random(seed).uniform(0.0, 1.5))
    assert not out.exists() or _data(out) == uninterrupted[stage]  # never a partial output
    assert _status(killed) == "RUNNING"  # nothing in the killed process could end it
    execute(stage, root)
    assert _data(out) == uninterrupted[stage]
    assert _leftovers(root) == []
    assert _status(killed) == "FAILED"


def _base_project(root: Path, tokens_folder: Path) -> Path:
    tokens = paths.stage_output("tokens", root)
    shutil.copytree(tokens_folder, tokens)
    (tokens / paths.MANIFEST).write_text(json.dumps({"stage": "tokens", "created_unix": 0}))
    section = config.compose(REPO, list(BASE))["base"]
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump({"base": section}))
    return root


@pytest.fixture(scope="module")
def uninterrupted_base(tokens_folder: Path, tmp_path_factory: pytest.TempPathFactory
                       ) -> dict[str, object]:
    root = _base_project(tmp_path_factory.mktemp("whole-base"), tokens_folder)
    execute("base", root)
    return load_file(str(paths.stage_output("base", root) / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "in_write"), [(0, False), (1, True)])
def test_base_killed_after_or_while_writing_a_checkpoint_resumes_bit_identically(
        seed: int, in_write: bool, uninterrupted_base: dict[str, object], tokens_folder: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    root = _base_project(tmp_path, tokens_folder)
    models = root / "models"
    proc = _start("base", root, kill_in_write=in_write)
    if in_write:  # it kills itself in the write; the run must have started first
        proc.wait(timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
        killed = _run_of(proc.pid)
    else:
        killed = _kill_when(proc, lambda: any(models.glob("base.tmp-ckpt-*/last.ckpt")),
                            random.Random(seed).uniform(0.0, 2.0))
    assert killed is not None and _status(killed) == "RUNNING"
    metrics = execute("base", root)
    assert metrics["resumed_from_step"] >= 4  # not a retrain from scratch
    if in_write:
        assert metrics["resumed_from_step"] == 4  # the half-written step-8 file never landed
    weights = load_file(str(paths.stage_output("base", root) / "model.safetensors"))
    assert weights.keys() == uninterrupted_base.keys()
    for name, tensor in weights.items():
        assert tensor.equal(uninterrupted_base[name]), name  # bit for bit
    assert _leftovers(root) == [] and not list(models.glob("base.tmp-ckpt-*"))
    assert _status(killed) == "FAILED"
