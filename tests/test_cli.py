"""The command line: exactly these commands, each parsing its typical arguments into what
its handler reads; help for each; bad input reported without a traceback. Parsing only:
no command is run except a cheap audit of an empty folder."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crawl2chat import paths
from crawl2chat.cli import build_parser

COMMANDS = {"run", "compose", "stage", "audit", "report", "chat", "generate", "next-token",
            "eval", "export", "serve", "synth", "tokenize", "extract", "langid", "pii"}

# a typical command line per command, and what the parsed arguments must hold
TYPICAL: list[tuple[list[str], dict[str, Any]]] = [
    (["run", "experiment=smoke", "base.train.max_steps=10", "--force"],
     {"overrides": ["experiment=smoke", "base.train.max_steps=10"], "force": True}),
    (["run"], {"overrides": [], "force": False}),
    (["compose", "experiment=demo"], {"overrides": ["experiment=demo"], "saved": False}),
    (["compose", "--saved"], {"overrides": [], "saved": True}),
    (["stage", "tokens"], {"name": "tokens", "keep_failed": False}),
    (["stage", "text", "--keep-failed"], {"name": "text", "keep_failed": True}),
    (["report", "--run", "abc", "-o", "card.html"], {"run": "abc", "output": "card.html"}),
    (["report"], {"run": None, "output": None}),
    (["audit", "models/sft", "--json"], {"model_dir": "models/sft", "json": True}),
    (["chat", "models/sft", "-m", "Hello", "--temperature", "0", "--seed", "3"],
     {"model_dir": "models/sft", "message": "Hello", "temperature": 0.0, "seed": 3,
      "max_new_tokens": 200, "top_k": 50}),
    (["chat", "models/sft"], {"message": None}),
    (["generate", "models/base", "-p", "Once upon", "--top-p", "0.9", "--max-new-tokens", "20"],
     {"model_dir": "models/base", "prompt": "Once upon", "top_p": 0.9, "max_new_tokens": 20,
      "temperature": 0.8}),
    (["generate", "models/base", "--prompt-file", "p.txt", "-n", "3", "--stop", "\n\n",
      "--stop", "Human:", "--show-probs", "5", "--few-shot", "prompts/few_shot/en_ko_words.yaml"],
     {"prompt_file": "p.txt", "num_samples": 3, "stop": ["\n\n", "Human:"], "show_probs": 5,
      "few_shot": "prompts/few_shot/en_ko_words.yaml", "seed": None}),
    (["next-token", "models/base", "-p", "The cat", "--top", "5"],
     {"model_dir": "models/base", "prompt": "The cat", "top": 5}),
    (["export", "models/base", "out/hf"], {"model_dir": "models/base", "out_dir": "out/hf"}),
    (["eval", "models/base", "--task", "hellaswag", "--data", "hs.jsonl", "--limit", "10"],
     {"model_dir": "models/base", "task": "hellaswag", "data": "hs.jsonl", "limit": 10}),
    (["serve", "models/sft", "--port", "9000", "--max-concurrency", "4"],
     {"model_dir": "models/sft", "port": 9000, "max_concurrency": 4, "host": "127.0.0.1",
      "max_tokens": 512, "model_name": None}),
    (["synth", "--endpoint", "http://127.0.0.1:8000/v1", "--model", "teacher", "--topics",
      "topics.txt", "--out", "synth.jsonl", "--n", "5"],
     {"endpoint": "http://127.0.0.1:8000/v1", "model": "teacher", "topics": "topics.txt",
      "passages": None, "out": "synth.jsonl", "n": 5, "turns": 2, "rps": 1.0}),
    (["tokenize", "Hello world", "--json"],
     {"text": "Hello world", "json": True, "model": "data/tokens"}),
    (["extract", "page.html"], {"file": "page.html"}),
    (["langid"], {}),
    (["pii", "--mode", "fake", "--lang", "en"], {"mode": "fake", "lang": "en"}),
]

REFUSED = [
    ["stage", "nosuchstage"],
    ["generate", "models/base"],  # no --prompt
    ["eval", "models/base", "--task", "piqa", "--data", "x.jsonl"],  # no such task
    ["generate", "models/base", "-p", "x", "--top-p", "0"],
    ["generate", "models/base", "-p", "x", "--show-probs", "0"],
    ["next-token", "models/base"],  # no --prompt
    ["serve", "models/sft", "--max-tokens", "0"],
    ["synth", "--endpoint", "e", "--model", "m", "--topics", "t", "--passages", "p",
     "--out", "o"],
    ["pii", "--mode", "scramble"],
    ["nosuchcommand"],
    [],
]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_commands_are_exactly_these() -> None:
    assert set(_commands(build_parser())) == COMMANDS
    assert {argv[0] for argv, _ in TYPICAL} == COMMANDS  # each one is parsed below


@pytest.mark.parametrize(("argv", "expected"), TYPICAL, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else "")
def test_a_typical_command_line_parses_into_its_handler(argv: list[str],
                                                        expected: dict[str, Any]) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]
    assert args.func.__name__ == f"_cmd_{argv[0].replace('-', '_')}"
    assert {key: getattr(args, key) for key in expected} == expected


def test_stage_takes_every_pipeline_stage() -> None:
    for stage in paths.STAGES:
        assert build_parser().parse_args(["stage", stage]).name == stage


@pytest.mark.parametrize("argv", REFUSED, ids=lambda v: " ".join(v) or "nothing")
def test_bad_arguments_are_refused_with_usage(argv: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "usage: crawl2chat" in capsys.readouterr().err


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "raw crawl (WARC)" in out
    listed = {line.split()[0] for line in out.splitlines()
              if line.startswith("    ") and line.split()[0] in COMMANDS}
    assert listed == COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: crawl2chat {command}" in out
    assert len(out.splitlines()) > 4


def test_audit_of_a_folder_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "crawl2chat.cli", "audit", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "has no manifest.json" in result.stderr
    assert "Traceback" not in result.stderr
