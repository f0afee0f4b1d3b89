"""Processes left behind by a killed stage: a zombie counts as dead, and a process marked
as started by a stage process that is gone is stopped, one whose stage runs is not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawl2chat import orphans

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 60
    while _state(child.pid) != "Z":  # exited; its status not collected yet
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        assert not orphans.alive(child.pid)
    finally:
        child.wait()
    assert orphans.alive(os.getpid())


def test_processes_of_a_gone_stage_process_are_stopped_others_spared() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a stage process that was killed: its pid now names nobody
    orphan = subprocess.Popen(SLEEPER, env={**os.environ, orphans.OWNER_ENV: str(gone.pid)})
    before = os.environ.get(orphans.OWNER_ENV)
    with orphans.own_children():  # started by this live process
        spared = subprocess.Popen(SLEEPER)
    assert os.environ.get(orphans.OWNER_ENV) == before  # only what is started inside
    try:
        stopped = orphans.stop_orphans()
        assert orphan.pid in stopped and spared.pid not in stopped
        assert orphan.wait(timeout=30) == -9
        assert spared.poll() is None
    finally:
        for proc in (orphan, spared):
            proc.kill()
            proc.wait()
