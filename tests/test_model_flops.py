"""FLOPs per token, the device peak table and MFU."""

from __future__ import annotations

import pytest
import torch

from crawl2chat.model.flops import (
    device_peak_flops,
    flops_per_token,
    matmul_params,
    mfu,
    peak_flops_of,
)
from crawl2chat.model.gpt import GPT, GPTConfig


def test_gpt2_small_costs_about_0_86_gflop_per_token() -> None:
    with torch.device("meta"):  # shapes only
        model = GPT(GPTConfig(vocab_size=50304, block_size=1024, n_layer=12, n_head=12,
                              n_embd=768))
    params = matmul_params(model)
    assert params == 124_475_904 - 1024 * 768  # all weights but the position lookup
    with torch.device("meta"):
        untied = GPT(GPTConfig(vocab_size=50304, block_size=1024, n_layer=12, n_head=12,
                               n_embd=768, tie_embeddings=False, positions="rotary"))
    assert matmul_params(untied) == params  # the head counted once, no position table
    # 6 N + 12 L T C = 6 x 123,689,472 + 12 x 12 x 1024 x 768
    assert flops_per_token(params, 12, 1024, 768) == 742_136_832 + 113_246_208
    assert flops_per_token(params, 12, 1024, 768) == pytest.approx(0.855e9, rel=1e-3)


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989e12),
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989e12),
    ("NVIDIA GH200 480GB", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("NVIDIA A10", 125e12),
    ("NVIDIA L40S", 362e12),
    ("NVIDIA L4", 121e12),
    ("NVIDIA GeForce RTX 4090", 165e12),
    ("Tesla T4", None),  # no bf16: not in the table
])
def test_peak_is_looked_up_by_the_most_specific_name(name: str, peak: float | None) -> None:
    assert peak_flops_of(name) == peak


def test_cpu_has_no_peak_and_then_no_mfu() -> None:
    assert device_peak_flops(torch.device("cpu")) is None
    assert mfu(1000.0, 1e9, None) is None
    assert mfu(400_000.0, 0.855e9, 989e12) == pytest.approx(0.3458, rel=1e-3)
