"""Hugging Face export: transformers loads it offline (GPT-2, Llama or Qwen3, as the
architecture options dictate), with our logits within 1e-4; other mixes are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from crawl2chat.cli import main
from crawl2chat.model.checkpoint import load_model, save_model
from crawl2chat.model.export import ExportRefused, export_hf, hf_architecture
from crawl2chat.model.gpt import GPT
from crawl2chat.tokenizer.tokenizer import Tokenizer

LLAMA = dict(positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False)
EXPORTABLE: dict[str, tuple[dict[str, Any], str]] = {
    "gpt2_relu2_untied": (dict(mlp="relu2", tie_embeddings=False), "GPT2LMHeadModel"),
    "llama": (LLAMA, "LlamaForCausalLM"),
    "llama_bias_untied": ({**LLAMA, "bias": True, "tie_embeddings": False},
                          "LlamaForCausalLM"),
    "qwen3": ({**LLAMA, "qk_norm": True, "tie_embeddings": False}, "Qwen3ForCausalLM"),
    "qwen3_tied_theta": ({**LLAMA, "qk_norm": True, "rope_theta": 500.0}, "Qwen3ForCausalLM"),
}


@pytest.fixture(scope="module")
def random_model(tiny_gpt: Callable[..., GPT]) -> Callable[..., GPT]:
    """Tiny GPTs over the tokenizer's 300 ids padded to 320, with random 1-D parameters."""
    def build(bias: bool = True, **options: Any) -> GPT:
        model = tiny_gpt(320, bias=bias, **options).eval()
        with torch.no_grad():  # non-zero biases and gains: a wrong layout cannot hide
            for name, p in model.named_parameters():
                if p.dim() == 1:
                    gain = name.endswith(".weight")  # 1-D weights are norm gains
                    p.normal_(1.0 if gain else 0.0, 0.1)
        return model
    return build


def _ids(tok: Tokenizer) -> torch.Tensor:
    return torch.tensor([tok.encode("the dog sat on the mat, then ran in the park.")])


@pytest.mark.parametrize("bias", [True, False])
def test_gpt2lmheadmodel_loads_the_export_with_equal_logits(
        tok: Tokenizer, tmp_path: Path, bias: bool, monkeypatch: pytest.MonkeyPatch,
        random_model: Callable[..., GPT]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be fetched
    from transformers import AutoTokenizer, GPT2LMHeadModel

    model = random_model(bias)
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


def test_save_model_writes_the_hf_folder_and_the_cli_exports(
        tok: Tokenizer, tmp_path: Path, random_model: Callable[..., GPT]) -> None:
    model = random_model(True)
    save_model(model, tok, tmp_path / "model")
    config = json.loads((tmp_path / "model" / "hf" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["vocab_size"] == 320
    out = tmp_path / "exported"
    subprocess.run([sys.executable, "-m", "crawl2chat.cli", "export", str(tmp_path / "model"),
                    str(out)], check=True, capture_output=True)
    assert (out / "model.safetensors").read_bytes() == (
        tmp_path / "model" / "hf" / "model.safetensors").read_bytes()
    assert (out / "tokenizer.json").is_file()


@pytest.mark.parametrize(("options", "arch"), EXPORTABLE.values(), ids=EXPORTABLE.keys())
def test_modern_options_export_to_the_matching_hf_model(
        tok: Tokenizer, tmp_path: Path, options: dict[str, Any], arch: str,
        monkeypatch: pytest.MonkeyPatch, random_model: Callable[..., GPT]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM

    model = random_model(**options)
    with torch.no_grad():  # peaked logits: a mixed-up layout or rotation would show
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(4.0)
    folder = export_hf(model, tok, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    assert type(hf).__name__ == arch == hf_architecture(model.config)
    ids = _ids(tok)
    with torch.no_grad():
        ours, _ = model(ids)
        theirs = hf(ids).logits
    assert ours.std() > 0.3
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-4)
    # and a continuation: rotary positions past a cached prefix agree as well
    with torch.no_grad():
        out = hf.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    from crawl2chat.model.generate import generate
    from crawl2chat.model.sampling import SamplingCfg

    assert out[0, ids.size(1):].tolist() == list(generate(model, ids[0].tolist(), 8,
                                                          SamplingCfg(temperature=0)))


@pytest.mark.parametrize(("options", "blocking"), [
    (dict(positions="rotary"), "GPT2LMHeadModel needs positions=learned;"),
    (dict(norm="rmsnorm"), "GPT2LMHeadModel needs norm=layernorm;"),
    (dict(qk_norm=True), "GPT2LMHeadModel needs qk_norm=false;"),
    ({**LLAMA, "mlp": "relu2"}, "LlamaForCausalLM needs mlp=swiglu;"),
    ({**LLAMA, "qk_norm": True, "bias": True}, "Qwen3ForCausalLM needs bias=false;"),
])
def test_unexportable_mixes_are_refused_naming_the_options(
        tok: Tokenizer, tmp_path: Path, options: dict[str, Any], blocking: str,
        random_model: Callable[..., GPT]) -> None:
    model = random_model(**options)
    with pytest.raises(ExportRefused, match="cannot be exported") as err:
        export_hf(model, tok, tmp_path / "hf")
    assert blocking in str(err.value)
    assert not (tmp_path / "hf").exists()  # refused before writing anything


def test_save_model_records_why_there_is_no_hf_folder(
        tok: Tokenizer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        random_model: Callable[..., GPT]) -> None:
    model = random_model(positions="rotary", mlp="relu2", tie_embeddings=False)
    folder = tmp_path / "model"
    (folder / "hf").mkdir(parents=True)  # a stale export of an earlier save
    save_model(model, tok, folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["hf_export"]["class"] is None
    assert "positions=rotary" in config["hf_export"]["refused"]
    assert not (folder / "hf").exists()
    loaded, _ = load_model(folder)  # the model itself is fine: saved and loaded
    assert loaded.lm_head.weight is not loaded.transformer.wte.weight
    ids = _ids(tok)
    torch.testing.assert_close(loaded(ids)[0], model(ids)[0], rtol=0, atol=0)
    with pytest.raises(SystemExit) as exit_info:  # one line on stderr, no traceback
        main(["export", str(folder), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "LlamaForCausalLM needs norm=rmsnorm, mlp=swiglu" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_config_json_without_the_new_options_loads_as_gpt2(
        tok: Tokenizer, tmp_path: Path, random_model: Callable[..., GPT]) -> None:
    model = random_model()
    save_model(model, tok, tmp_path / "model")
    file = tmp_path / "model" / "config.json"
    config = json.loads(file.read_text())
    old = {k: v for k, v in config.items() if k not in (
        "positions", "rope_theta", "norm", "qk_norm", "mlp", "tie_embeddings", "hf_export")}
    file.write_text(json.dumps(old))
    loaded, _ = load_model(tmp_path / "model")
    assert loaded.config == model.config
    ids = _ids(tok)
    torch.testing.assert_close(loaded(ids)[0], model(ids)[0], rtol=0, atol=0)
