"""Load chat conversations from JSONL files and split them into train and held-out.

In:  JSONL files, one conversation a line, in the messages format
     ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``
     (other keys, such as ``"source"``, are ignored).
Out: :class:`Conversation` records (messages + the ``file:line`` they came from), counts of
     skipped lines per reason, and a deterministic train / held-out split decided by a hash
     of each conversation's content (so it does not depend on file order or on which other
     files are loaded).

A line that is not JSON means the file is broken: :class:`InputError` naming ``file:line``.
A well-formed line that is not a usable conversation is a counted skip with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat.errors import InputError

log = logging.getLogger("crawl2chat.chat")

ROLES = ("system", "user", "assistant")
# why a line was skipped; every reason is always reported (0 when it never happened)
SKIP_REASONS = ("not_messages", "bad_role", "empty_content", "bad_order", "no_assistant_turn",
                "duplicate")
_WARNINGS_PER_FILE = 5


@dataclass(frozen=True)
class Conversation:
    """One validated conversation: optional system turn, then user/assistant alternating."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs, content stripped
    origin: str  # "file:line", for messages that point back at the data

    @property
    def key(self) -> str:
        """A digest of the content: equal conversations have equal keys."""
        blob = json.dumps(self.messages, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass
class Loaded:
    conversations: list[Conversation] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def check(record: Any) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """``(messages, None)`` for a usable record, else ``((), reason)``."""
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        return (), "not_messages"
    pairs = []
    for message in messages:
        if not isinstance(message, dict):
            return (), "not_messages"
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            return (), "bad_role"
        if not isinstance(content, str) or not content.strip():
            return (), "empty_content"
        pairs.append((role, content.strip()))
    turns = pairs[1:] if pairs[0][0] == "system" else pairs
    # the template and the split at turn boundaries assume strict alternation
    expected = ("user", "assistant")
    if any(role != expected[i % 2] for i, (role, _) in enumerate(turns)):
        return (), "bad_order"
    if not any(role == "assistant" for role, _ in turns):
        return (), "no_assistant_turn"
    return tuple(pairs), None


def load_jsonl(path: Path, seen: set[str] | None = None) -> Loaded:
    """Read one JSONL file; ``seen`` (conversation keys) drops duplicates across files."""
    seen = set() if seen is None else seen
    loaded = Loaded()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read conversations: {err}") from err
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{number}: not valid JSON ({err.msg} at column "
                             f"{err.colno})") from err
        messages, reason = check(record)
        conversation = Conversation(messages, f"{path}:{number}")
        if reason is None and conversation.key in seen:
            reason = "duplicate"
        if reason is not None:
            loaded.skipped[reason] += 1
            if sum(loaded.skipped.values()) <= _WARNINGS_PER_FILE:
                log.warning("%s:%d: skipped conversation (%s)", path, number, reason)
            continue
        seen.add(conversation.key)
        loaded.conversations.append(conversation)
    hidden = sum(loaded.skipped.values()) - _WARNINGS_PER_FILE
    if hidden > 0:
        log.warning("%s: %d more conversations skipped (%s)", path, hidden,
                    ", ".join(f"{r}={n}" for r, n in sorted(loaded.skipped.items())))
    return loaded


def load_files(files: Iterable[Path]) -> Loaded:
    """All conversations of ``files`` in order, duplicates dropped, skips summed."""
    total = Loaded()
    seen: set[str] = set()
    for file in files:
        part = load_jsonl(Path(file), seen)
        total.conversations.extend(part.conversations)
        total.skipped.update(part.skipped)
    return total


def is_heldout(conversation: Conversation, fraction: float) -> bool:
    """Whether ``conversation`` belongs to the held-out share ``fraction`` (0..1)."""
    return int(conversation.key[:16], 16) / 16**16 < fraction


def split(conversations: Iterable[Conversation], fraction: float
          ) -> tuple[list[Conversation], list[Conversation]]:
    """``(train, heldout)``, each in input order."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    train: list[Conversation] = []
    heldout: list[Conversation] = []
    for conversation in conversations:
        (heldout if is_heldout(conversation, fraction) else train).append(conversation)
    return train, heldout
