"""Flatten OpenAssistant (OASST1) message trees into conversations.

In:  one file of the OASST1 release, JSONL(.gz) or Parquet, in either layout
     - message rows (``*.messages.jsonl.gz``, the Hugging Face Parquet): one message a
       record with ``message_id``, ``parent_id`` (null or absent for a tree's prompt),
       ``message_tree_id``, ``role`` (``prompter`` | ``assistant``), ``text``, ``lang``,
       ``rank`` (0 = best among its siblings; null when unranked), ``deleted``,
       ``review_result``, ``tree_state``, ... (other fields are ignored);
     - trees (``*.trees.jsonl.gz``): ``{message_tree_id, tree_state, prompt: {message...,
       replies: [message..., replies: [...]]}}``.
Out: :class:`~crawl2chat.chat.formats.Candidate` conversations (prompter -> user), each
     ending on an assistant message, and counted skips.

``mode="best"`` follows the best-ranked reply at every turn (one conversation per tree);
``mode="all_paths"`` gives every root-to-leaf path, each cut after its last assistant
message (identical cuts once), all of one tree in one held-out group
(``Candidate.group``). A deleted message, or one that failed review
(``review_result: false``), is dropped with everything below it. Trees whose
``tree_state`` is not ``ready_for_export`` (aborted, still growing) and trees whose prompt's
``lang`` is not in ``langs`` are skipped whole; a tree shares its prompt's language.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat.chat.formats import Candidate, Record, read_records
from crawl2chat.errors import InputError

MODES = ("best", "all_paths")
ROLES = {"prompter": "user", "assistant": "assistant"}
READY = "ready_for_export"
_REQUIRED = ("message_id", "role", "text")


@dataclass
class _Node:
    id: str
    parent: str | None
    role: str
    text: str
    lang: str | None
    rank: float | None
    tree_state: str | None
    where: str
    order: int  # position in the file: the tie-break between equally ranked replies
    children: list[_Node] = field(default_factory=list)


def _node(data: Any, where: str, parent: str | None, tree_state: str | None, order: int
          ) -> _Node:
    if not isinstance(data, dict):
        raise InputError(f"{where}: an OASST message must be an object, got "
                         f"{type(data).__name__}")
    for name in _REQUIRED:
        if not isinstance(data.get(name), str):
            raise InputError(f"{where}: OASST message field {name!r} is missing or not a "
                             f"string (got {data.get(name)!r})")
    rank = data.get("rank")
    if isinstance(rank, float) and math.isnan(rank):  # null ranks written through pandas
        rank = None
    return _Node(data["message_id"], parent, data["role"], data["text"], data.get("lang"),
                 rank, data.get("tree_state", tree_state), where, order)


def _drop_reason(data: dict[str, Any]) -> str | None:
    if data.get("deleted") is True:
        return "deleted"
    if data.get("review_result") is False:
        return "review_failed"
    if data.get("role") not in ROLES:
        return "bad_role"
    return None


def _messages(records: Iterator[Record]) -> Iterator[tuple[_Node, str | None]]:
    """Every message as a node with the reason it is dropped (None: kept), rows or trees."""
    order = 0
    for record in records:
        data = record.data
        if isinstance(data, dict) and isinstance(data.get("prompt"), dict) \
                and "message_id" not in data:
            stack = [(data["prompt"], None, f"{record.where} (tree)")]
            while stack:  # depth first; trees nest replies under their parent
                message, parent, where = stack.pop()
                node = _node(message, where, parent, data.get("tree_state"), order)
                order += 1
                yield node, _drop_reason(message)
                replies = message.get("replies") or []
                stack += [(r, node.id, where) for r in reversed(replies)]
        else:
            # exports written with exclude_none leave out a prompt's null parent_id
            parent = data.get("parent_id") if isinstance(data, dict) else None
            node = _node(data, record.where, parent, None, order)
            order += 1
            yield node, _drop_reason(data)


def _rank_key(node: _Node) -> tuple[bool, float, int]:
    return node.rank is None, node.rank if node.rank is not None else 0.0, node.order


def _paths(root: _Node, mode: str) -> list[list[_Node]]:
    if mode == "best":
        path = [root]
        while path[-1].children:
            path.append(min(path[-1].children, key=_rank_key))
        return [path]
    paths, stack = [], [[root]]
    while stack:
        path = stack.pop()
        if path[-1].children:
            stack += [[*path, child] for child in reversed(path[-1].children)]
        else:
            paths.append(path)
    return paths


def _cut(path: list[_Node]) -> list[_Node]:
    """The path up to its last assistant message (a trailing prompt has no answer)."""
    last = max((i for i, n in enumerate(path) if n.role == "assistant"), default=0)
    return path[: last + 1]


def tree_conversations(path: Path, langs: Collection[str] = (), mode: str = "best"
                       ) -> Iterator[Candidate]:
    """The conversations of one OASST file (see the module docstring)."""
    if mode not in MODES:
        raise InputError(f"{path}: unknown OASST mode {mode!r}; modes are {', '.join(MODES)}")
    kept: dict[str, _Node] = {}
    known: set[str] = set()
    for node, reason in _messages(read_records(path)):
        known.add(node.id)
        if reason is not None:
            yield Candidate(node.where, None, reason)
        else:
            kept[node.id] = node
    roots = []
    for node in kept.values():
        if node.parent is None:
            roots.append(node)
        elif node.parent in kept:
            kept[node.parent].children.append(node)
        elif node.parent not in known:
            yield Candidate(node.where, None, "orphan")
        # else: its parent was dropped, and the subtree with it
    for root in roots:
        if root.tree_state is not None and root.tree_state != READY:
            yield Candidate(root.where, None, "not_ready")
            continue
        if langs and root.lang not in langs:
            yield Candidate(root.where, None, "lang")
            continue
        seen: set[tuple[str, ...]] = set()
        for nodes in map(_cut, _paths(root, mode)):
            ids = tuple(n.id for n in nodes)
            if ids in seen:
                continue
            seen.add(ids)
            yield Candidate(nodes[-1].where, [{"role": ROLES[n.role], "content": n.text}
                                              for n in nodes], group=f"oasst-tree:{root.id}")
