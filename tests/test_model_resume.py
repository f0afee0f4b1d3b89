"""Exact resume: a run killed after a checkpoint and continued logs the same losses, to
the bit, as one that never stopped, and ends with the same weights (CPU, deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crawl2chat.errors import InputError
from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.resume import StepSampler
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows


class Killed(Exception):
    """Stands in for the process dying mid-run."""


@pytest.fixture(scope="module")
def tokens() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.tile(rng.integers(0, 48, 97, dtype=np.uint16), 40)


def _fit(tokens: np.ndarray, out: Path, ckpt: Path | None, kill_at_sample: bool = False,
         **changes: object) -> tuple[GPT, dict[str, float]]:
    torch.manual_seed(0)
    # dropout on: the RNG states must come back too, not only weights and data order
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32,
                          dropout=0.1))
    cfg = TrainCfg(**{"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2, "max_steps": 12,
                      "batch_size": 4, "grad_accum": 2, "eval_every": 6, "eval_batches": 1,
                      "log_every": 1, "checkpoint_every": 4, "deterministic": True,
                      "progress_bar": False, **changes})

    def sample_fn(m: GPT) -> list[str]:
        if kill_at_sample:
            raise Killed  # at step 6: two steps after the checkpoint of step 4
        return ["sample"]

    out.mkdir(exist_ok=True)
    # fewer windows than the run needs: the order goes over them more than once
    train = TokenWindows(tokens, 16, "random", count=60, seed=3)
    val = TokenWindows(tokens, 16, "strided", count=4)
    metrics = fit(model, train, val, cfg, out, sample_fn=sample_fn, checkpoint_dir=ckpt)
    return model, metrics


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_killed_and_resumed_run_equals_the_uninterrupted_one(tokens: np.ndarray,
                                                             tmp_path: Path) -> None:
    whole, whole_metrics = _fit(tokens, tmp_path / "whole", None)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        _fit(tokens, tmp_path / "killed", ckpt, kill_at_sample=True)
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.ckpt"]
    saved = torch.load(ckpt / "last.ckpt", weights_only=True)  # plain tensors and values only
    assert saved["global_step"] == 4
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"micro_batches": 8, "n_items": 60, "batch_size": 4, "seed": 1337, "world_size": 1}]
    assert "crawl2chat_rng_states" in saved and "crawl2chat_history" in saved

    resumed, metrics = _fit(tokens, tmp_path / "resumed", ckpt)
    assert metrics["resumed_from_step"] == 4 and metrics["steps"] == 12
    expected, got = _log(tmp_path / "whole"), _log(tmp_path / "resumed")
    assert [r["step"] for r in got if "loss" in r] == list(range(1, 13))
    for name in ("loss", "lr", "grad_norm", "val_loss"):  # ==, not approx
        assert [r[name] for r in got if name in r] == [r[name] for r in expected if name in r]
    assert metrics["val_loss"] == whole_metrics["val_loss"]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_a_finished_checkpoint_is_reused_and_another_data_order_refused(
        tokens: np.ndarray, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    _, first = _fit(tokens, tmp_path / "first", ckpt, max_steps=4)
    # killed after training, before the model was saved: nothing left to train
    _, again = _fit(tokens, tmp_path / "again", ckpt, max_steps=4)
    assert again["resumed_from_step"] == 4 and again["steps"] == 4
    assert again["val_loss"] == first["val_loss"] and again["tokens_per_s"] == 0
    assert _log(tmp_path / "again") == _log(tmp_path / "first")
    with pytest.raises(InputError, match="different data order"):
        _fit(tokens, tmp_path / "second", ckpt, max_steps=8, seed=7)
    _, metrics = _fit(tokens, tmp_path / "fresh", ckpt, max_steps=4, resume=False)
    assert metrics["resumed_from_step"] == 0


def test_step_sampler_is_a_function_of_seed_batch_and_rank() -> None:
    def batches(sampler: StepSampler) -> list[list[int]]:
        ids = list(sampler)
        return [ids[i:i + sampler.batch_size] for i in range(0, len(ids), sampler.batch_size)]

    one = batches(StepSampler(10, 3, 8, seed=5))
    flat = list(StepSampler(10, 3, 8, seed=5))
    assert len(one) == 8 and sorted(flat[:10]) == list(range(10))  # a full pass
    assert sorted(flat[10:20]) == list(range(10)) and flat[10:20] != flat[:10]  # reshuffled
    later = StepSampler(10, 3, 8, seed=5)
    later.start = 5
    assert batches(later) == one[5:]
    ranks = [batches(StepSampler(10, 3, 4, seed=5, rank=r, world_size=2)) for r in (0, 1)]
    assert [b for pair in zip(*ranks, strict=True) for b in pair] == one  # interleaved
    assert batches(StepSampler(10, 3, 8, seed=6)) != one
