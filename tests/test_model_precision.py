"""``precision: auto``: the choice per machine (faked CPUs and GPUs), explicit values with
their warnings, and a real two-step training run with ``auto``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.precision import Machine, choose, resolve, this_machine
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows

# an AMD EPYC with AVX2 only (oneDNN offers no bf16 there) and a Xeon with AMX
AVX2_CPU = Machine("cpu", cpu_capability="AVX2", onednn_bf16=False,
                   cpu_flags=frozenset({"avx", "avx2", "fma"}), cpu_model="AMD EPYC")
AMX_CPU = Machine("cpu", cpu_capability="AVX512", onednn_bf16=True,
                  cpu_flags=frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}),
                  cpu_model="Intel Xeon")
AVX512_BF16_CPU = Machine("cpu", cpu_capability="AVX512", onednn_bf16=True,
                          cpu_flags=frozenset({"avx512f", "avx512_bf16"}))
# AVX-512 without bf16 instructions: oneDNN emulates bf16 there
AVX512_ONLY_CPU = Machine("cpu", cpu_capability="AVX512", onednn_bf16=True,
                          cpu_flags=frozenset({"avx512f", "avx512bw"}))


def _never_probed() -> bool:
    raise AssertionError("the flags decide; no probe should run")


@pytest.mark.parametrize(("machine", "expected"), [
    (AVX2_CPU, "32-true"), (AVX512_ONLY_CPU, "32-true"),
    (AMX_CPU, "bf16-mixed"), (AVX512_BF16_CPU, "bf16-mixed"),
    (Machine("cuda", cuda_bf16=True), "bf16-mixed"),
    (Machine("cuda", cuda_bf16=False), "16-mixed"),
    (Machine("mps"), "32-true"),
])
def test_auto_picks_by_capability(machine: Machine, expected: str) -> None:
    choice = choose("auto", machine, _never_probed)
    assert choice.value == expected
    assert choice.reason.startswith("auto: ") and choice.warning is None


def test_auto_names_the_cpu_and_why_in_its_reason() -> None:
    slow = choose("auto", AVX2_CPU).reason
    assert "AMD EPYC" in slow and "no native bf16" in slow and "AVX2" in slow
    assert "amx_bf16" in choose("auto", AMX_CPU).reason


@pytest.mark.parametrize("faster", [True, False])
def test_unknown_cpu_flags_are_settled_by_the_probe(faster: bool) -> None:
    unknown = Machine("cpu", cpu_capability="AVX512", onednn_bf16=True, cpu_flags=None)
    calls: list[int] = []

    def probe() -> bool:
        calls.append(1)
        return faster

    choice = choose("auto", unknown, probe)
    assert calls == [1]
    assert choice.value == ("bf16-mixed" if faster else "32-true")
    assert "probe" in choice.reason


def test_explicit_values_are_honoured_with_a_warning_where_slow() -> None:
    slow = choose("bf16-mixed", AVX2_CPU)
    assert slow.value == "bf16-mixed" and "slow" in (slow.warning or "")
    assert "\n" not in (slow.warning or "")  # one line
    assert choose("bf16-mixed", AMX_CPU).warning is None
    assert choose("32-true", AVX2_CPU).warning is None
    assert "fp16" in (choose("16-mixed", AVX2_CPU).warning or "")
    # a GPU without bf16 cannot run bf16: its fp16 equivalent, said so
    old_gpu = choose("bf16-mixed", Machine("cuda", cuda_bf16=False))
    assert old_gpu.value == "16-mixed" and "no bf16" in old_gpu.reason


def test_this_machine_is_read_from_torch_and_the_cpu() -> None:
    machine = this_machine()
    assert machine.accelerator in ("cpu", "cuda", "mps")
    if machine.accelerator == "cpu":
        assert machine.cpu_capability == torch.backends.cpu.get_cpu_capability()
        assert resolve("auto").value in ("32-true", "bf16-mixed")


def test_two_steps_with_auto_train_in_the_chosen_precision(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=32))
    tokens = np.tile(np.arange(8, 40, dtype=np.uint16), 40)
    cfg = TrainCfg(precision="auto", max_steps=2, batch_size=4, warmup_steps=1,
                   eval_every=2, eval_batches=1, log_every=1, progress_bar=False)
    with caplog.at_level(logging.INFO, logger="crawl2chat"):
        metrics = fit(model, TokenWindows(tokens, 16, "random", 8, seed=0),
                      TokenWindows(tokens, 16, "strided", 4), cfg, tmp_path)
    expected = resolve("auto")
    assert metrics["steps"] == 2 and np.isfinite(metrics["val_loss"])
    assert (metrics["precision"], metrics["precision_reason"]) == (
        expected.value, expected.reason)
    assert f"precision {expected.value}" in caplog.text
