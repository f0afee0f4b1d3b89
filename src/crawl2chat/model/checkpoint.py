"""A model folder that describes itself: weights, shape and tokenizer side by side.

``save_model(model, tokenizer, folder)`` writes ``model.safetensors`` (a tied output
head is stored once, as the token embedding), ``config.json`` (the ``GPTConfig``
fields, ``"architecture": "gpt2"`` for our GPT family whatever its options, under
``"hf_export"`` the Hugging Face class of ``hf/`` or why there is none, and under
``"crawl2chat"`` whatever the caller adds: training metrics, the stage), ``tokenizer/``
and ``hf/`` (the same model as a Hugging Face folder, see
:mod:`crawl2chat.model.export`; absent when no HF model computes it).
``load_model(folder)`` reads them back; it never unpickles anything. Config files
written before an option existed load with its default, which is what they trained.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from crawl2chat.errors import InputError
from crawl2chat.model.export import HF_DIR, ExportRefused, export_hf, hf_architecture
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.tokenizer.tokenizer import Tokenizer

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER_DIR = "tokenizer"
ARCHITECTURE = "gpt2"
TIED_KEY = "lm_head.weight"  # with tie_embeddings, the same tensor as transformer.wte.weight


def stored_state(model: GPT) -> dict[str, torch.Tensor]:
    """The tensors ``model.safetensors`` holds: the state dict less a tied head
    (safetensors refuses tensors that share memory; the head is re-tied on load)."""
    tied = model.config.tie_embeddings
    return {name: t for name, t in model.state_dict().items()
            if not (tied and name == TIED_KEY)}


def save_model(model: GPT, tokenizer: Tokenizer, folder: Path,
               extra: dict[str, Any] | None = None) -> None:
    """Write ``model`` and ``tokenizer`` into ``folder`` (created if missing)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().to("cpu").contiguous() for name, t in stored_state(model).items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    config: dict[str, Any] = {"architecture": ARCHITECTURE, **dataclasses.asdict(model.config)}
    try:
        config["hf_export"] = {"class": hf_architecture(model.config), "folder": HF_DIR}
    except ExportRefused as err:  # a valid model all the same: say why hf/ is missing
        config["hf_export"] = {"class": None, "refused": str(err)}
    if extra:
        config["crawl2chat"] = extra
    (folder / CONFIG).write_text(json.dumps(config, indent=2, default=str) + "\n")
    tokenizer.save(folder / TOKENIZER_DIR)
    if config["hf_export"]["class"]:
        export_hf(model, tokenizer, folder / HF_DIR, chat=is_chat(extra))
    elif (folder / HF_DIR).is_dir():  # an older save's export would not match these weights
        shutil.rmtree(folder / HF_DIR)


def is_chat(extra: dict[str, Any] | None) -> bool:
    """Whether a model saved with ``extra`` (config.json's ``crawl2chat``) is a chat model."""
    return (extra or {}).get("stage") == "sft"


def read_config(folder: Path) -> GPTConfig:
    """The ``GPTConfig`` stored in ``folder/config.json``; InputError names what is wrong."""
    file = folder / CONFIG
    if not folder.is_dir():
        raise InputError(f"model folder {folder} does not exist")
    if not file.is_file():
        raise InputError(f"{file} is missing: {folder} is not a crawl2chat model folder")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{file}: not valid JSON ({err})") from err
    if data.get("architecture") != ARCHITECTURE:
        raise InputError(f"{file}: architecture is {data.get('architecture')!r}, "
                         f"expected {ARCHITECTURE!r}")
    names = [f.name for f in dataclasses.fields(GPTConfig)]
    try:
        return GPTConfig(**{name: data[name] for name in names if name in data})
    except (TypeError, ValueError) as err:
        raise InputError(f"{file}: {err}") from err


def load_model(folder: Path, device: str = "cpu") -> tuple[GPT, Tokenizer]:
    """The model (in eval mode, on ``device``) and tokenizer saved in ``folder``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = read_config(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise InputError(f"{weights} is missing")
    try:
        state = load_file(str(weights), device=device)
    except SafetensorError as err:
        raise InputError(f"{weights}: cannot read ({err})") from err
    with torch.device(device):
        model = GPT(config)
    result = model.load_state_dict(state, strict=False)
    missing = set(result.missing_keys) - ({TIED_KEY} if config.tie_embeddings else set())
    if missing or result.unexpected_keys:
        raise InputError(f"{weights} does not match {folder / CONFIG}: missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}")
    # load_state_dict copies into the existing parameters, so a tied head is still tied
    assert (model.lm_head.weight is model.transformer.wte.weight) == config.tie_embeddings
    return model.eval(), Tokenizer.load(folder / TOKENIZER_DIR)
