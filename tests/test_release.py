"""A released model folder others can use: transformers loads the export, generate()
stops where our model does (base: <|bos|>, chat: <|assistant_end|>), the chat template's
{% generation %} markers give our loss mask, and the model card names its lineage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from crawl2chat.chat import template
from crawl2chat.model.export import GENERATION_CONFIG, export_hf
from crawl2chat.model.gpt import GPT
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.tokenizer import Tokenizer

CONVERSATIONS = [
    [{"role": "user", "content": "Hi! What's 2+2?"},
     {"role": "assistant", "content": "4. The cat sat on the mat."}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "the dog ran"},
     {"role": "assistant", "content": "in the park, then sat down."},
     {"role": "user", "content": "  and then?  "},
     {"role": "assistant", "content": "Zürich café: 3 €!"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_the_assistant_tokens_mask_equals_our_loss_mask(
        tok: Tokenizer, tmp_path: Path, messages: list[dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok.save(tmp_path)
    hf_tok = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    out = hf_tok.apply_chat_template(messages, tokenize=True, return_dict=True,
                                     return_assistant_tokens_mask=True)
    ids, mask = template.render(messages, tok)
    assert out["input_ids"] == ids
    assert out["assistant_masks"] == mask
    assert sum(mask) > len(messages) // 2  # the replies and their end tokens are learnt


def _always(model: GPT, token: int) -> GPT:
    """``model`` made to predict ``token`` at every position (the final norm outputs a
    constant, the tied embedding of ``token`` points the same way)."""
    with torch.no_grad():
        direction = torch.randn(model.config.n_embd)
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(direction)
        model.transformer.wte.weight[token] = direction * 10
    return model.eval()


@pytest.mark.parametrize(("chat", "stop"), [(True, special.ASSISTANT_END),
                                            (False, special.BOS)])
def test_transformers_generate_stops_at_the_end_of_a_reply_or_document(
        tok: Tokenizer, tiny_gpt: Callable[..., GPT], tmp_path: Path, chat: bool, stop: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM

    stop_id = tok.special_id(stop)
    folder = export_hf(_always(tiny_gpt(320), stop_id), tok, tmp_path / "hf", chat=chat)
    config = json.loads((folder / GENERATION_CONFIG).read_text())
    assert config["eos_token_id"][0] == stop_id
    assert json.loads((folder / "config.json").read_text())["eos_token_id"] == stop_id
    hf = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    prompt = template.render_prompt(CONVERSATIONS[0][:1], tok)
    out = hf.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False)
    assert out[0].tolist() == [*prompt, stop_id]  # one token, the stop, then no more


def test_a_saved_sft_model_exports_as_a_chat_model_also_from_the_cli(
        tok: Tokenizer, tiny_gpt: Callable[..., GPT], tmp_path: Path) -> None:
    import subprocess
    import sys

    from crawl2chat.model.checkpoint import save_model

    end = tok.special_id(special.ASSISTANT_END)
    bos = tok.special_id(special.BOS)
    save_model(tiny_gpt(320), tok, tmp_path / "sft", extra={"stage": "sft"})
    save_model(tiny_gpt(320), tok, tmp_path / "base", extra={"stage": "base"})
    stops = {name: json.loads((tmp_path / name / "hf" / GENERATION_CONFIG).read_text())
             ["eos_token_id"] for name in ("sft", "base")}
    assert stops == {"sft": [end, bos], "base": [bos]}
    subprocess.run([sys.executable, "-m", "crawl2chat.cli", "export", str(tmp_path / "sft"),
                    str(tmp_path / "out")], check=True, capture_output=True)
    assert json.loads((tmp_path / "out" / GENERATION_CONFIG).read_text())[
        "eos_token_id"] == [end, bos]
