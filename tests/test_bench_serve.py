"""A small run of benchmarks/bench_serve.py: 32 clients against --max-concurrency 2 on a
real ``crawl2chat serve``: only 200s and 429s, /health answers, no slot leaks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_many_clients_get_200_or_429_and_every_slot_comes_back() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark imports _machine
    try:
        spec = importlib.util.spec_from_file_location("bench_serve",
                                                      ROOT / "benchmarks/bench_serve.py")
        assert spec and spec.loader
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        result = bench.run(clients=32, requests=96, slots=2)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert result["errors"] == 0, result["error_examples"]
    assert set(result["status"]) <= {"200", "429"} and sum(result["status"].values()) == 96
    assert result["status"].get("200", 0) >= 2 and result["status"].get("429", 0) >= 1
    assert result["slots_released"]  # hung-up streams included
    assert result["health"]["n"] >= 1 and result["health"]["max_ms"] < 5000
    assert result["latency_200"]["p95_ms"] >= result["latency_200"]["p50_ms"] > 0
