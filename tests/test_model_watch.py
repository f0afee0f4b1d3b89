"""A training run one can watch: step lines as it goes, samples at each validation, log
files written row by row, CPU MFU against a probed peak, and the lines in Prefect's
flow-run log."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from crawl2chat.model.config import TrainCfg
from crawl2chat.model.flops import probe_cpu_peak_flops, training_peak
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.progress import duration, step_line
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows

REPO = Path(__file__).resolve().parents[1]


class Killed(Exception):
    """Stands in for the process dying mid-run."""


def _fit(tokens: np.ndarray, out: Path, sample_fn=None, ckpt: Path | None = None,
         **changes: object) -> dict:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32))
    cfg = TrainCfg(**{"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2, "max_steps": 12,
                      "batch_size": 4, "eval_every": 6, "eval_batches": 1, "log_every": 3,
                      "progress_bar": False, **changes})
    out.mkdir(exist_ok=True)
    train = TokenWindows(tokens, 16, "random", count=60, seed=3)
    val = TokenWindows(tokens, 16, "strided", count=4)
    return fit(model, train, val, cfg, out, sample_fn=sample_fn, checkpoint_dir=ckpt)


def _rows(file: Path) -> list[dict]:
    return [json.loads(line) for line in file.read_text().splitlines()]


def test_step_lines_samples_and_files_appear_as_the_run_goes(
        periodic_tokens: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    seen: list[tuple[list[int], list[str]]] = []

    def sample_fn(model: GPT) -> list[str]:
        # mid-run: what the files and the console hold at this validation
        steps = [r["step"] for r in _rows(out / "train_log.jsonl")]
        seen.append((steps, [r.getMessage() for r in caplog.records]))
        return [f"sample at {steps[-1]}\nsecond line"]

    with caplog.at_level(logging.INFO, logger="crawl2chat"):
        metrics = _fit(periodic_tokens, out, sample_fn)
    # the files as they were at the validations of steps 6 and 12
    assert seen[0][0] == [3, 6, 6] and seen[1][0] == [3, 6, 6, 9, 12, 12]
    assert seen[0][1][-1] == "generating:"  # printed before the samples are taken
    first = seen[0][1]
    assert [m.split(" |")[0] for m in first if m.startswith("step ")] == [
        "step 3/12", "step 6/12", "step 6/12"]
    line = next(m for m in first if m.startswith("step 3/12"))
    for part in ("| loss ", "| grad norm ", "| lr ", " ms/step |", " tok/s |",
                 "% (CPU peak, probed) |", "| ETA "):
        assert part in line, (part, line)
    assert "step 6/12 | val loss " in first[-2]

    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("generating:") == 2
    after = messages[messages.index("generating:") + 1]
    assert after == "  sample at 6 second line"  # one line per sample
    # the finished files: the same rows as the history, in step order
    rows = _rows(out / "train_log.jsonl")
    assert [(r["step"], "val_loss" in r) for r in rows] == [
        (3, False), (6, False), (6, True), (9, False), (12, False), (12, True)]
    assert all(r["mfu_peak_source"] == "probed" and r["mfu"] > 0 for r in rows if "loss" in r)
    assert metrics["mfu_peak_source"] == "probed" and metrics["mfu"] > 0
    assert _rows(out / "train_samples.jsonl") == [
        {"step": 6, "samples": ["sample at 6\nsecond line"]},
        {"step": 12, "samples": ["sample at 12\nsecond line"]}]


def test_a_killed_run_keeps_its_log_and_its_resume_writes_each_row_once(
        periodic_tokens: np.ndarray, tmp_path: Path) -> None:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"

    def die(model: GPT) -> list[str]:
        raise Killed  # at step 6, after the checkpoint of step 4

    with pytest.raises(Killed):
        _fit(periodic_tokens, out, die, ckpt, checkpoint_every=4, log_every=1)
    # what the run logged before it died is there, the validation of step 6 included
    assert [r["step"] for r in _rows(out / "train_log.jsonl")] == [1, 2, 3, 4, 5, 6, 6]
    _fit(periodic_tokens, out, lambda m: ["s"], ckpt, checkpoint_every=4, log_every=1)
    rows = _rows(out / "train_log.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 13))
    assert [r["step"] for r in rows if "val_loss" in r] == [6, 12]
    assert [r["step"] for r in _rows(out / "train_samples.jsonl")] == [6, 12]


def test_the_console_gets_plain_lines_and_no_bar_when_stderr_is_not_a_terminal(
        tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import numpy as np, torch
        from pathlib import Path
        from crawl2chat import runtime
        runtime.configure()
        from crawl2chat.cli.console import console_log
        from crawl2chat.model.gpt import GPT, GPTConfig
        from crawl2chat.model.config import TrainCfg
        from crawl2chat.model.train import fit
        from crawl2chat.model.windows import TokenWindows
        tokens = np.tile(np.arange(8, 40, dtype=np.uint16), 100)
        model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=16))
        cfg = TrainCfg(max_steps=4, batch_size=4, eval_every=4, eval_batches=1, log_every=2,
                       progress_bar=True)
        with console_log():
            fit(model, TokenWindows(tokens, 16, "random", count=16),
                TokenWindows(tokens, 16, "strided", count=4), cfg, Path("."),
                sample_fn=lambda m: ["hello"])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(" |")[0] for line in lines if line.startswith("step ")] == [
        "step 2/4", "step 4/4", "step 4/4"]
    assert lines.index("generating:") < lines.index("  hello")
    assert "it/s" not in result.stderr and "\r" not in result.stderr  # no tqdm bar


def test_step_line_and_durations() -> None:
    row = {"step": 120, "loss": 4.12344, "grad_norm": 0.8123, "lr": 9.2e-4,
           "tokens_per_s": 48210.4, "mfu": 0.1234}
    assert step_line(row, 500, 0.085, "probed") == (
        "step 120/500 | loss 4.1234 | grad norm 0.812 | lr 9.2e-04 | 85 ms/step | "
        "48,210 tok/s | MFU 12.3% (CPU peak, probed) | ETA 32s")
    assert "MFU 12.3% |" in step_line(row, 500, 0.085, "table")
    del row["mfu"]
    assert "MFU" not in step_line(row, 500, 0.085, None)
    assert [duration(s) for s in (12, 151, 3900)] == ["12s", "2m31s", "1h05m"]


def test_the_cpu_peak_is_probed_once_and_leaves_the_rng_alone() -> None:
    state = torch.get_rng_state()
    started = time.perf_counter()
    peak = probe_cpu_peak_flops()
    assert 1e8 < peak < 1e14  # FLOP/s of a CPU, whatever its size
    assert torch.equal(torch.get_rng_state(), state)
    again = time.perf_counter()
    assert probe_cpu_peak_flops() == peak and time.perf_counter() - again < 0.01
    assert time.perf_counter() - started < 5
    assert training_peak(torch.device("cpu"), None) == (peak, "probed")
    assert training_peak(torch.device("cpu"), 1e12) == (1e12, "config")


def test_crawl2chat_lines_reach_the_prefect_flow_run_log(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import logging
        from crawl2chat import runtime
        runtime.configure()
        from prefect import flow
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        from prefect.context import get_run_context
        from prefect.logging.handlers import APILogWorker
        runtime.quiet_libraries()

        from crawl2chat.cli.console import console_log

        @flow
        def watched():
            logging.getLogger("crawl2chat").info("step 1/2 | loss 1.0")
            logging.getLogger("mlflow").info("library noise")
            return get_run_context().flow_run.id

        @flow
        def failing():
            raise ValueError("bad input")

        with console_log():
            run_id = watched()
            try:
                failing()
            except ValueError:
                pass
        APILogWorker.drain_all(timeout=10)
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        print("LOGS", sorted((log.name, log.message) for log in logs))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=400)
    assert result.returncode == 0, result.stderr
    assert "LOGS [('crawl2chat', 'step 1/2 | loss 1.0')]" in result.stdout
    assert "step 1/2 | loss 1.0" in result.stderr.splitlines()  # and on the console, once
    # the failure goes to its run's log, not to the console as a traceback
    assert "Traceback" not in result.stderr and "library noise" not in result.stderr


def test_a_probed_cpu_peak_rises_to_the_training_rate_but_a_table_peak_does_not() -> None:
    from crawl2chat.model.lit import Meter

    probed = Meter(tokens_per_step=100, flops_per_token=10.0, peak_flops=1000.0,
                   peak_source="probed")
    assert probed.utilisation(50) == 0.5
    assert probed.utilisation(300) == 1.0  # the probe understated the CPU
    assert probed.peak_flops == 3000.0 and probed.utilisation(150) == 0.5
    table = Meter(tokens_per_step=100, flops_per_token=10.0, peak_flops=1000.0,
                  peak_source="table")
    assert table.utilisation(300) == 3.0 and table.peak_flops == 1000.0
