"""Training, checkpoints and generation on tiny real components (sqlite MLflow included)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from crawl2chat.errors import ConfigError, InputError
from crawl2chat.model.checkpoint import load_model, save_model
from crawl2chat.model.config import TrainCfg
from crawl2chat.model.generate import generate, run_generate
from crawl2chat.model.gpt import GPT
from crawl2chat.model.lightning_trainer import grad_accum_for
from crawl2chat.model.lit import lr_at
from crawl2chat.model.sampling import SamplingCfg
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows
from crawl2chat.tokenizer.tokenizer import Tokenizer

VOCAB = 64
@pytest.fixture(scope="module")
def memmap(periodic_tokens: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> np.memmap:
    """The periodic token stream as the tokens stage writes it: a memmap of a .bin file."""
    file = tmp_path_factory.mktemp("tokens") / "train.bin"
    periodic_tokens.tofile(file)
    return np.memmap(file, dtype=np.uint16, mode="r")


def test_token_windows_random_are_seeded_and_strided_spread(memmap: np.memmap) -> None:
    a = TokenWindows(memmap, 16, "random", count=50, seed=1)
    b = TokenWindows(memmap, 16, "random", count=50, seed=1)
    c = TokenWindows(memmap, 16, "random", count=50, seed=2)
    assert len(a) == 50
    item = a[7]
    assert torch.equal(item["input_ids"], b[7]["input_ids"])
    assert not all(torch.equal(a[i]["input_ids"], c[i]["input_ids"]) for i in range(10))
    assert item["input_ids"].dtype == torch.long and item["input_ids"].shape == (16,)
    assert torch.equal(item["input_ids"][1:], item["targets"][:-1])  # shifted by one
    every = TokenWindows(memmap, 16, "strided")
    assert len(every) == (len(memmap) - 17) // 16 + 1
    spread = TokenWindows(memmap, 16, "strided", count=4)
    assert spread.starts is not None
    assert spread.starts[0] == 0 and spread.starts[-1] == len(memmap) - 17
    with pytest.raises(InputError, match="window"):
        TokenWindows(memmap[:10], 16)
    with pytest.raises(IndexError):
        a[50]


def test_fit_lowers_the_loss_logs_to_the_active_mlflow_run_and_writes_nothing_else(
        memmap: np.memmap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        tiny_gpt: Callable[..., GPT]) -> None:
    import mlflow

    cwd = tmp_path / "cwd"
    out = cwd / "out"
    out.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    model = tiny_gpt()
    # a made-up peak: a CPU has none in the table, and MFU is reported only with one
    cfg = TrainCfg(lr=1e-2, min_lr=1e-3, warmup_steps=5, max_steps=30, batch_size=8,
                   eval_every=10, eval_batches=2, log_every=5, progress_bar=False,
                   peak_flops=1e12)
    train = TokenWindows(memmap, 32, "random", count=240, seed=0)
    val = TokenWindows(memmap, 32, "strided", count=16)
    calls: list[int] = []

    def sample_fn(m: GPT) -> list[str]:
        calls.append(1)
        return [f"sample {len(calls)}"]

    experiment = mlflow.create_experiment(
        f"test-fit-{tmp_path.name}", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        metrics = fit(model, train, val, cfg, out, sample_fn=sample_fn,
                      reference_lines={"uniform": math.log(VOCAB)})
        assert mlflow.active_run().info.status == "RUNNING"
    assert metrics["steps"] == 30 and metrics["resumed_from_step"] == 0
    assert metrics["tokens"] == 30 * 8 * 32 == 30 * metrics["tokens_per_step"]
    # 32 ids in a cycle: a unigram model gets ln(32) = 3.47; this one uses the context
    assert metrics["val_loss"] < math.log(32) - 2
    assert metrics["train_loss"] < math.log(32) - 2
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert sorted(p.name for p in cwd.iterdir()) == ["out"]  # no lightning_logs etc.
    assert sorted(p.name for p in out.iterdir()) == [
        "loss_curve.png", "train_log.jsonl", "train_samples.jsonl"]
    assert len(calls) == 3  # after each validation (steps 10, 20, 30)

    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20, 25, 30]
    assert [r["step"] for r in rows if "val_loss" in r] == [10, 20, 30]
    flops = 6 * (model.num_params() - 32 * 32) + 12 * 2 * 32 * 32  # wpe is a lookup
    for r in train_rows:
        assert r["grad_norm"] > 0 and r["tokens_per_s"] > 0 and 0 < r["lr"] <= 1e-2 * 1.000001
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * flops / 1e12)
    assert train_rows[-1]["lr"] == pytest.approx(1e-3, rel=0.05)  # the end of the cosine
    assert metrics["grad_norm"] == train_rows[-1]["grad_norm"]
    assert metrics["mfu"] == pytest.approx(
        sorted(r["mfu"] for r in train_rows[1:])[2], rel=1e-9)  # median, warm-up left out
    samples = [json.loads(line) for line in (out / "train_samples.jsonl").read_text().splitlines()]
    assert samples == [{"step": 10, "samples": ["sample 1"]}, {"step": 20, "samples": ["sample 2"]},
                       {"step": 30, "samples": ["sample 3"]}]

    client = mlflow.MlflowClient()
    run_id = run.info.run_id
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [
        5, 10, 15, 20, 25, 30]
    val_hist = client.get_metric_history(run_id, "val/loss")
    assert [m.step for m in val_hist] == [10, 20, 30]
    assert val_hist[-1].value == pytest.approx(metrics["val_loss"], rel=1e-6)
    for name in ("lr", "grad_norm", "tokens_per_s", "mfu"):
        assert len(client.get_metric_history(run_id, name)) == 6, name
    artifacts = [a.path for a in client.list_artifacts(run_id, "samples")]
    assert artifacts == ["samples/step_000010.txt", "samples/step_000020.txt",
                         "samples/step_000030.txt"]
    assert [a.path for a in client.list_artifacts(run_id, "train")] == [
        "train/loss_curve.png", "train/train_log.jsonl"]


def test_wsd_schedule_warms_up_holds_then_decays_linearly() -> None:
    cfg = TrainCfg(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=100, schedule="wsd",
                   decay_fraction=0.2)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == lr_at(79, cfg) == 1.0  # stable until the last 20 steps
    assert lr_at(80, cfg) == 1.0 and lr_at(90, cfg) == pytest.approx(0.55)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    cosine = TrainCfg(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=100)
    assert lr_at(55, cosine) == pytest.approx(0.55) and lr_at(30, cosine) > lr_at(31, cosine)


def test_tokens_per_step_sets_grad_accum_or_names_the_mismatch() -> None:
    cfg = TrainCfg(batch_size=32, tokens_per_step=524288)
    assert grad_accum_for(cfg, 1024, 1) == 16 and grad_accum_for(cfg, 1024, 8) == 2
    assert grad_accum_for(TrainCfg(grad_accum=3), 1024, 8) == 3
    with pytest.raises(ConfigError, match=r"not a multiple of .* 32 x context 1024 x 3"):
        grad_accum_for(cfg, 1024, 3)
    with pytest.raises(ConfigError, match="grad_accum 4 contradicts"):
        grad_accum_for(TrainCfg(batch_size=32, tokens_per_step=524288, grad_accum=4), 1024, 1)
    with pytest.raises(ConfigError, match="schedule"):
        TrainCfg(schedule="linear")
    with pytest.raises(ConfigError, match="strategy"):
        TrainCfg(strategy="deepspeed")


def test_save_load_round_trip_gives_identical_logits(
        tok: Tokenizer, tmp_path: Path, tiny_gpt: Callable[..., GPT]) -> None:
    model = tiny_gpt(vocab=320)
    save_model(model, tok, tmp_path, extra={"stage": "test", "val_loss": 1.5})
    loaded, tok2 = load_model(tmp_path)
    idx = torch.randint(0, 320, (2, 20))
    assert torch.equal(model.eval()(idx)[0], loaded(idx)[0])
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    assert loaded.config == model.config and not loaded.training
    assert tok2.encode("the cat sat") == tok.encode("the cat sat")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == "gpt2" and config["n_embd"] == 32
    assert config["crawl2chat"] == {"stage": "test", "val_loss": 1.5}
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names


def test_load_model_names_what_is_wrong(
        tok: Tokenizer, tmp_path: Path, tiny_gpt: Callable[..., GPT]) -> None:
    with pytest.raises(InputError, match=r"config\.json is missing"):
        load_model(tmp_path)
    save_model(tiny_gpt(vocab=320), tok, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"n_layer": 3}))
    with pytest.raises(InputError, match="does not match"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"architecture": "llama"}))
    with pytest.raises(InputError, match="architecture"):
        load_model(tmp_path)


def test_generate_is_repeatable_with_a_seed_and_crops_its_context(
        tiny_gpt: Callable[..., GPT]) -> None:
    model = tiny_gpt(block=16)
    run = lambda seed: list(generate(model, [1, 2, 3], 40, SamplingCfg(temperature=1.0), seed=seed))  # noqa: E731
    first = run(7)
    assert len(first) == 40  # longer than block_size: the context is cropped, not refused
    assert first == run(7)
    assert first != run(8)
    assert all(0 <= i < VOCAB for i in first)
    limited = list(generate(model, [1], 30, SamplingCfg(temperature=1.0, top_k=None),
                            vocab_limit=10))
    assert all(i < 10 for i in limited)
    assert model.training  # generate restores the mode it found


def test_generate_stops_at_a_stop_id_without_yielding_it(tiny_gpt: Callable[..., GPT]) -> None:
    model = tiny_gpt()
    greedy = list(generate(model, [5, 6], 20, SamplingCfg(temperature=0)))
    stop = greedy[3]
    stopped = list(generate(model, [5, 6], 20, SamplingCfg(temperature=0), stop_ids={stop}))
    assert stopped == greedy[:greedy.index(stop)]
    with pytest.raises(ValueError, match="context"):
        list(generate(model, [], 5))


def test_run_generate_prints_prompt_and_a_repeatable_continuation(
        tok: Tokenizer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        tiny_gpt: Callable[..., GPT]) -> None:
    save_model(tiny_gpt(vocab=320), tok, tmp_path)
    outputs = []
    for _ in range(2):
        assert run_generate(tmp_path, "the cat", 12, SamplingCfg(temperature=1.0, top_k=20),
                            seed=3) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith("the cat") and len(outputs[0]) > len("the cat\n")
