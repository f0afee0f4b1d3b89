"""The base stage's resume checkpoints under the stage contract: they outlive a failed
quality gate (the rerun resumes instead of retraining) and go once the runner has the
output in place; their folder is named after what decides the weights only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from crawl2chat import config, paths
from crawl2chat.errors import GateFailed
from crawl2chat.runner import execute
from crawl2chat.stages import base

REPO = Path(__file__).resolve().parents[1]
TINY = ("experiment=smoke", "base.model.n_embd=32", "base.model.block_size=32",
        "base.train.warmup_steps=1", "base.train.max_steps=2", "base.train.eval_every=2",
        "base.train.log_every=1", "base.train.deterministic=true",
        "base.train.checkpoint_every=1", "base.train.progress_bar=false",
        "base.prompts=['A']", "base.sample_tokens=4", "base.eval.memorise_docs=0")


def _section(*overrides: str) -> dict:
    return config.compose(REPO, [*TINY, *overrides])["base"]


def _project(tmp_path: Path, tokens_folder: Path, section: dict, created: int) -> Path:
    tokens = paths.stage_output("tokens", tmp_path)
    shutil.copytree(tokens_folder, tokens, dirs_exist_ok=True)
    (tokens / paths.MANIFEST).write_text(json.dumps({"stage": "tokens",
                                                     "created_unix": created}))
    (tmp_path / paths.PARAMS_FILE).write_text(yaml.safe_dump({"base": section}))
    return tmp_path


def test_a_failed_gate_keeps_the_checkpoints_and_the_rerun_resumes(
        tokens_folder: Path, tmp_path: Path) -> None:
    # two steps cannot beat the unigram entropy: the gate fails after training
    project = _project(tmp_path, tokens_folder, _section("base.require_beats_unigram=true"), 1)
    with pytest.raises(GateFailed, match="unigram"):
        execute("base", project)
    [ckpt] = (project / "models").glob("base.tmp-ckpt-*")
    assert (ckpt / "last.ckpt").is_file()
    assert not paths.stage_output("base", project).exists()

    # the gate off, other samples, a new upstream manifest over the same tokens: same folder
    project = _project(tmp_path, tokens_folder, _section("base.sample_tokens=6"), 2)
    metrics = execute("base", project)
    assert metrics["resumed_from_step"] == 2 and metrics["steps"] == 2
    assert not ckpt.exists()  # removed once the output was renamed into place
    assert (paths.stage_output("base", project) / "model.safetensors").is_file()


def test_the_checkpoint_key_hashes_only_what_decides_the_weights(
        tokens_folder: Path, tmp_path: Path) -> None:
    def key(*overrides: str, folder: Path = tokens_folder) -> Path:
        cfg = config.build(base.Cfg, _section(*overrides), "base")
        return base.checkpoint_dir(cfg, folder, tmp_path / "out")

    same = key()
    for overrides in (("base.eval.scan_tokens=1000",), ("base.prompts=['B']",),
                      ("base.sampling.temperature=0.5",), ("base.require_beats_unigram=true",),
                      ("base.train.log_every=2",), ("base.train.progress_bar=true",)):
        assert key(*overrides) == same, overrides
    for overrides in (("base.train.lr=0.5",), ("base.model.dropout=0.2",),
                      ("base.train.seed=1",)):
        assert key(*overrides) != same, overrides

    copy = tmp_path / "tokens"
    shutil.copytree(tokens_folder, copy)
    (copy / paths.MANIFEST).write_text('{"created_unix": 1}')
    assert key(folder=copy) == same  # the upstream manifest is not the tokens
    (copy / "train.bin").write_bytes((copy / "train.bin").read_bytes()[:-2])
    assert key(folder=copy) != same
