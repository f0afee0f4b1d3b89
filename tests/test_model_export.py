"""Hugging Face export: transformers loads it offline, with our logits within 1e-4."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.export import export_hf
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.tokenizer.tokenizer import Tokenizer
from crawl2chat.tokenizer.train import train_bpe

TEXTS = ["the cat sat on the mat. " * 20, "a dog ran in the park, then sat down. " * 20]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_bpe(TEXTS, vocab_size=300, min_frequency=1)


def _random_model(vocab: int, bias: bool) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=32, n_layer=2, n_head=2, n_embd=32,
                          bias=bias)).eval()
    with torch.no_grad():  # non-zero biases and gains: a wrong layout cannot hide
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.normal_(1.0 if name.endswith("ln_1.weight") else 0.0, 0.1)
    return model


def _ids(tok: Tokenizer) -> torch.Tensor:
    return torch.tensor([tok.encode("the dog sat on the mat, then ran in the park.")])


@pytest.mark.parametrize("bias", [True, False])
def test_gpt2lmheadmodel_loads_the_export_with_equal_logits(
        tok: Tokenizer, tmp_path: Path, bias: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be fetched
    from transformers import AutoTokenizer, GPT2LMHeadModel

    model = _random_model(320, bias)  # 300 ids padded to a multiple of 64
    folder = export_hf(model, tok, tmp_path / "hf")
    hf = GPT2LMHeadModel.from_pretrained(folder, local_files_only=True).eval()
    ids = _ids(tok)
    with torch.no_grad():
        ours, _ = model(ids)
        theirs = hf(ids).logits
    assert theirs.shape == ours.shape
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-4)
    hf_tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    text = "the cat ran."
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == tok.encode(text)


def test_save_model_writes_the_hf_folder_and_the_cli_exports(tok: Tokenizer,
                                                             tmp_path: Path) -> None:
    model = _random_model(320, True)
    save_model(model, tok, tmp_path / "model")
    config = json.loads((tmp_path / "model" / "hf" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["vocab_size"] == 320
    out = tmp_path / "exported"
    subprocess.run([sys.executable, "-m", "crawl2chat.cli", "export", str(tmp_path / "model"),
                    str(out)], check=True, capture_output=True)
    assert (out / "model.safetensors").read_bytes() == (
        tmp_path / "model" / "hf" / "model.safetensors").read_bytes()
    assert (out / "tokenizer.json").is_file()
