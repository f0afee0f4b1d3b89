"""Architecture options: each one, and all together, keeps shapes and causality."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from crawl2chat import config
from crawl2chat.model.gpt import GPT, GPTConfig, apply_rotary, rotary
from crawl2chat.stages.base import Cfg as BaseCfg

REPO = Path(__file__).resolve().parents[1]
SHAPE = dict(vocab_size=96, block_size=16, n_layer=2, n_head=2, n_embd=32)
ALL_MODERN = dict(positions="rotary", norm="rmsnorm", qk_norm=True, mlp="swiglu",
                  tie_embeddings=False, bias=False)
OPTIONS: dict[str, dict[str, Any]] = {
    "rotary": dict(positions="rotary"),
    "rmsnorm": dict(norm="rmsnorm"),
    "qk_norm": dict(qk_norm=True),
    "relu2": dict(mlp="relu2"),
    "swiglu": dict(mlp="swiglu"),
    "untied": dict(tie_embeddings=False),
    "no_bias": dict(bias=False),
    "all_modern": ALL_MODERN,
    "all_with_relu2": {**ALL_MODERN, "mlp": "relu2", "bias": True},
}


def _model(options: dict[str, Any]) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SHAPE, **options)).eval()
    with torch.no_grad():  # non-trivial gains: a norm applied on the wrong axis shows
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.normal_(1.0 if "norm" in name or "ln_" in name else 0.0, 0.1)
    return model


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_shapes_loss_and_causality(options: dict[str, Any]) -> None:
    model = _model(options)
    idx = torch.randint(0, SHAPE["vocab_size"], (2, SHAPE["block_size"]))
    base, loss = model(idx, torch.randint(0, SHAPE["vocab_size"], idx.shape))
    assert base.shape == (2, SHAPE["block_size"], SHAPE["vocab_size"])
    assert loss is not None and math.isfinite(loss.item())
    for t in (0, 5, SHAPE["block_size"] - 1):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % SHAPE["vocab_size"]
        out, _ = model(changed)
        assert torch.equal(out[:, :t], base[:, :t])  # the past never sees the future
        assert not torch.allclose(out[:, t], base[:, t])  # ... and each position sees itself


@pytest.mark.parametrize("options", [ALL_MODERN, OPTIONS["all_with_relu2"]],
                         ids=["all_modern", "all_with_relu2"])
def test_bf16_autocast_forward_and_backward(options: dict[str, Any]) -> None:
    model = _model(options).train()
    idx = torch.randint(0, SHAPE["vocab_size"], (2, 12))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fp32 rotary tables meet bf16 q, k
        logits, loss = model(idx, idx)
    assert logits.dtype == torch.bfloat16 and loss is not None
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_modules_follow_the_options() -> None:
    gpt2 = GPT(GPTConfig(**SHAPE))
    modern = GPT(GPTConfig(**SHAPE, **ALL_MODERN))
    assert "wpe" in gpt2.transformer and "wpe" not in modern.transformer
    assert isinstance(modern.transformer.ln_f, nn.RMSNorm)
    assert isinstance(gpt2.transformer.ln_f, nn.LayerNorm)
    block = modern.transformer.h[0]
    assert block.attn.q_norm is not None and block.attn.q_norm.weight.shape == (16,)
    assert modern.lm_head.weight is not modern.transformer.wte.weight
    assert gpt2.lm_head.weight is gpt2.transformer.wte.weight
    assert not any(name.endswith(".bias") for name, _ in modern.named_parameters())
    # the untied head is a vocabulary matrix: left out of the non-embedding count
    assert modern.num_params() - modern.num_params(non_embedding=True) == 2 * 96 * 32


def test_swiglu_hidden_size_keeps_the_parameter_count() -> None:
    wide = dict(vocab_size=64, block_size=8, n_layer=1, n_head=12, n_embd=768)
    gelu, swiglu = GPTConfig(**wide), GPTConfig(**wide, mlp="swiglu")
    assert swiglu.mlp_hidden == 2048 and swiglu.mlp_hidden % 64 == 0
    with torch.device("meta"):
        n_gelu = GPT(gelu).transformer.h[0].mlp
        n_swiglu = GPT(swiglu).transformer.h[0].mlp
    count = [sum(p.numel() for p in m.parameters()) for m in (n_gelu, n_swiglu)]
    assert abs(count[1] - count[0]) / count[0] < 0.01
    assert GPTConfig(**SHAPE, mlp="swiglu").mlp_hidden == 128  # 8/3 x 32 rounded up to 64


def test_relu2_is_relu_squared() -> None:
    model = _model(dict(mlp="relu2"))
    mlp = model.transformer.h[0].mlp
    x = torch.randn(3, SHAPE["n_embd"])
    expected = mlp.c_proj(torch.relu(mlp.c_fc(x)) ** 2)
    torch.testing.assert_close(mlp(x), expected)


def test_rotary_scores_depend_only_on_the_distance() -> None:
    cfg = GPTConfig(**SHAPE, positions="rotary")
    q, k = torch.randn(1, 1, 1, cfg.head_dim), torch.randn(1, 1, 1, cfg.head_dim)
    cos, sin = rotary(torch.arange(12), cfg)

    def score(m: int, n: int) -> torch.Tensor:  # query at position m, key at n
        rq = apply_rotary(q, (cos[m:m + 1], sin[m:m + 1]))
        rk = apply_rotary(k, (cos[n:n + 1], sin[n:n + 1]))
        return (rq * rk).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8))
    assert not torch.allclose(score(3, 1), score(3, 2))
    rotated = apply_rotary(q, (cos[5:6], sin[5:6]))  # a rotation keeps the norm
    torch.testing.assert_close(rotated.norm(), q.norm())


@pytest.mark.parametrize(("options", "message"), [
    (dict(positions="alibi"), "positions must be one of learned, rotary"),
    (dict(norm="batchnorm"), "norm must be one of"),
    (dict(mlp="geglu"), "mlp must be one of gelu, relu2, swiglu"),
    (dict(positions="rotary", n_embd=30, n_head=2), "even head size"),
    (dict(rope_theta=0.0), "rope_theta"),
])
def test_bad_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**SHAPE, **options})


def test_modern_preset_composes_into_a_buildable_model(tmp_path: Path) -> None:
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    tree = config.compose(tmp_path, ["experiment=modern_124m"])
    gpt2 = config.compose(tmp_path, ["experiment=gpt2_124m"])
    cfg = config.build(BaseCfg, tree["base"], "base")
    arch = cfg.model
    assert cfg.train.optimizer == "muon" and arch.positions == "rotary" and arch.qk_norm
    assert (arch.n_layer, arch.n_embd, arch.block_size) == (12, 768, 1024)
    assert tree["tokens"] == gpt2["tokens"]  # only the model and optimizer differ
    with torch.device("meta"):
        model = GPT(GPTConfig(vocab_size=50304, **dataclasses.asdict(arch)))
    assert 84e6 < model.num_params(non_embedding=True) < 86e6  # GPT-2 small's blocks
