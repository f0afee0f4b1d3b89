"""The GPT module: shapes, causality, tied head, ignored targets, init, LR schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import GPT, IGNORE_INDEX, GPTConfig
from crawl2chat.model.lit import lr_at
from crawl2chat.model.optim import param_groups

CFG = GPTConfig(vocab_size=128, block_size=16, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture()
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(CFG).eval()


def test_shapes_and_loss_near_uniform_at_init(model: GPT) -> None:
    idx = torch.randint(0, CFG.vocab_size, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, CFG.vocab_size) and loss is None
    _, loss = model(idx, torch.randint(0, CFG.vocab_size, (3, 10)))
    assert loss is not None and loss.shape == ()
    # small init: the first prediction is close to uniform
    assert abs(loss.item() - math.log(CFG.vocab_size)) < 0.3


def test_changing_a_future_token_never_changes_an_earlier_logit(model: GPT) -> None:
    idx = torch.randint(0, CFG.vocab_size, (1, CFG.block_size))
    base, _ = model(idx)
    for t in (3, 9, CFG.block_size - 1):
        changed = idx.clone()
        changed[0, t] = (changed[0, t] + 1) % CFG.vocab_size
        out, _ = model(changed)
        assert torch.equal(out[0, :t], base[0, :t])
        assert not torch.allclose(out[0, t], base[0, t])  # ... and it does see the present


def test_head_is_tied_to_the_embedding(model: GPT) -> None:
    assert model.lm_head.weight is model.transformer.wte.weight
    n_unique = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    assert model.num_params() == n_unique
    with torch.no_grad():
        model.transformer.wte.weight[5].zero_()
    assert torch.count_nonzero(model.lm_head.weight[5]) == 0


def test_ignore_index_targets_add_nothing(model: GPT) -> None:
    idx = torch.randint(0, CFG.vocab_size, (2, 8))
    targets = torch.randint(0, CFG.vocab_size, (2, 8))
    masked = targets.clone()
    masked[:, :5] = IGNORE_INDEX
    logits, loss = model(idx, masked)
    expected = F.cross_entropy(logits[:, 5:].reshape(-1, CFG.vocab_size),
                               targets[:, 5:].reshape(-1))
    assert loss is not None and torch.allclose(loss, expected)
    _, full = model(idx, targets)
    assert not torch.allclose(loss, full)


def test_residual_projections_get_the_scaled_init() -> None:
    torch.manual_seed(0)
    big = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=8, n_head=4, n_embd=256))
    proj = big.transformer.h[0].attn.c_proj.weight.std().item()
    fc = big.transformer.h[0].mlp.c_fc.weight.std().item()
    assert fc == pytest.approx(0.02, rel=0.05)
    assert proj == pytest.approx(0.02 / math.sqrt(16), rel=0.05)


def test_too_long_input_and_bad_shape_are_refused(model: GPT) -> None:
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, CFG.block_size + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="n_head"):
        GPTConfig(vocab_size=64, block_size=8, n_layer=1, n_head=3, n_embd=32)


def test_weight_decay_only_on_matrices(model: GPT) -> None:
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() == 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert any(p is model.transformer.wte.weight for p in decay["params"])


def test_lr_schedule_warms_up_then_decays_to_min_lr() -> None:
    cfg = TrainCfg(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(5.5e-4)
    assert lr_at(110, cfg) == pytest.approx(1e-4)
    lrs = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))
