"""The inputs and the output file of ``crawl2chat synth``.

In:  a topics file (UTF-8 text, one topic a line; blank lines and ``#`` comments skipped)
     or the ``text`` stage's output folder (its ``documents-*.parquet`` shards: doc_id,
     url, text).
Out: :class:`Seed` records, and :class:`Output`, the JSONL file conversations are appended
     to: it knows which jobs are done and which conversations it holds (by a hash of their
     normalized text), repairs a half-written last line, and appends whole lines only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat.errors import InputError

log = logging.getLogger("crawl2chat.synth")
MIN_PASSAGE_CHARS = 200


@dataclass(frozen=True)
class Seed:
    """What one conversation is about: a topic, or a passage of a crawled document."""

    id: str  # "topic:<hash>" or "doc:<doc_id>"
    kind: str  # "topic" | "passage"
    text: str
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def provenance(self) -> dict[str, str]:
        return {"id": self.id, "kind": self.kind, **self.meta,
                **({"topic": self.text} if self.kind == "topic" else {})}


def _digest(text: str) -> str:
    return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:12]


def topic_seeds(path: Path) -> list[Seed]:
    """One seed per distinct topic line of ``path``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read topics: {err}") from err
    seeds: dict[str, Seed] = {}
    for number, line in enumerate(lines, start=1):
        topic = " ".join(line.split())
        if topic and not topic.startswith("#"):
            seed = Seed(f"topic:{_digest(topic)}", "topic", topic, {"line": f"{path}:{number}"})
            seeds.setdefault(seed.id, seed)
    return list(seeds.values())


def _passage(text: str, max_chars: int) -> str:
    """The document's opening paragraphs, cut at a paragraph end near ``max_chars``."""
    out = ""
    for paragraph in text.split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if out and len(out) + len(paragraph) > max_chars:
            break
        out = f"{out}\n{paragraph}" if out else paragraph
    return out[:max_chars]


def passage_seeds(path: Path, max_chars: int = 1200) -> list[Seed]:
    """One seed per document of ``path`` (a ``text`` output folder, read shard by shard,
    or one Parquet file) with at least ``MIN_PASSAGE_CHARS`` of text, in file order."""
    import pandas as pd

    from crawl2chat.text.shards import read_frame

    file = Path(path)
    try:
        docs = (read_frame(file, columns=["doc_id", "url", "text"]) if file.is_dir()
                else pd.read_parquet(file, columns=["doc_id", "url", "text"]))
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{file}: cannot read documents (need doc_id, url, text): {err}") \
            from err
    seeds = []
    for doc_id, url, text in docs.itertuples(index=False):
        passage = _passage(str(text), max_chars)
        if len(passage) >= MIN_PASSAGE_CHARS:
            seeds.append(Seed(f"doc:{doc_id}", "passage", passage,
                              {"doc_id": str(doc_id), "url": str(url)}))
    return seeds


def content_key(messages: list[dict[str, str]]) -> str:
    """Equal for conversations that differ only in case and white space."""
    norm = [(m["role"], " ".join(m["content"].lower().split())) for m in messages]
    return hashlib.sha256(json.dumps(norm, ensure_ascii=False).encode()).hexdigest()


class Output:
    """The synth JSONL file: done jobs, conversation keys, atomic line appends."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.jobs: set[str] = set()
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        if self.path.exists():
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def _load(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # tail: text after the last newline
        good = len(data) - len(tail)
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                job, messages = record["synth"]["job"], record["messages"]
            except (ValueError, KeyError, TypeError) as err:
                raise InputError(f"{self.path}:{number}: not a synth record ({err!r}); "
                                 "write to a new file or fix this line") from err
            self.jobs.add(job)
            self.keys.add(content_key(messages))
        if tail.strip():  # a crash in the middle of an append: that job is redone
            log.warning("%s: dropping a half-written last line (%d bytes)", self.path,
                        len(tail))
            with self.path.open("r+b") as f:
                f.truncate(good)

    def add(self, record: dict[str, Any]) -> bool:
        """Append ``record`` as one line unless its conversation is already there."""
        key = content_key(record["messages"])
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self.lock:
            if key in self.keys:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(line)
                while view:  # one write() nearly always; loop in case the OS splits it
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            self.keys.add(key)
            self.jobs.add(record["synth"]["job"])
            return True
