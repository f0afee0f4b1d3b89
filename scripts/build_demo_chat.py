"""Build data/demo/chat/dialogues.jsonl from two offline dialogue corpora on PyPI.

In:  the installed packages ``chatterbot-corpus`` (BSD-3-Clause; English yml files) and
     ``chitchat-dataset`` (MIT; one 39 MB dataset.json of student chats).
Out: one JSONL file, one conversation a line, in the messages format
     ``{"messages": [{"role": "user"|"assistant", "content": ...}, ...], "source": ...}``.

The sample is deterministic (conversations ordered by a hash of their id, fixed filters),
so re-running the script reproduces the committed file byte for byte; ``--check`` says
whether it still does. Usage::

    PYTHONPATH=src:. .venv/bin/python scripts/build_demo_chat.py [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parents[1] / "data/demo/chat/dialogues.jsonl"
CHITCHAT_CONVERSATIONS = 2000
MAX_TURN_CHARS = 400
# chatterbot files with real back-and-forth dialogues; in the other files a list holds a
# prompt and alternative answers, so only its first pair is a dialogue
DIALOGUE_FILES = {"conversations.yml", "computers.yml", "health.yml"}
# bot-persona files: they would teach a different identity ("I am written in Python",
# "I am inspired by Commander Data") than the assistant set's
PERSONA_FILES = {"ai.yml", "botprofile.yml"}
# personal data and crude language are not what a demo assistant should learn
_DROP = re.compile(
    r"https?://|www\.|\S+@\S+\.\w+|\d[\d\s().-]{6,}\d"
    r"|\b(fuck\w*|shit\w*|bitch\w*|dick|porn\w*|sex\w*|nude\w*|kill\w*|suicid\w*|drunk)\b",
    re.IGNORECASE)
# chat-room laughter: 1 in 7 chitchat replies has some, and an assistant trained on it
# answers "hahaha" to everything
_LAUGHTER = re.compile(r"\b(a?h[ae]h[ae](h[ae])*h?|lol+|lmao|rofl|xd+)\b", re.IGNORECASE)


def _clean(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]


def _messages(turns: list[str]) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": turn}
            for i, turn in enumerate(turns)]


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {name} is not installed: pip install the project first")
    return Path(spec.origin).parent


def chatterbot() -> list[dict[str, Any]]:
    """Every usable English chatterbot conversation, by file name then position."""
    out = []
    for file in sorted((_package_dir("chatterbot_corpus") / "data/english").glob("*.yml")):
        if file.name in PERSONA_FILES:
            continue
        for index, conv in enumerate(yaml.safe_load(file.read_text())["conversations"]):
            turns = [t.strip() if "```" in t else _clean(t) for t in conv if isinstance(t, str)]
            turns = turns[:6] if file.name in DIALOGUE_FILES else turns[:2]
            turns = turns[: len(turns) // 2 * 2]  # end on an assistant turn
            if len(turns) >= 2 and all(turns):
                out.append({"messages": _messages(turns),
                            "source": f"chatterbot-corpus:english/{file.name}#{index}"})
    return out


def _join_utterances(utterances: list[dict[str, Any]]) -> str:
    """One turn from a speaker's consecutive chat lines, keeping sentence boundaries."""
    parts = [" ".join(str(u.get("text", "")).split()) for u in utterances]
    parts = [p if p[-1:] in ".!?,;:" or not p[-1:].isalnum() else p + "." for p in parts if p]
    joined = " ".join(parts)
    return _clean(joined[:-1] if joined.endswith(".") and len(parts) == 1 else joined)


def chitchat(limit: int) -> list[dict[str, Any]]:
    """A deterministic sample of ``limit`` chitchat openings of 2, 4 or 6 turns."""
    data = json.loads((_package_dir("chitchat_dataset") / "dataset.json").read_text())
    out = []
    for conv_id in sorted(data, key=lambda k: hashlib.sha256(k.encode()).hexdigest()):
        groups = data[conv_id]["messages"]
        senders = [g[0]["sender"] if g else None for g in groups]
        if any(a == b for a, b in itertools.pairwise(senders)):
            continue  # not a strict back-and-forth
        want = 2 + 2 * (int(hashlib.sha256(conv_id.encode()).hexdigest(), 16) % 3)
        turns: list[str] = []
        for group in groups[:want]:
            turn = _join_utterances(group)
            if (not turn or len(turn) > MAX_TURN_CHARS or _DROP.search(turn)
                    or _LAUGHTER.search(turn)):
                break
            turns.append(turn)
        turns = turns[: len(turns) // 2 * 2]
        if len(turns) >= 2:
            out.append({"messages": _messages(turns), "source": f"chitchat-dataset:{conv_id}"})
        if len(out) == limit:
            break
    return out


def build() -> str:
    lines: dict[str, str] = {}  # messages -> line; the corpora repeat some conversations
    for record in chatterbot() + chitchat(CHITCHAT_CONVERSATIONS):
        key = json.dumps(record["messages"], ensure_ascii=False)
        lines.setdefault(key, json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed file differs from a fresh build")
    args = parser.parse_args()
    text = build()
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print(f"{OUT}: {'up to date' if same else 'differs from a fresh build'}")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count(chr(10))} conversations, {len(text.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
