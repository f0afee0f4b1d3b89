"""Hugging Face export: a model folder ``transformers`` loads as is, or a clear refusal.

In: a :class:`~crawl2chat.model.gpt.GPT`, its tokenizer, and whether it is a chat model.
Out: ``folder/`` with ``config.json``, ``generation_config.json``, ``model.safetensors``
in the HF model's names and layouts, and the tokenizer files of :meth:`Tokenizer.save`,
so that ``AutoModelForCausalLM`` and ``AutoTokenizer`` load it offline. No
``transformers`` import is needed to write it.

Where ``generate()`` stops (``eos_token_id``): a base model at ``<|bos|>`` (a new
document starts where the last one ends), a chat model at ``<|assistant_end|>`` (the end
of its reply, what SFT taught it), with ``<|bos|>`` as a second stop.

Which HF model computes the same function depends on the architecture options:

- GPT-2's (learned positions, LayerNorm, GELU or ReLU² MLP) -> ``GPT2LMHeadModel``. Our
  names already are GPT-2's; HF keeps the projections in ``Conv1D`` modules, whose
  weight is ``[in, out]`` (the transpose of ``nn.Linear``'s), and always has biases: a
  model built with ``bias=False`` is exported with zero biases (the same function).
- rotary + RMSNorm + SwiGLU -> ``LlamaForCausalLM`` (our rotary layout is Llama's:
  ``rotate_half``, not interleaved pairs); with QK-norm -> ``Qwen3ForCausalLM``, whose
  per-head q/k RMSNorm is ours. The fused ``c_attn`` is split into q, k and v.
- Any other mix (e.g. rotary with LayerNorm) matches no HF model: :func:`hf_architecture`
  raises :class:`ExportRefused` naming the options that block it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from crawl2chat.errors import InputError
from crawl2chat.model.gpt import GPT, LN_EPS, RMS_EPS, GPTConfig
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.tokenizer import Tokenizer

HF_DIR = "hf"  # the export's folder inside a model folder
GPT2, LLAMA, QWEN3 = "GPT2LMHeadModel", "LlamaForCausalLM", "Qwen3ForCausalLM"
# the option values each HF model can express exactly
_FAMILIES: dict[str, dict[str, tuple[object, ...]]] = {
    GPT2: {"positions": ("learned",), "norm": ("layernorm",), "mlp": ("gelu", "relu2"),
           "qk_norm": (False,)},
    LLAMA: {"positions": ("rotary",), "norm": ("rmsnorm",), "mlp": ("swiglu",),
            "qk_norm": (False,)},
    QWEN3: {"positions": ("rotary",), "norm": ("rmsnorm",), "mlp": ("swiglu",),
            "qk_norm": (True,), "bias": (False,)},  # Qwen3's MLP has no biases
}
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_GPT2_ACT = {"gelu": "gelu_new", "relu2": "relu2"}  # gelu_new: the tanh GELU our MLP uses
# our block's module -> Llama's (c_attn is split into q/k/v separately)
_LLAMA_NAMES = {"ln_1": "input_layernorm", "ln_2": "post_attention_layernorm",
                "attn.c_proj": "self_attn.o_proj", "attn.q_norm": "self_attn.q_norm",
                "attn.k_norm": "self_attn.k_norm", "mlp.c_gate": "mlp.gate_proj",
                "mlp.c_fc": "mlp.up_proj", "mlp.c_proj": "mlp.down_proj"}


class ExportRefused(InputError):
    """The architecture options match no Hugging Face model; the message names them."""


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def hf_architecture(cfg: GPTConfig) -> str:
    """The ``transformers`` class that computes exactly what a GPT with ``cfg`` does;
    :class:`ExportRefused` says, for each candidate, which options would have to change."""
    misses = {arch: [f"{name}={'|'.join(_show(v) for v in allowed)}"
                     for name, allowed in needs.items() if getattr(cfg, name) not in allowed]
              for arch, needs in _FAMILIES.items()}
    for arch, missed in misses.items():
        if not missed:
            return arch
    options = ", ".join(f"{name}={_show(getattr(cfg, name))}"
                        for name in ("positions", "norm", "mlp", "qk_norm", "bias"))
    needs = "; ".join(f"{arch} needs {', '.join(missed)}"
                      for arch, missed in sorted(misses.items(), key=lambda kv: len(kv[1])))
    raise ExportRefused(f"this GPT cannot be exported to Hugging Face: no transformers model "
                        f"computes {options}. {needs}")


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under the HF model's names and layouts (a tied head left out)."""
    arch = hf_architecture(model.config)
    ours = {name: t.detach().to("cpu", torch.float32)
            for name, t in model.state_dict().items()
            if not (name == "lm_head.weight" and model.config.tie_embeddings)}
    state = _gpt2_state(ours, model.config) if arch == GPT2 else _llama_state(ours)
    return {name: t.contiguous() for name, t in state.items()}


