"""Hugging Face export: a model folder ``transformers.GPT2LMHeadModel`` loads as is.

In: a :class:`~crawl2chat.model.gpt.GPT` and its tokenizer. Out: ``folder/`` with
``config.json`` (a ``GPT2Config``), ``model.safetensors`` in HF's GPT-2 names, and the
tokenizer files of :meth:`Tokenizer.save` (``tokenizer.json`` and its configs), so that
``GPT2LMHeadModel.from_pretrained(folder)`` and ``AutoTokenizer.from_pretrained(folder)``
work offline. No ``transformers`` import is needed to write it.

Our parameter names already are GPT-2's; the differences are that HF's GPT-2 keeps its
attention and MLP projections in ``Conv1D`` modules, whose weight is ``[in, out]``
(the transpose of ``nn.Linear``'s), and that it always has biases: a model built with
``bias=False`` is exported with zero biases, which computes the same function.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from crawl2chat.model.gpt import GPT
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.tokenizer import Tokenizer

HF_DIR = "hf"  # the export's folder inside a model folder
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_LN_EPS = 1e-5  # nn.LayerNorm's default, which GPT uses; HF's GPT-2 default as well


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under HF GPT-2's names and layouts (the tied head left out)."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied: HF re-ties it to wte (tie_word_embeddings)
            continue
        tensor = tensor.detach().to("cpu", torch.float32)
        state[name] = (tensor.t() if name.endswith(_CONV1D) else tensor).contiguous()
    if not model.config.bias:
        _add_zero_biases(state, model)
    return state


def _add_zero_biases(state: dict[str, torch.Tensor], model: GPT) -> None:
    width = model.config.n_embd
    widths = {"ln_1": width, "ln_2": width, "attn.c_attn": 3 * width,
              "attn.c_proj": width, "mlp.c_fc": 4 * width, "mlp.c_proj": width}
    for i in range(model.config.n_layer):
        for module, size in widths.items():
            state[f"transformer.h.{i}.{module}.bias"] = torch.zeros(size)
    state["transformer.ln_f.bias"] = torch.zeros(width)


def hf_config(model: GPT, tokenizer: Tokenizer) -> dict[str, object]:
    """``config.json`` of a ``GPT2LMHeadModel`` with our shape."""
    cfg = model.config
    bos = tokenizer.special_id(special.BOS)
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,  # the padded size: the weights' rows
        "n_positions": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": 4 * cfg.n_embd,
        "activation_function": "gelu_new",  # the tanh GELU our MLP uses
        "layer_norm_epsilon": _LN_EPS,
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "bos_token_id": bos,
        "eos_token_id": bos,  # a new document starts where the last one ends
        "torch_dtype": "float32",
    }


def export_hf(model: GPT, tokenizer: Tokenizer, folder: Path) -> Path:
    """Write the Hugging Face form of ``model`` into ``folder``; return ``folder``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(hf_state_dict(model), str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(model, tokenizer), indent=2) + "\n")
    tokenizer.save(folder)
    return folder


def run_export(model_dir: Path, out_dir: Path) -> int:
    """``crawl2chat export``: the Hugging Face form of a model folder, into ``out_dir``."""
    from crawl2chat.model.checkpoint import load_model

    model, tokenizer = load_model(model_dir)
    export_hf(model, tokenizer, out_dir)
    print(f"wrote {out_dir} (load with transformers.GPT2LMHeadModel.from_pretrained)")
    return 0
