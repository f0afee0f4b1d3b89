"""The command line explains itself and reports bad input without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crawl2chat.cli import build_parser

COMMANDS = ["run", "compose", "stage", "audit", "chat", "generate"]


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "raw crawl (WARC)" in out
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    out = capsys.readouterr().out
    assert f"usage: crawl2chat {command}" in out
    assert len(out.splitlines()) > 4


def test_audit_of_a_folder_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "crawl2chat.cli", "audit", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "has no manifest.json" in result.stderr
    assert "Traceback" not in result.stderr
