"""Training, checkpoints and generation on tiny real components (sqlite MLflow included)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from crawl2chat.errors import InputError
from crawl2chat.model.checkpoint import load_model, save_model
from crawl2chat.model.generate import generate, run_generate
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.train import TokenWindows, TrainCfg, fit
from crawl2chat.tokenizer.tokenizer import Tokenizer
from crawl2chat.tokenizer.train import train_bpe

VOCAB = 64
TEXTS = ["the cat sat on the mat. " * 20, "a dog ran in the park, then sat down. " * 20,
         "Zürich café: 3 € for a coffee! " * 10]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_bpe(TEXTS, vocab_size=300, min_frequency=1)


@pytest.fixture(scope="module")
def memmap(tmp_path_factory: pytest.TempPathFactory) -> np.memmap:
    """A periodic token stream: a model can learn it in a few steps."""
    file = tmp_path_factory.mktemp("tokens") / "train.bin"
    np.tile(np.arange(8, 40, dtype=np.uint16), 300).tofile(file)
    return np.memmap(file, dtype=np.uint16, mode="r")


def _model(vocab: int = VOCAB, block: int = 32) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=2, n_head=2, n_embd=32))


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
        memmap: np.memmap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    cwd = tmp_path / "cwd"
    out = cwd / "out"
    out.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    model = _model()
    cfg = TrainCfg(lr=1e-2, min_lr=1e-3, warmup_steps=5, max_steps=30, batch_size=8,
                   eval_every=10, eval_batches=2, log_every=5, progress_bar=False)
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
    assert metrics["steps"] == 30
    assert metrics["tokens"] == 30 * 8 * 32
    # 32 ids in a cycle: a unigram model gets ln(32) = 3.47; this one uses the context
    assert metrics["val_loss"] < math.log(32) - 2
    assert metrics["train_loss"] < math.log(32) - 2
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert sorted(p.name for p in cwd.iterdir()) == ["out"]  # no lightning_logs etc.
    assert sorted(p.name for p in out.iterdir()) == ["loss_curve.png"]
    assert len(calls) == 3  # after each validation (steps 10, 20, 30)

    client = mlflow.MlflowClient()
    train_hist = client.get_metric_history(run.info.run_id, "train/loss")
    val_hist = client.get_metric_history(run.info.run_id, "val/loss")
    assert len(train_hist) >= 5 and [m.step for m in val_hist][-1] >= 29
    assert val_hist[-1].value == pytest.approx(metrics["val_loss"], rel=1e-4)
    assert client.get_metric_history(run.info.run_id, "lr")
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert artifacts == ["samples/step_000010.txt", "samples/step_000020.txt",
                         "samples/step_000030.txt"]


def test_save_load_round_trip_gives_identical_logits(tok: Tokenizer, tmp_path: Path) -> None:
    model = _model(vocab=320)
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


def test_load_model_names_what_is_wrong(tok: Tokenizer, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"config\.json is missing"):
        load_model(tmp_path)
    save_model(_model(vocab=320), tok, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"n_layer": 3}))
    with pytest.raises(InputError, match="does not match"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"architecture": "llama"}))
    with pytest.raises(InputError, match="architecture"):
        load_model(tmp_path)


def test_generate_is_repeatable_with_a_seed_and_crops_its_context() -> None:
    model = _model(block=16)
    run = lambda seed: list(generate(model, [1, 2, 3], 40, temperature=1.0, seed=seed))  # noqa: E731
    first = run(7)
    assert len(first) == 40  # longer than block_size: the context is cropped, not refused
    assert first == run(7)
    assert first != run(8)
    assert all(0 <= i < VOCAB for i in first)
    limited = list(generate(model, [1], 30, temperature=1.0, top_k=None, vocab_limit=10))
    assert all(i < 10 for i in limited)
    assert model.training  # generate restores the mode it found


def test_generate_stops_at_a_stop_id_without_yielding_it() -> None:
    model = _model()
    greedy = list(generate(model, [5, 6], 20, temperature=0))
    stop = greedy[3]
    stopped = list(generate(model, [5, 6], 20, temperature=0, stop_ids={stop}))
    assert stopped == greedy[:greedy.index(stop)]
    with pytest.raises(ValueError, match="context"):
        list(generate(model, [], 5))


def test_run_generate_prints_prompt_and_a_repeatable_continuation(
        tok: Tokenizer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_model(_model(vocab=320), tok, tmp_path)
    outputs = []
    for _ in range(2):
        assert run_generate(tmp_path, "the cat", 12, temperature=1.0, top_k=20, seed=3) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith("the cat") and len(outputs[0]) > len("the cat\n")
