"""What every benchmark shares: the machine it ran on, and repeated, interleaved timing.

In: nothing (the machine is read from /proc/cpuinfo via crawl2chat, ``lscpu`` and torch), or named
zero-argument callables to time. Out: :func:`machine` (CPU model, core count, the
vector/matrix instruction-set flags that decide speed, GPU name if any), :func:`rounds`
(each case run once per round, the order rotated every round so machine load and warm
caches hit every case alike, after one untimed warm-up round), :func:`spread` (min /
median / max of a case's times) and :func:`ratio` (a ratio of medians with the range of
the per-round ratios). Figures from a shared machine are noisy: read the spread, not
one number.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

# the flags that decide what a CPU's kernels can do: AVX2, AVX-512 (bf16 among them), AMX
_ISA = re.compile(r"^(avx2|avx512\w*|amx\w*|fma)$")


def _lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            return value.strip()
    return ""


def _gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def machine() -> dict[str, Any]:
    """The machine as a JSON-ready dict: CPU model and flags, cores, GPU, Python."""
    # imported here, not at the top: worker processes that a benchmark spawns re-import
    # the benchmark's main module, and torch would add a second to every worker's start
    from crawl2chat.model.precision import read_cpuinfo

    model, flags = read_cpuinfo()
    flags = flags or frozenset()
    isa = sorted(f for f in flags if _ISA.match(f))
    return {"cpu_model": _lscpu_model() or model or platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "cpu_isa_flags": isa,
            "avx512": any(f.startswith("avx512") for f in isa),
            "amx": any(f.startswith("amx") for f in isa),
            "gpu": _gpu(), "python": platform.python_version(),
            "note": "a shared machine: timings vary with other load; see each spread"}


def rounds(cases: Mapping[str, Callable[[], Any]], repeats: int, warmup: bool = True,
           ) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """Seconds per case per timed round, and what the case returned in each.

    Round ``r`` runs the cases in the order rotated by ``r`` (a, b, c; b, c, a; ...), so
    no case always runs first or last. ``warmup`` adds an untimed first round that
    every case goes through in the same way (imports, model files, caches).
    """
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(-1 if warmup else 0, repeats):
        shift = max(r, 0) % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            result = cases[name]()
            if r >= 0:
                times[name].append(time.perf_counter() - started)
                results[name].append(result)
    return times, results


def spread(values: list[float], digits: int = 3) -> dict[str, float | int]:
    """min / median / max of repeated measurements, and how many there were."""
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits), "n": len(values)}


def ratio(numerator: list[float], denominator: list[float], digits: int = 2,
          ) -> dict[str, float]:
    """median(numerator) / median(denominator), with the lowest and highest ratio of the
    same rounds (paired measurements, taken close in time)."""
    per_round = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return {"of_medians": round(statistics.median(numerator) / statistics.median(denominator),
                                digits),
            "round_min": round(min(per_round), digits), "round_max": round(max(per_round), digits)}
