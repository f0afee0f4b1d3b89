"""Read conversation files in the public formats and turn each record into messages.

In:  JSONL (``.jsonl``, or gzipped ``.jsonl.gz``) and Parquet (``.parquet``) files in one of
     the formats
     - ``messages``: ``{"messages": [{"role": "system"|"user"|"assistant", "content"}]}``, as
       UltraChat-style datasets ship;
     - ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}``
       (``user`` / ``assistant`` accepted as ``from`` too);
     - ``oasst``: OpenAssistant message rows or trees (read with :func:`read_records` and
       flattened by chat/oasst.py).
Out: :class:`Candidate` records: where the conversation came from (``file:line`` or
     ``file:row N``, rows counted from 0 as pyarrow does), its messages in the messages
     format, or the reason it was skipped. Which reader a source's format takes, and the
     validation of the messages, are chat/data.py's.

A file that is not what its ``format`` says fails on its first record with an
:class:`InputError` naming ``file:line`` and the missing field; a line that is not JSON is
an :class:`InputError` too. Later records that lack a field are counted skips.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawl2chat.errors import InputError

FORMATS = ("messages", "sharegpt", "oasst")
SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
# ShareGPT speakers as the datasets spell them; anything else is a "bad_role" skip
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "system": "system"}
# the field that says a record is in a format, and what that field holds
_KEY_FIELD = {"messages": ("messages", 'a list of {"role", "content"}'),
              "sharegpt": ("conversations", 'a list of {"from", "value"}')}


@dataclass(frozen=True)
class Record:
    """One JSON line or Parquet row and where it is."""

    where: str
    data: Any


@dataclass(frozen=True)
class Candidate:
    """A conversation as read: messages (messages format) or the reason it has none."""

    where: str
    messages: list[dict[str, Any]] | None
    reason: str | None = None
    # conversations of one group fall on the same side of the held-out split (the paths of
    # one OASST tree share their opening turns); None: each conversation is its own group
    group: str | None = None


def read_records(path: Path) -> Iterator[Record]:
    """Every record of a JSONL, gzipped JSONL or Parquet file, in file order."""
    if path.name.endswith(".parquet"):
        yield from _parquet_rows(path)
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    yield Record(f"{path}:{number}", json.loads(line))
                except json.JSONDecodeError as err:
                    raise InputError(f"{path}:{number}: not valid JSON ({err.msg} at column "
                                     f"{err.colno})") from err
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise InputError(f"{path}: cannot read conversations: {err}") from err


def _parquet_rows(path: Path) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
        row = 0
        for batch in table.iter_batches(batch_size=4096):
            for data in batch.to_pylist():
                yield Record(f"{path}:row {row}", data)
                row += 1
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: cannot read Parquet conversations: {err}") from err


def language(data: Any) -> str | None:
    """The record's language code, when it names one (``lang`` or ``language``)."""
    if not isinstance(data, dict):
        return None
    value = data.get("lang", data.get("language"))
    return value if isinstance(value, str) else None


def sharegpt_messages(data: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
    """ShareGPT ``conversations`` as messages, or ``(None, reason)``."""
    turns = data.get("conversations")
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return None, "not_messages"
    messages = []
    for turn in turns:
        role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            return None, "bad_role"
        messages.append({"role": role, "content": turn.get("value")})
    return messages, None


def _require_format(record: Record, fmt: str) -> None:
    field, holds = _KEY_FIELD[fmt]
    if not isinstance(record.data, dict) or field not in record.data:
        raise InputError(f"{record.where}: no {field!r} field ({holds}): not a {fmt} record; "
                         f"set this source's format (one of {', '.join(FORMATS)})")


def record_conversations(path: Path, fmt: str, langs: Collection[str] = ()
                         ) -> Iterator[Candidate]:
    """One conversation per record of a file in format ``fmt`` (messages or sharegpt);
    ``langs`` keeps only those languages (records that name no language are kept)."""
    if fmt not in _KEY_FIELD:
        raise InputError(f"{path}: unknown conversation format {fmt!r}; "
                         f"formats are {', '.join(FORMATS)}")
    for n, record in enumerate(read_records(path)):
        if n == 0:
            _require_format(record, fmt)
        lang = language(record.data)
        if langs and lang is not None and lang not in langs:
            yield Candidate(record.where, None, "lang")
        elif fmt == "sharegpt" and isinstance(record.data, dict):
            messages, reason = sharegpt_messages(record.data)
            yield Candidate(record.where, messages, reason)
        else:
            messages = record.data.get("messages") if isinstance(record.data, dict) else None
            yield Candidate(record.where, messages if isinstance(messages, list) else None,
                            None if isinstance(messages, list) else "not_messages")
