"""Training precision that fits the machine: what ``precision: auto`` means.

In: the requested Lightning precision (``auto`` or an explicit value such as
``bf16-mixed`` or ``32-true``) and what the machine can do (:class:`Machine`). Out: a
:class:`PrecisionChoice`: the value to train with, why, and a warning when an explicit
value is known to be slow here.

``auto`` picks bf16 autocast where bf16 is native (CUDA GPUs with bf16, CPUs with AMX or
AVX-512-BF16 that oneDNN uses), fp16 with loss scaling on older GPUs, and fp32 elsewhere:
on a CPU without native bf16 (AVX2 only) a bf16 autocast matmul is emulated and was
measured 5-40x slower than fp32. Where the CPU's flags cannot be read, a short matmul
probe decides.
"""

from __future__ import annotations

import functools
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

AUTO = "auto"
# instruction-set flags (as /proc/cpuinfo names them) that make bf16 matmuls native
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_PROBE_MARGIN = 0.8  # bf16 must take under 80% of fp32's time to count as native


@dataclass(frozen=True)
class Machine:
    """What decides the precision: the accelerator and, on a CPU, its bf16 support."""

    accelerator: str  # "cuda", "cpu" or another Lightning accelerator ("mps", ...)
    cuda_bf16: bool = False  # the GPU computes in bf16 (Ampere and newer)
    cpu_capability: str = ""  # ATen's kernel level: "AVX512", "AVX2", "DEFAULT", ...
    onednn_bf16: bool = False  # oneDNN will run bf16 kernels (natively or emulated)
    cpu_flags: frozenset[str] | None = None  # None: the flags could not be read
    cpu_model: str = ""


@dataclass(frozen=True)
class PrecisionChoice:
    value: str  # a Lightning precision string
    reason: str  # one line for the log, the report, the manifest and MLflow
    warning: str | None = None  # an explicit value known to be slow on this machine


def choose(requested: str, machine: Machine,
           probe: Callable[[], bool] | None = None) -> PrecisionChoice:
    """The precision to train with on ``machine``; ``probe()`` answers "is bf16 faster
    than fp32 here?" when the CPU's flags are unknown."""
    native, why = _bf16_native(machine, probe)
    if requested != AUTO:
        return _explicit(requested, machine, native, why)
    if machine.accelerator == "cuda":
        if machine.cuda_bf16:
            return PrecisionChoice("bf16-mixed", "auto: the GPU computes in bf16")
        return PrecisionChoice("16-mixed", "auto: the GPU has no bf16; fp16 with loss scaling")
    if machine.accelerator == "cpu" and native:
        return PrecisionChoice("bf16-mixed", f"auto: {why}")
    return PrecisionChoice("32-true", f"auto: {why}")


def _explicit(requested: str, machine: Machine, native: bool, why: str) -> PrecisionChoice:
    if machine.accelerator == "cuda" and requested.startswith("bf16") and not machine.cuda_bf16:
        # the value cannot run as asked: the fp16 equivalent is the nearest that can
        value = requested.replace("bf16", "16")
        return PrecisionChoice(value, f"{requested} asked; the GPU has no bf16, so {value}")
    warning = None
    if machine.accelerator == "cpu" and requested.startswith("bf16") and not native:
        warning = (f"precision {requested} is slow here ({why}); "
                   f"precision=auto would train in 32-true")
    elif machine.accelerator == "cpu" and requested.startswith("16"):
        warning = f"precision {requested} (fp16) is emulated and slow on a CPU; use auto"
    return PrecisionChoice(requested, f"{requested} as configured", warning)


def _bf16_native(machine: Machine, probe: Callable[[], bool] | None) -> tuple[bool, str]:
    """Is bf16 native on this CPU, and the words that say why."""
    if machine.accelerator != "cpu":
        return machine.cuda_bf16, f"{machine.accelerator} accelerator"
    cpu = machine.cpu_model or "this CPU"
    if not machine.onednn_bf16:
        return False, (f"{cpu} has no native bf16 (ATen level {machine.cpu_capability or '?'},"
                       " oneDNN bf16 off): bf16 autocast would be emulated")
    if machine.cpu_flags is not None:
        found = [f for f in NATIVE_BF16_FLAGS if f in machine.cpu_flags]
        if found:
            return True, f"{cpu} has native bf16 ({', '.join(found)})"
        return False, f"{cpu} has no AMX or AVX-512-BF16: bf16 autocast would be emulated"
    if probe is None:
        return False, f"{cpu}: bf16 support unknown and not probed"
    faster = probe()
    return faster, (f"{cpu}: a matmul probe found bf16 autocast "
                    f"{'faster' if faster else 'not faster'} than fp32")


def resolve(requested: str) -> PrecisionChoice:
    """:func:`choose` for this process's machine (what Lightning's ``auto`` accelerator
    would pick), probing the CPU only when its flags are unknown."""
    return choose(requested, this_machine(), bf16_matmul_is_faster)


@functools.cache
def this_machine() -> Machine:
    if torch.cuda.is_available():
        return Machine("cuda", cuda_bf16=torch.cuda.is_bf16_supported())
    if torch.backends.mps.is_available():
        return Machine("mps")
    model, flags = read_cpuinfo()
    return Machine("cpu", cpu_capability=torch.backends.cpu.get_cpu_capability(),
                   onednn_bf16=bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
                   cpu_flags=flags, cpu_model=model or platform.processor() or platform.machine())


def read_cpuinfo() -> tuple[str, frozenset[str] | None]:
    """The CPU's model name and instruction-set flags from ``/proc/cpuinfo`` (x86's
    ``flags``, Arm's ``Features``); ``("", None)`` where there is no such file."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", None
    model, flags = "", None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() in ("flags", "Features") and flags is None:
            flags = frozenset(value.split())
    return model, flags


@functools.cache
def bf16_matmul_is_faster(size: int = 512, repeats: int = 5) -> bool:
    """Time one fp32 and one bf16-autocast matmul of ``size`` x ``size`` (best of
    ``repeats``, about 50 ms in all where bf16 is native)."""
    a, b = torch.randn(size, size), torch.randn(size, size)

    def best(bf16: bool) -> float:
        times = []
        for _ in range(repeats):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                start = time.perf_counter()
                a @ b
                times.append(time.perf_counter() - start)
        return min(times)

    best(True), best(False)  # warm-up: first calls pick kernels
    return best(True) < _PROBE_MARGIN * best(False)
