"""benchmarks/bench_train_gpu.py reads presets without Hydra: it must read what Hydra composes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from crawl2chat.config import compose

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_train_gpu", ROOT / "benchmarks" / "bench_train_gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("preset", ["gpt2_124m", "modern_124m", "demo"])
def test_preset_base_equals_the_hydra_composition(preset: str) -> None:
    assert _bench().preset_base(preset) == compose(ROOT, [f"experiment={preset}"])["base"]
