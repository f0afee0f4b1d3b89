"""Load chat conversations from files and split them into train and held-out.

In:  conversation files described by :class:`Source` entries (path, format: messages,
     sharegpt or oasst; JSONL, gzipped JSONL or Parquet; read by chat/formats.py and
     chat/oasst.py), or plain messages-format JSONL files
     ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``
     (other keys, such as ``"source"``, are ignored).
Out: :class:`Conversation` records (messages + the ``file:line`` they came from + the
     index of their source), counts of skipped records per reason, and a deterministic
     train / held-out split decided by a hash of each conversation's content (so it does
     not depend on file order or on which other files are loaded).

A line that is not JSON, or a file that is not in its source's format, means the input is
broken: :class:`InputError` naming ``file:line`` (``file:row N`` in Parquet). A well-formed
record that is not a usable conversation is a counted skip with a warning.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from crawl2chat.chat.formats import FORMATS, SUFFIXES, Candidate, record_conversations
from crawl2chat.chat.oasst import MODES, tree_conversations
from crawl2chat.errors import ConfigError, InputError

log = logging.getLogger("crawl2chat.chat")

ROLES = ("system", "user", "assistant")
# why a line was skipped; every reason is always reported (0 when it never happened)
# (OASST's deleted, review_failed, not_ready and orphan count messages or trees, the rest
# records)
SKIP_REASONS = ("not_messages", "bad_role", "empty_content", "bad_order", "no_assistant_turn",
                "duplicate", "lang", "deleted", "review_failed", "not_ready", "orphan")
_WARNINGS_PER_FILE = 5


@dataclass(frozen=True)
class Conversation:
    """One validated conversation: optional system turn, then user/assistant alternating."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs, content stripped
    origin: str  # "file:line", for messages that point back at the data
    source: int = 0  # index of the Source it was loaded from
    group: str | None = None  # Candidate.group: held out or trained on together

    @property
    def key(self) -> str:
        """A digest of the content: equal conversations have equal keys."""
        blob = json.dumps(self.messages, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def split_key(self) -> str:
        """What the held-out draw hashes: the group if any, else the content."""
        return hashlib.sha256(self.group.encode()).hexdigest() if self.group else self.key

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass
class Source:
    """One entry of ``sft.data``: conversation files and how to read and weigh them."""

    path: str  # a file, a folder (its .jsonl, .jsonl.gz, .parquet files) or a glob
    format: str = "messages"  # messages | sharegpt | oasst
    lang: list[str] = field(default_factory=list)  # keep only these languages; [] = all
    oasst: str = "best"  # OASST trees: best (best-ranked reply per turn) | all_paths
    # times each training conversation is seen; a fraction adds one more pass over that
    # share of them (chosen by content hash), so 1.5 = all once, half of them twice
    weight: float = 1.0
    max: int | None = None  # cap on conversations taken from it (a hash sample)

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("sft.data: every source needs a path")
        if self.format not in FORMATS:
            raise ConfigError(f"sft.data {self.path}: format must be one of "
                              f"{', '.join(FORMATS)}, got {self.format!r}")
        if self.oasst not in MODES:
            raise ConfigError(f"sft.data {self.path}: oasst must be one of {', '.join(MODES)}, "
                              f"got {self.oasst!r}")
        if not self.weight > 0:
            raise ConfigError(f"sft.data {self.path}: weight must be > 0, got {self.weight}")
        if self.max is not None and self.max < 1:
            raise ConfigError(f"sft.data {self.path}: max must be >= 1 or null, got {self.max}")

    def files(self, root: Path) -> list[Path]:
        """The files it names, sorted; InputError when there are none."""
        where = root / self.path
        if where.is_file():
            return [where]
        if where.is_dir():
            found = [f for f in where.rglob("*") if f.is_file() and f.name.endswith(SUFFIXES)]
        else:
            found = [Path(f) for f in glob.glob(str(where), recursive=True) if Path(f).is_file()]
        if not found:
            raise InputError(f"sft.data: no conversation file at {self.path} "
                             f"(looked for {where}; files end with {', '.join(SUFFIXES)})")
        return sorted(found)


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


def candidates(path: Path, fmt: str, langs: Collection[str] = (), oasst_mode: str = "best"
               ) -> Iterator[Candidate]:
    """The conversations of one file in format ``fmt``, read by that format's reader;
    ``langs`` keeps only those languages (records that name no language are kept, except
    in OASST where every message does)."""
    if fmt == "oasst":
        yield from tree_conversations(path, langs, oasst_mode)
    else:
        yield from record_conversations(path, fmt, langs)


def _collect(found: Iterator[Candidate], label: Path, seen: set[str], source: int = 0
             ) -> Loaded:
    """Validate candidates, drop duplicates of ``seen`` keys, count and warn about skips."""
    loaded = Loaded()
    for candidate in found:
        reason = candidate.reason
        messages: tuple[tuple[str, str], ...] = ()
        if reason is None:
            messages, reason = check({"messages": candidate.messages})
        conversation = Conversation(messages, candidate.where, source, candidate.group)
        if reason is None and conversation.key in seen:
            reason = "duplicate"
        if reason is not None:
            loaded.skipped[reason] += 1
            if sum(loaded.skipped.values()) <= _WARNINGS_PER_FILE:
                log.warning("%s: skipped conversation (%s)", candidate.where, reason)
            continue
        seen.add(conversation.key)
        loaded.conversations.append(conversation)
    hidden = sum(loaded.skipped.values()) - _WARNINGS_PER_FILE
    if hidden > 0:
        log.warning("%s: %d more conversations skipped (%s)", label, hidden,
                    ", ".join(f"{r}={n}" for r, n in sorted(loaded.skipped.items())))
    return loaded


def load_jsonl(path: Path, seen: set[str] | None = None) -> Loaded:
    """Read one messages-format JSONL file; ``seen`` (conversation keys) drops duplicates
    across files."""
    if not Path(path).is_file():
        raise InputError(f"{path}: cannot read conversations: no such file")
    return _collect(candidates(Path(path), "messages"), path, set() if seen is None else seen)


def hash_sample(conversations: list[Conversation], count: int | None) -> list[Conversation]:
    """At most ``count`` of them (None: all), chosen by content hash, in their order: the
    same conversations whatever order the files list them in."""
    if count is None or len(conversations) <= count:
        return conversations
    keep = {c.key for c in sorted(conversations, key=lambda c: c.key)[:count]}
    return [c for c in conversations if c.key in keep]


def _relative_origins(conversations: list[Conversation], root: Path) -> list[Conversation]:
    """Origins name files relative to the project, so that outputs that quote them
    (``replies.jsonl``) are the same on every machine."""
    prefix = f"{root}{os.sep}"
    return [replace(c, origin=c.origin[len(prefix):]) if c.origin.startswith(prefix) else c
            for c in conversations]


def load_sources(sources: Iterable[Source], root: Path) -> Loaded:
    """All conversations of ``sources`` (paths relative to ``root``), in order, duplicates
    dropped across all of them, each source capped at its ``max``."""
    total = Loaded()
    seen: set[str] = set()
    for index, source in enumerate(sources):
        part = Loaded()
        for file in source.files(root):
            found = candidates(file, source.format, source.lang, source.oasst)
            loaded = _collect(found, file, seen, index)
            part.conversations += _relative_origins(loaded.conversations, root)
            part.skipped.update(loaded.skipped)
        total.conversations += hash_sample(part.conversations, source.max)
        total.skipped.update(part.skipped)
    return total


def repeats(conversation: Conversation, weight: float) -> int:
    """How often a training conversation of a source with ``weight`` is seen."""
    whole, share = int(weight), weight - int(weight)
    # digits 16..31 of the key: independent of the held-out draw (digits 0..15 of split_key)
    return whole + (int(conversation.key[16:32], 16) / 16**16 < share)


def is_heldout(conversation: Conversation, fraction: float) -> bool:
    """Whether ``conversation`` belongs to the held-out share ``fraction`` (0..1); all
    conversations of a group (one OASST tree) fall on the same side."""
    return int(conversation.split_key[:16], 16) / 16**16 < fraction


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
