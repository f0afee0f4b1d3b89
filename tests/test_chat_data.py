"""Loading conversations: validation, counted skips, broken files, the held-out split."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest

from crawl2chat.chat.data import (
    SKIP_REASONS,
    Loaded,
    Source,
    check,
    is_heldout,
    load_jsonl,
    load_sources,
    split,
)
from crawl2chat.errors import InputError


def _load(files: list[Path]) -> Loaded:
    """Messages-format files as one sft.data list would load them."""
    return load_sources([Source(path=str(f)) for f in files], Path("/"))


REPO = Path(__file__).resolve().parents[1]


def _line(*turns: tuple[str, str], **extra: object) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns], **extra})


GOOD = _line(("user", "Hi"), ("assistant", "Hello!"))
LINES = [
    GOOD,
    _line(("system", "Be brief."), ("user", " What is 2+2? "), ("assistant", "4."),
          source="hand"),
    "",
    _line(("user", "Anyone there?")),                               # 4: no assistant turn
    _line(("user", "Hi"), ("robot", "Beep")),                       # 5: bad role
    _line(("user", "Hi"), ("assistant", "   ")),                    # 6: empty content
    _line(("user", "Hi"), ("user", "Hi?"), ("assistant", "Yes")),   # 7: bad order
    _line(("user", "Hi"), ("system", "Late"), ("assistant", "Yo")),  # 8: system not first
    _line(("assistant", "I start"), ("user", "Ok")),                # 9: bad order
    json.dumps({"text": "not a conversation"}),                     # 10: not messages
    json.dumps(["user", "Hi"]),                                     # 11: not messages
    GOOD,                                                           # 12: duplicate
    _line(("user", "Hi"), ("assistant", 7)),                        # 13: empty content
]


def _write(tmp_path: Path, lines: list[str], name: str = "chat.jsonl") -> Path:
    file = tmp_path / name
    file.write_text("\n".join(lines) + "\n")
    return file


def test_valid_conversations_load_with_their_origin_and_stripped_text(tmp_path: Path) -> None:
    file = _write(tmp_path, LINES)
    loaded = load_jsonl(file)
    assert [c.origin for c in loaded.conversations] == [f"{file}:1", f"{file}:2"]
    assert loaded.conversations[1].as_messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."}]


def test_bad_records_are_counted_skips_with_warnings_naming_file_and_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = _write(tmp_path, LINES)
    with caplog.at_level(logging.WARNING, logger="crawl2chat.chat"):
        loaded = load_jsonl(file)
    assert dict(loaded.skipped) == {"no_assistant_turn": 1, "bad_role": 1, "empty_content": 2,
                                    "bad_order": 3, "not_messages": 2, "duplicate": 1}
    assert set(loaded.skipped) <= set(SKIP_REASONS)
    assert f"{file}:4: skipped conversation (no_assistant_turn)" in caplog.text
    # five warnings per file, then one summary line instead of a wall of warnings
    assert len(caplog.records) == 6
    assert "5 more conversations skipped" in caplog.records[-1].getMessage()


def test_malformed_json_raises_naming_file_and_line(tmp_path: Path) -> None:
    file = _write(tmp_path, [GOOD, GOOD.replace("Hi", "Hey"), '{"messages": [', GOOD])
    with pytest.raises(InputError, match=rf"{file}:3: not valid JSON"):
        load_jsonl(file)


def test_missing_file_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothere\.jsonl"):
        _load([tmp_path / "nothere.jsonl"])


def test_duplicates_are_dropped_across_files(tmp_path: Path) -> None:
    a = _write(tmp_path, [GOOD], "a.jsonl")
    b = _write(tmp_path, [GOOD, _line(("user", "Bye"), ("assistant", "Bye!"))], "b.jsonl")
    loaded = _load([a, b])
    assert [c.origin for c in loaded.conversations] == [f"{a}:1", f"{b}:2"]
    assert loaded.skipped["duplicate"] == 1


def test_check_returns_the_reason() -> None:
    assert check({"messages": []}) == ((), "not_messages")
    assert check({"messages": [{"role": "user", "content": "x"}]}) == ((), "no_assistant_turn")
    assert check({"messages": [{"role": "user", "content": "x"},
                               {"role": "assistant", "content": "y"}]})[1] is None


def test_split_is_deterministic_by_content_not_by_order(tmp_path: Path) -> None:
    lines = [_line(("user", f"Question {n}?"), ("assistant", f"Answer {n}.")) for n in range(400)]
    conversations = load_jsonl(_write(tmp_path, lines)).conversations
    train, heldout = split(conversations, 0.1)
    again_train, again_heldout = split(list(reversed(conversations)), 0.1)
    assert {c.key for c in heldout} == {c.key for c in again_heldout}
    assert {c.key for c in train} == {c.key for c in again_train}
    assert not {c.key for c in train} & {c.key for c in heldout}
    assert len(train) + len(heldout) == 400
    assert 20 <= len(heldout) <= 60  # about 10%
    assert [c.origin for c in train] == sorted((c.origin for c in train),
                                               key=lambda o: int(o.rsplit(":", 1)[1]))
    assert split(conversations, 0.0) == (conversations, [])
    assert all(is_heldout(c, 0.1) for c in heldout)
    with pytest.raises(ValueError, match="held-out fraction"):
        split(conversations, 1.0)


def test_bundled_demo_data_loads_without_skips() -> None:
    files = sorted((REPO / "data/demo/chat").glob("*.jsonl"))
    assert {f.name for f in files} == {"assistant.jsonl", "assistant_templated.jsonl",
                                       "dialogues.jsonl", "eval_harmful.jsonl",
                                       "eval_benign.jsonl", "eval_identity.jsonl"}
    files = [f for f in files if not f.name.startswith("eval_")]
    loaded = _load(files)
    assert not loaded.skipped, loaded.skipped
    assert len(loaded.conversations) > 2500
    _, heldout = split(loaded.conversations, 0.1)
    assert 0.07 < len(heldout) / len(loaded.conversations) < 0.13


def test_dialogues_file_is_exactly_what_the_build_script_writes() -> None:
    spec = importlib.util.spec_from_file_location("build_demo_chat",
                                                  REPO / "scripts/build_demo_chat.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (REPO / "data/demo/chat/dialogues.jsonl").read_text() == script.build()
