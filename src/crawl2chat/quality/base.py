"""Quality gate of the ``base`` stage.

In: the stage's output folder (model.safetensors, config.json, tokenizer/, samples.json,
report.md, loss_curve.png) and its ``Cfg``. Out: GX tables that must hold before the
model is committed:

- ``files``: every file of a model folder is there and not empty;
- ``config``: config.json names the gpt2 architecture, has every GPTConfig field, the
  shape asked for in params, a vocab padded to a multiple of 64 that covers the
  tokenizer's;
- ``weights`` (one row per tensor): exactly the tensors of that GPT (the tied head
  stored once), each of the right size, all finite;
- ``losses``: train and val loss finite and below ln(vocab) (uniform guessing), and,
  where ``require_beats_unigram`` is set, val loss below the unigram entropy;
- ``samples``: one sample per configured prompt, none longer than asked;
- ``held_out``: val bits per byte finite and positive; next-word accuracy and its
  baseline in [0, 1], over no more passages than configured.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
import torch

from crawl2chat import paths
from crawl2chat.model.checkpoint import CONFIG, TOKENIZER_DIR, WEIGHTS, stored_state
from crawl2chat.model.config import LOSS_CURVE, SAMPLES
from crawl2chat.model.gpt import GPT, VOCAB_MULTIPLE, GPTConfig
from crawl2chat.quality.suite import Table
from crawl2chat.tokenizer.tokenizer import TOKENIZER_FILE, Tokenizer

FILES = (WEIGHTS, CONFIG, f"{TOKENIZER_DIR}/{TOKENIZER_FILE}", SAMPLES, paths.REPORT, LOSS_CURVE)
E = gx.expectations


def tables(out_dir: Path, cfg: Any) -> list[Table]:
    files = pd.DataFrame([{"file": name, "bytes": _size(out_dir / name)} for name in FILES])
    file_checks = [E.ExpectColumnValuesToBeBetween(column="bytes", min_value=1)]

    config = json.loads((out_dir / CONFIG).read_text())
    extra = config.get("crawl2chat", {})
    tok_vocab = Tokenizer.load(out_dir / TOKENIZER_DIR).vocab_size
    row = {name: config.get(name) for name in ("architecture", *_FIELDS)}
    row |= {"vocab_mod_64": (config.get("vocab_size") or 1) % VOCAB_MULTIPLE,
            "tokenizer_vocab_size": tok_vocab}
    shape = {name: getattr(cfg.model, name)
             for name in ("n_layer", "n_head", "n_embd", "block_size")}
    config_checks = [
        E.ExpectColumnValuesToBeInSet(column="architecture", value_set=["gpt2"]),
        *(E.ExpectColumnValuesToNotBeNull(column=name) for name in _FIELDS),
        *(E.ExpectColumnValuesToBeInSet(column=k, value_set=[v]) for k, v in shape.items()),
        E.ExpectColumnValuesToBeInSet(column="vocab_mod_64", value_set=[0]),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="vocab_size",
                                                  column_B="tokenizer_vocab_size",
                                                  or_equal=True),
    ]

    expected = _expected_shapes(config)
    weights = _weights(out_dir / WEIGHTS, expected)
    weight_checks = [
        E.ExpectTableRowCountToEqual(value=len(expected)),
        E.ExpectColumnValuesToBeInSet(column="name", value_set=sorted(expected)),
        E.ExpectColumnValuesToBeInSet(column="shape_ok", value_set=[True]),
        E.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
    ]

    loss_names = ("val_loss", "train_loss", "unigram_entropy")
    losses = pd.DataFrame([{name: float(extra.get(name, math.nan)) for name in loss_names}])
    losses["uniform_loss"] = math.log(tok_vocab)
    losses["finite"] = bool(all(math.isfinite(v) for v in losses.iloc[0][list(loss_names)]))
    loss_checks = [
        E.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="uniform_loss", column_B="val_loss"),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="uniform_loss",
                                                  column_B="train_loss"),
    ]
    if cfg.require_beats_unigram:
        loss_checks.append(E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="unigram_entropy", column_B="val_loss"))

    samples = pd.DataFrame(_samples(out_dir / SAMPLES),
                           columns=["prompt", "continuation", "tokens"])
    sample_checks = [
        E.ExpectTableRowCountToEqual(value=len(cfg.prompts)),
        E.ExpectColumnValuesToBeInSet(column="prompt", value_set=list(cfg.prompts)),
        E.ExpectColumnValuesToNotBeNull(column="continuation"),
        E.ExpectColumnValuesToBeBetween(column="tokens", min_value=0,
                                        max_value=cfg.sample_tokens),
    ]
    return [Table("files", files, file_checks), Table("config", pd.DataFrame([row]),
                                                      config_checks),
            Table("weights", weights, weight_checks), Table("losses", losses, loss_checks),
            Table("samples", samples, sample_checks), _held_out(extra, cfg.eval)]


def _held_out(extra: dict[str, Any], cfg: Any) -> Table:
    """The evaluation figures ``crawl2chat.model.evaluate`` stored in config.json."""
    names = ("val_bits_per_byte", "next_word_accuracy", "next_word_baseline_accuracy",
             "next_word_n")
    row = {name: float(extra.get(name, math.nan)) for name in names}
    row["bpb_finite"] = math.isfinite(row["val_bits_per_byte"])
    checks = [
        # a missing figure is NaN, which range checks skip as null: require each one
        *(E.ExpectColumnValuesToNotBeNull(column=name) for name in names),
        E.ExpectColumnValuesToBeInSet(column="bpb_finite", value_set=[True]),
        E.ExpectColumnValuesToBeBetween(column="val_bits_per_byte", min_value=0,
                                        strict_min=True),
        E.ExpectColumnValuesToBeBetween(column="next_word_accuracy", min_value=0, max_value=1),
        E.ExpectColumnValuesToBeBetween(column="next_word_baseline_accuracy", min_value=0,
                                        max_value=1),
        E.ExpectColumnValuesToBeBetween(column="next_word_n", min_value=0,
                                        max_value=cfg.passages),
    ]
    return Table("held_out", pd.DataFrame([row]), checks)


_FIELDS = tuple(f.name for f in dataclasses.fields(GPTConfig))


def _size(file: Path) -> int:
    return file.stat().st_size if file.is_file() else 0


def _expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the GPT that config.json describes (built on the meta
    device: no memory, no time), a tied head left out as it is in the file."""
    try:
        gpt_cfg = GPTConfig(**{name: config[name] for name in _FIELDS if name in config})
    except (TypeError, ValueError):
        return {}
    with torch.device("meta"):
        model = GPT(gpt_cfg)
    return {name: tuple(t.shape) for name, t in stored_state(model).items()}


def _weights(file: Path, expected: dict[str, tuple[int, ...]]) -> pd.DataFrame:
    from safetensors import safe_open

    rows = []
    if file.is_file():
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = f.get_tensor(name)
                rows.append({"name": name, "shape_ok": tuple(tensor.shape) == expected.get(name),
                             "finite": bool(torch.isfinite(tensor).all())})
    return pd.DataFrame(rows, columns=["name", "shape_ok", "finite"])


def _samples(file: Path) -> list[dict[str, Any]]:
    return json.loads(file.read_text()) if file.is_file() else []
