"""`crawl2chat generate` and nucleus sampling, on a tiny random model saved to disk."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from crawl2chat.cli import main
from crawl2chat.errors import ConfigError
from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.generate import generate
from crawl2chat.model.gpt import GPT
from crawl2chat.model.sampling import SamplingCfg
from crawl2chat.tokenizer.tokenizer import Tokenizer


def _peaked(net: GPT) -> GPT:
    with torch.no_grad():  # larger weights than the init: peaked, prompt-dependent logits
        for p in net.parameters():
            p.mul_(3.0)
    return net.eval()


@pytest.fixture(scope="module")
def model_dir(tok: Tokenizer, tiny_gpt: Callable[..., GPT],
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    save_model(_peaked(tiny_gpt(320)), tok, folder)
    return folder


def _cli(capsys: pytest.CaptureFixture[str], model_dir: Path, *options: str) -> str:
    assert main(["generate", str(model_dir), "--prompt", "the cat", "--max-new-tokens", "24",
                 *options]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the cat")
    return out


def test_same_seed_same_text_other_seed_other_text(
        model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sampled = ("--temperature", "1.0", "--top-k", "200", "--top-p", "0.95")
    first = _cli(capsys, model_dir, *sampled, "--seed", "1")
    assert _cli(capsys, model_dir, *sampled, "--seed", "1") == first
    assert _cli(capsys, model_dir, *sampled, "--seed", "2") != first
    assert len(first) > len("the cat\n")


def test_a_tiny_top_p_is_greedy(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    greedy = _cli(capsys, model_dir, "--temperature", "0")
    for seed in ("1", "2"):  # only the most likely token is left to sample
        assert _cli(capsys, model_dir, "--temperature", "1.5", "--top-k", "300",
                    "--top-p", "1e-6", "--seed", seed) == greedy
    assert _cli(capsys, model_dir, "--temperature", "1.5", "--top-k", "300",
                "--seed", "1") != greedy


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_top_p_outside_0_1_is_refused(model_dir: Path, value: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", str(model_dir), "--prompt", "x", "--top-p", value])
    assert exit_info.value.code == 2
    assert "--top-p: must be in (0, 1]" in capsys.readouterr().err


def test_top_p_samples_only_inside_the_nucleus(tiny_gpt: Callable[..., GPT]) -> None:
    model = _peaked(tiny_gpt(64))
    prompt = [1, 2, 3]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([prompt]))[0][0, -1], dim=-1)
    ranked = probs.argsort(descending=True).tolist()
    # the nucleus for 0.5: the most likely ids up to and including the one reaching 0.5
    reach = int((probs[ranked].cumsum(0) >= 0.5).nonzero()[0])
    nucleus = set(ranked[:reach + 1])
    assert len(nucleus) < len(ranked)
    sampled = {next(generate(model, prompt, 1, SamplingCfg(temperature=1.0, top_k=None, top_p=0.5),
                             seed=seed)) for seed in range(200)}
    assert sampled <= nucleus and len(sampled) > 1
    unrestricted = {next(generate(model, prompt, 1, SamplingCfg(temperature=1.0, top_k=None),
                                  seed=seed)) for seed in range(200)}
    assert unrestricted - nucleus  # without top_p the same seeds reach outside it


@pytest.mark.parametrize(("fields", "named"), [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_k": 0}, "top_k must be >= 1"),
    ({"top_p": 0.0}, "top_p must be in (0, 1]"),
    ({"top_p": 1.5}, "top_p must be in (0, 1]"),
])
def test_sampling_cfg_names_the_bad_field(fields: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        SamplingCfg(**fields)


def test_sampling_cfg_describes_itself_for_reports() -> None:
    assert SamplingCfg().describe() == "temperature 0.8, top-k 50"
    assert SamplingCfg(temperature=1, top_k=None, top_p=0.9).describe() == (
        "temperature 1, top-p 0.9")
    assert SamplingCfg(temperature=0).describe() == "greedy"

