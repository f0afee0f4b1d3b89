"""Stage ``base`` on the shared tiny tokens folder, its quality gate, and its presets."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import stage_cfg
from safetensors.torch import load_file, save_file

from crawl2chat import config
from crawl2chat.errors import ConfigError, GateFailed, InputError
from crawl2chat.model.checkpoint import load_model
from crawl2chat.model.gpt import GPT, GPTConfig, padded_vocab
from crawl2chat.model.lightning_trainer import grad_accum_for
from crawl2chat.quality import gate
from crawl2chat.stages import base
from crawl2chat.stages.base import Cfg, run, unigram_entropy
from crawl2chat.tokenizer.shards import open_split

REPO = Path(__file__).resolve().parents[1]
TINY = ("base.model.n_embd=32", "base.model.block_size=32", "base.train.lr=0.01",
        "base.train.min_lr=0.001", "base.train.warmup_steps=3", "base.train.max_steps=20",
        "base.train.eval_every=10", "base.train.log_every=5", "base.train.deterministic=true",
        "base.train.checkpoint_every=0", "base.train.progress_bar=false",
        "base.prompts=['The cat','A']", "base.sample_tokens=12")
"""The smoke run shrunk to the tiny run of these tests."""


def _cfg(*overrides: str) -> Cfg:
    return stage_cfg("base", *TINY, *overrides)


@pytest.fixture(scope="module")
def stage(tokens_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("base")
    return out, run(_cfg(), tokens_folder, out)


def test_metrics_name_the_work_and_the_baselines(stage: tuple[Path, dict],
                                                 tokens_folder: Path) -> None:
    out, m = stage
    assert m["records"] == 20 * 8 and m["tokens"] == 20 * 8 * 32 and m["steps"] == 20
    vocab = json.loads((tokens_folder / "meta.json").read_text())["vocab_size"]
    train = open_split(tokens_folder, "train")
    counts = np.bincount(train, minlength=vocab)
    p = counts[counts > 0] / counts.sum()
    assert m["unigram_entropy"] == pytest.approx(float(-(p * np.log(p)).sum()))
    assert m["uniform_loss"] == pytest.approx(math.log(vocab))
    # the templates are easy: even 20 steps beat the token frequencies
    assert m["val_loss"] < m["unigram_entropy"]
    model, _ = load_model(out)
    assert m["params"] == model.num_params()
    assert model.config.vocab_size == padded_vocab(vocab) == 320


def test_output_folder_is_a_loadable_model_with_report(stage: tuple[Path, dict]) -> None:
    out, m = stage
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors", "config.json", "tokenizer", "hf", "loss_curve.png",
        "train_log.jsonl", "train_samples.jsonl", "samples.json", "report.md"}
    samples = json.loads((out / "samples.json").read_text())
    assert [s["prompt"] for s in samples] == ["The cat", "A"]
    assert all(0 <= s["tokens"] <= 12 for s in samples)
    report = (out / "report.md").read_text()
    assert f"{m['val_loss']:.3f}" in report and f"{m['unigram_entropy']:.3f}" in report
    assert "**The cat**" + samples[0]["continuation"].split("\n")[0] in report
    assert "## Memorisation" in report and f"| {m['memorise_train_exact']:.3f} |" in report
    assert m["memorise_train_docs"] == 20 and m["memorise_val_docs"] == 5  # 40 docs, 1 in 8 val
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["crawl2chat"]["val_loss"] == m["val_loss"]


def test_a_killed_stage_resumes_from_its_checkpoint_and_keeps_it_until_committed(
        stage: tuple[Path, dict], tokens_folder: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, uninterrupted = stage
    cfg = _cfg()
    cfg.train.checkpoint_every = 5  # not part of the digest: same folder, same training
    checkpoints = base.checkpoint_dir(cfg, tokens_folder, tmp_path / "killed")
    assert checkpoints.parent == tmp_path and checkpoints.name.startswith("base.tmp-ckpt-")
    assert checkpoints == base.checkpoint_dir(_cfg(), tokens_folder, tmp_path / "rerun")
    assert checkpoints != base.checkpoint_dir(_cfg("base.model.dropout=0.1"), tokens_folder,
                                              tmp_path / "rerun")

    class Killed(Exception):
        """Stands in for the process dying: in the samples of step 10, after its checkpoint."""

    def killed(*args: object) -> list:
        raise Killed

    (tmp_path / "killed").mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(base, "sample", killed)
        with pytest.raises(Killed):
            run(cfg, tokens_folder, tmp_path / "killed")
    assert [p.name for p in checkpoints.iterdir()] == ["last.ckpt"]
    out = tmp_path / "rerun"
    out.mkdir()
    m = run(cfg, tokens_folder, out)
    assert m["resumed_from_step"] == 10 and m["steps"] == 20
    assert m["val_loss"] == uninterrupted["val_loss"]  # exactly where it would have been
    assert "resumed from the checkpoint of step 10" in (out / "report.md").read_text()
    assert checkpoints.exists()  # kept until the runner has the output in place
    base.committed(cfg, tokens_folder, out)
    assert not checkpoints.exists()


def test_gate_passes_on_good_output(stage: tuple[Path, dict]) -> None:
    out, _ = stage
    assert len(gate("base", out, _cfg("base.require_beats_unigram=true"))) > 20


def _nan_weight(folder: Path) -> None:
    state = load_file(str(folder / "model.safetensors"))
    state["transformer.h.0.mlp.c_fc.weight"][0, 0] = float("nan")
    save_file(state, str(folder / "model.safetensors"))


def _drop_tensor(folder: Path) -> None:
    state = load_file(str(folder / "model.safetensors"))
    del state["transformer.ln_f.bias"]
    save_file(state, str(folder / "model.safetensors"))


def _worse_than_unigram(folder: Path) -> None:
    data = json.loads((folder / "config.json").read_text())
    data["crawl2chat"]["val_loss"] = data["crawl2chat"]["unigram_entropy"] + 0.1
    (folder / "config.json").write_text(json.dumps(data))


def _infinite_loss(folder: Path) -> None:
    data = json.loads((folder / "config.json").read_text())
    data["crawl2chat"]["train_loss"] = float("inf")
    (folder / "config.json").write_text(json.dumps(data))


def _lose_a_sample(folder: Path) -> None:
    samples = json.loads((folder / "samples.json").read_text())
    (folder / "samples.json").write_text(json.dumps(samples[:1]))


@pytest.mark.parametrize(("damage", "overrides", "expected"), [
    (_nan_weight, (), "finite"),
    (_drop_tensor, (), "row_count"),
    (_worse_than_unigram, ("base.require_beats_unigram=true",), "unigram_entropy"),
    (_infinite_loss, (), "finite"),
    (_lose_a_sample, (), "samples"),
    (lambda folder: (folder / "loss_curve.png").unlink(), (), "bytes"),
    (lambda folder: None, ("base.model.n_layer=3",), "n_layer"),
])
def test_gate_fails_on_broken_output(stage: tuple[Path, dict], tmp_path: Path,
                                     damage, overrides: tuple[str, ...], expected: str) -> None:
    out, _ = stage
    broken = tmp_path / "base"
    shutil.copytree(out, broken)
    damage(broken)
    with pytest.raises(GateFailed, match=expected):
        gate("base", broken, _cfg(*overrides))


def test_bad_input_and_shape_name_the_problem(tokens_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"val\.bin.*base\.model\.block_size"):
        run(_cfg("base.model.block_size=4096"), tokens_folder, tmp_path)
    with pytest.raises(ConfigError, match=r"base\.model: n_embd \(32\).*n_head \(3\)"):
        run(_cfg("base.model.n_head=3"), tokens_folder, tmp_path)
    with pytest.raises(InputError, match=r"meta\.json"):
        run(_cfg(), tmp_path, tmp_path / "out")


def test_unigram_entropy_of_a_long_split_is_estimated_from_a_spread_sample() -> None:
    ids = np.tile(np.arange(4, dtype=np.uint16), 1 << 21)  # 8M ids, uniform over 4
    assert unigram_entropy(ids, 8) == pytest.approx(math.log(4))
    assert unigram_entropy(ids, 8, max_tokens=1 << 22) == pytest.approx(math.log(4))


@pytest.mark.parametrize("preset", ["demo", "smoke", "gpt2_124m"])
def test_every_preset_builds_a_cfg_and_model(preset: str, tmp_path: Path) -> None:
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    cfg = config.build(Cfg, config.compose(tmp_path, [f"experiment={preset}"])["base"], "base")
    vocab = {"demo": 4096, "smoke": 512, "gpt2_124m": 50257}[preset]
    with torch.device("meta"):  # shape only: no memory for GPT-2's 124M parameters
        model = GPT(GPTConfig(vocab_size=padded_vocab(vocab), **asdict(cfg.model)))
    if preset == "gpt2_124m":
        assert model.config.vocab_size == 50304
        assert model.num_params() == pytest.approx(124.4e6, rel=0.01)
        block = cfg.model.block_size
        accum = grad_accum_for(cfg.train, block, 1)
        assert cfg.train.batch_size * accum * block == 524288 == cfg.train.tokens_per_step
        assert cfg.train.checkpoint_every > 0 and cfg.train.compile
    assert cfg.train.max_steps > cfg.train.warmup_steps
