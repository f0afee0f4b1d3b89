"""Model FLOPs utilisation: how much of the hardware's peak a training run uses.

In: a model's shape, a measured token rate and a device. Out: FLOPs per token
(the PaLM / nanoGPT estimate: ``6 * params`` for the matmuls forward and backward plus
``12 * layers * context * width`` for attention), the device's peak from a table of
dense bf16 tensor-core figures (vendor data sheets, no sparsity), and their ratio.
A CPU has no data-sheet figure: :func:`training_peak` measures one instead (a short
fp32 matmul probe, once per process) and says so, since a probed peak is what this
machine reaches, not what it could. A GPU missing from the table has no peak: MFU is
then not reported unless the ``peak_flops`` setting supplies one.
"""

from __future__ import annotations

import functools
import time

import torch

from crawl2chat.model.gpt import GPT

# Dense bf16 peak per device, by a substring of torch.cuda.get_device_name(); matched
# longest first so "H100 PCIe" wins over "H100" and "L40S" over "L4".
PEAK_BF16_FLOPS: dict[str, float] = {
    "B200": 2250e12,
    "H200": 989e12,  # also GH200
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM: "NVIDIA H100 80GB HBM3"
    "A100": 312e12,
    "A10": 125e12,
    "L40S": 362e12,
    "L4": 121e12,
    "RTX 4090": 165e12,  # fp32 accumulation, as training uses
    "RTX 3090": 71e12,
    "MI300X": 1307e12,
}


def flops_per_token(params: int, n_layer: int, block_size: int, n_embd: int) -> float:
    """Training FLOPs (forward + backward) per token of a GPT with ``params`` weights."""
    return 6.0 * params + 12.0 * n_layer * block_size * n_embd


def matmul_params(model: GPT) -> int:
    """The weights that take part in matmuls: all but lookup-only embeddings (learned
    positions; the input side of an untied vocabulary, whose head is counted)."""
    n = model.num_params()
    if "wpe" in model.transformer:
        n -= model.transformer.wpe.weight.numel()
    if not model.config.tie_embeddings:
        n -= model.transformer.wte.weight.numel()
    return n


def peak_flops_of(device_name: str) -> float | None:
    """The table's dense bf16 peak for a device name, or None if it is not listed."""
    name = device_name.lower()
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key.lower() in name:
            return PEAK_BF16_FLOPS[key]
    return None


def device_peak_flops(device: torch.device) -> float | None:
    """Peak of ``device`` (a CUDA device's name looked up in the table); None for a CPU."""
    if device.type != "cuda":
        return None
    return peak_flops_of(torch.cuda.get_device_name(device))


@functools.cache
def probe_cpu_peak_flops(size: int = 1024, seconds: float = 0.5) -> float:
    """fp32 matmul FLOP/s this process reaches on the CPU: the best of repeated
    ``size`` x ``size`` products over about ``seconds``; measured once, then cached.
    Its own generator: the probe leaves the global RNG (weights, dropout) untouched."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    a @ b  # warm-up: thread pool and caches
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        elapsed = time.perf_counter() - started
        best = max(best, 4 * 2 * size**3 / elapsed)
        if started + elapsed >= deadline:
            return best


def training_peak(device: torch.device, configured: float | None) -> tuple[float | None,
                                                                           str | None]:
    """The peak FLOP/s that MFU is measured against, and where it comes from:
    ``"config"`` (the ``peak_flops`` setting), ``"table"`` (a GPU's data-sheet figure),
    ``"probed"`` (a CPU's measured fp32 rate); ``(None, None)`` for an unlisted GPU."""
    if configured:
        return configured, "config"
    if device.type == "cpu":
        return probe_cpu_peak_flops(), "probed"
    peak = device_peak_flops(device)
    return (peak, "table") if peak else (None, None)


def mfu(tokens_per_s: float, flops_per_token_: float, peak_flops: float | None) -> float | None:
    """Achieved FLOP/s over the peak (of all devices together), or None without a peak."""
    if not peak_flops:
        return None
    return tokens_per_s * flops_per_token_ / peak_flops
