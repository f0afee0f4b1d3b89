"""build_optimizer: AdamW, or Muon on the block matrices with AdamW on the rest."""

from __future__ import annotations

import copy
import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.lit import lr_at
from crawl2chat.model.optim import MuonWithAdamW, build_optimizer, split_for_muon
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows

CFG = GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
MUON = TrainCfg(optimizer="muon", lr=3e-3, muon_lr=0.02, warmup_steps=2, max_steps=20,
                precision="32-true")


def _model(**options: Any) -> GPT:
    torch.manual_seed(0)
    return GPT(dataclasses.replace(CFG, **options))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A periodic sequence: a tiny model learns it within a few steps."""
    seq = torch.arange(17) % 5 + 3
    return seq[:-1].repeat(4, 1), seq[1:].repeat(4, 1)


def _step(model: GPT, opt: torch.optim.Optimizer) -> float:
    idx, targets = _batch()
    opt.zero_grad()
    _, loss = model(idx, targets)
    assert loss is not None
    loss.backward()
    opt.step()
    return loss.item()


def _ids(params: Any) -> set[int]:
    return {id(p) for p in params}


def test_muon_gets_the_block_matrices_adamw_the_rest() -> None:
    model = _model(tie_embeddings=False, qk_norm=True, mlp="swiglu")
    opt = build_optimizer(model, MUON)
    assert isinstance(opt, MuonWithAdamW)
    muon = _ids(p for g in opt.muon.param_groups for p in g["params"])
    adamw = _ids(p for g in opt.adamw.param_groups for p in g["params"])
    block = model.transformer.h[0]
    for p in (block.attn.c_attn.weight, block.attn.c_proj.weight, block.mlp.c_fc.weight,
              block.mlp.c_gate.weight, block.mlp.c_proj.weight):
        assert id(p) in muon
    for p in (model.transformer.wte.weight, model.transformer.wpe.weight,
              model.lm_head.weight, block.ln_1.weight, block.attn.c_attn.bias,
              block.attn.q_norm.weight, model.transformer.ln_f.weight):
        assert id(p) in adamw
    assert not muon & adamw and muon | adamw == _ids(model.parameters())
    # the outer groups are the inner ones: AdamW's first, so param_groups[0] is its lr
    assert opt.param_groups == [*opt.adamw.param_groups, *opt.muon.param_groups]
    assert opt.param_groups[0]["lr"] == MUON.lr and opt.param_groups[-1]["lr"] == 0.02
    # Muon's decoupled decay per step (lr x weight_decay) equals AdamW's on matrices
    muon_group = opt.muon.param_groups[0]
    assert muon_group["lr"] * muon_group["weight_decay"] == pytest.approx(
        MUON.lr * MUON.weight_decay)


def test_frozen_parameters_are_left_out() -> None:
    model = _model()
    for p in model.transformer.h[0].parameters():
        p.requires_grad_(False)
    frozen = _ids(model.transformer.h[0].parameters())
    for cfg in (TrainCfg(), MUON):
        opt = build_optimizer(model, cfg)
        held = _ids(p for g in opt.param_groups for p in g["params"])
        assert not held & frozen
        assert held == _ids(p for p in model.parameters() if p.requires_grad)


def test_adamw_decays_matrices_only_and_is_fused_unless_clipping_mixed() -> None:
    model = _model()
    opt = build_optimizer(model, TrainCfg(precision="32-true"))
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["fused"]
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() == 1 for p in no_decay["params"])
    # Lightning refuses to clip gradients for a fused optimizer under mixed precision
    assert not build_optimizer(model, TrainCfg(precision="bf16-mixed")).param_groups[0]["fused"]
    with pytest.raises(ValueError, match="adamw, muon"):
        build_optimizer(model, TrainCfg(optimizer="sgd"))


@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_a_few_steps_reduce_the_loss(name: str) -> None:
    model = _model(positions="rotary", norm="rmsnorm", mlp="relu2")
    opt = build_optimizer(model, TrainCfg(optimizer=name, lr=3e-3, precision="32-true"))
    losses = [_step(model, opt) for _ in range(15)]
    assert losses[-1] < 0.6 * losses[0]


def test_state_dict_round_trip_gives_the_identical_next_step() -> None:
    model = _model()
    opt = build_optimizer(model, MUON)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, MUON) / MUON.lr)
    for _ in range(3):
        _step(model, opt)
        sched.step()
    buffer = io.BytesIO()  # through bytes, as a checkpoint goes; loaded without unpickling
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    twin = copy.deepcopy(model)
    twin_opt = build_optimizer(twin, MUON)
    twin_sched = torch.optim.lr_scheduler.LambdaLR(twin_opt, lambda s: lr_at(s, MUON) / MUON.lr)
    twin_opt.load_state_dict(saved["opt"])
    twin_sched.load_state_dict(saved["sched"])
    assert twin_opt.param_groups[-1]["lr"] == opt.param_groups[-1]["lr"] < 0.02  # in warmup
    # the inner optimizers must see the restored groups and state, not their old ones
    assert twin_opt.muon.param_groups[0] is twin_opt.param_groups[-1]
    assert twin_opt.adamw.state is twin_opt.state and len(twin_opt.state) == len(opt.state)
    for _ in range(2):
        assert _step(twin, twin_opt) == _step(model, opt)
        sched.step()
        twin_sched.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_schedule_steers_both_inner_optimizers() -> None:
    model = _model()
    opt = build_optimizer(model, MUON)
    _step(model, opt)  # state exists: momentum alone would move weights at lr > 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.0)
    assert all(g["lr"] == 0.0 for g in opt.muon.param_groups + opt.adamw.param_groups)
    before = [p.detach().clone() for p in model.parameters()]
    _step(model, opt)
    sched.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_muon_needs_block_matrices() -> None:
    model = _model()
    for block in model.transformer.h:
        block.requires_grad_(False)
    assert split_for_muon(model)[0] == []
    with pytest.raises(ValueError, match="no trainable matrices"):
        build_optimizer(model, MUON)


def test_lightning_trains_and_resumes_with_muon(tmp_path: Path) -> None:
    """Through fit(): bf16 autocast with clipping, the schedule, and a checkpoint whose
    optimizer state (Muon's momentum, AdamW's moments) Lightning saves and restores."""
    tokens = np.tile(np.arange(3, 19, dtype=np.uint16), 200)
    train = TokenWindows(tokens, 16, "random", count=20 * 8, seed=0)
    val = TokenWindows(tokens, 16, "strided", count=8)
    cfg = dataclasses.replace(MUON, max_steps=10, batch_size=8, eval_every=10, eval_batches=1,
                              log_every=5, precision="bf16-mixed", grad_clip=1.0,
                              checkpoint_every=10, progress_bar=False)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    model = _model()
    first = fit(model, train, val, cfg, tmp_path / "a", checkpoint_dir=tmp_path / "ckpt")
    assert first["val_loss"] < math.log(CFG.vocab_size) - 0.5  # well below uniform
    resumed = fit(_model(), train, val, dataclasses.replace(cfg, max_steps=20),
                  tmp_path / "b", checkpoint_dir=tmp_path / "ckpt")
    assert resumed["resumed_from_step"] == 10 and resumed["steps"] == 20
    assert resumed["val_loss"] < first["val_loss"]