def _gpt2_state(ours: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    state = {name: t.t() if name.endswith(_CONV1D) else t for name, t in ours.items()}
    if not cfg.bias:
        width = cfg.n_embd
        widths = {"ln_1": width, "ln_2": width, "attn.c_attn": 3 * width,
                  "attn.c_proj": width, "mlp.c_fc": cfg.mlp_hidden, "mlp.c_proj": width}
        for i in range(cfg.n_layer):
            for module, size in widths.items():
                state[f"transformer.h.{i}.{module}.bias"] = torch.zeros(size)
        state["transformer.ln_f.bias"] = torch.zeros(width)
    return state


def _llama_state(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for name, tensor in ours.items():
        if name == "transformer.wte.weight":
            state["model.embed_tokens.weight"] = tensor
        elif name.startswith("transformer.ln_f."):
            state["model.norm." + name.rsplit(".", 1)[1]] = tensor
        elif name == "lm_head.weight":
            state[name] = tensor
        else:  # transformer.h.{i}.{module}.{weight|bias}
            _, _, layer, rest = name.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            prefix = f"model.layers.{layer}."
            if module == "attn.c_attn":  # rows: all heads' q, then k, then v
                for part, t in zip("qkv", tensor.chunk(3, dim=0), strict=True):
                    state[f"{prefix}self_attn.{part}_proj.{kind}"] = t
            else:
                state[f"{prefix}{_LLAMA_NAMES[module]}.{kind}"] = tensor
    return state


def stop_ids(tokenizer: Tokenizer, chat: bool) -> list[int]:
    """The ids ``generate()`` stops at, the main one first."""
    bos = tokenizer.special_id(special.BOS)
    return [tokenizer.special_id(special.ASSISTANT_END), bos] if chat else [bos]


def generation_config(tokenizer: Tokenizer, chat: bool) -> dict[str, object]:
    """``generation_config.json``: the stops, and the pad id ``generate()`` pads with."""
    return {"bos_token_id": tokenizer.special_id(special.BOS),
            "eos_token_id": stop_ids(tokenizer, chat),
            "pad_token_id": tokenizer.special_id(special.PAD)}


def hf_config(model: GPT, tokenizer: Tokenizer, chat: bool = False) -> dict[str, object]:
    """``config.json`` of the HF model with our shape."""
    cfg = model.config
    arch = hf_architecture(cfg)
    common: dict[str, object] = {
        "architectures": [arch],
        "vocab_size": cfg.vocab_size,  # the padded size: the weights' rows
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": tokenizer.special_id(special.BOS),
        "eos_token_id": stop_ids(tokenizer, chat)[0],
        "pad_token_id": tokenizer.special_id(special.PAD),
        "torch_dtype": "float32",
    }
    if arch == GPT2:
        return {**common, "model_type": "gpt2", "n_positions": cfg.block_size,
                "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                "n_inner": cfg.mlp_hidden, "activation_function": _GPT2_ACT[cfg.mlp],
                "layer_norm_epsilon": LN_EPS, "resid_pdrop": cfg.dropout,
                "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
                "scale_attn_weights": True}
    llama = {**common, "hidden_size": cfg.n_embd, "intermediate_size": cfg.mlp_hidden,
             "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
             "num_key_value_heads": cfg.n_head, "head_dim": cfg.head_dim,
             "hidden_act": "silu", "max_position_embeddings": cfg.block_size,
             "rms_norm_eps": RMS_EPS, "attention_bias": cfg.bias,
             "attention_dropout": cfg.dropout,
             "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta}}
    if arch == LLAMA:
        return {**llama, "model_type": "llama", "mlp_bias": cfg.bias}
    return {**llama, "model_type": "qwen3", "use_sliding_window": False}


GENERATION_CONFIG = "generation_config.json"


def export_hf(model: GPT, tokenizer: Tokenizer, folder: Path, chat: bool = False) -> Path:
    """Write the Hugging Face form of ``model`` (``chat``: an SFT model, which stops at
    the end of its reply) into ``folder``; return ``folder``. Raises
    :class:`ExportRefused`, writing nothing, when no HF model fits."""
    from safetensors.torch import save_file

    hf_architecture(model.config)  # refuse before creating anything
    folder.mkdir(parents=True, exist_ok=True)
    save_file(hf_state_dict(model), str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(
        json.dumps(hf_config(model, tokenizer, chat), indent=2) + "\n")
    (folder / GENERATION_CONFIG).write_text(
        json.dumps(generation_config(tokenizer, chat), indent=2) + "\n")
    tokenizer.save(folder)
    return folder
