"""The one chat template, its loss mask, and fixed-length training rows built from it.

In:  conversations as lists of ``{"role": "system"|"user"|"assistant", "content": str}``
     and a :class:`crawl2chat.tokenizer.tokenizer.Tokenizer`.
Out: token ids laid out as ::

         <|bos|> [<|system_start|> text <|system_end|>]
                 <|user_start|> text <|user_end|> <|assistant_start|> text <|assistant_end|> ...

     with a loss mask that is 1 exactly on assistant text and its ``<|assistant_end|>`` (so
     the model learns to answer and to end its turn, never to write the user's part), the
     prompt for generation (ends with ``<|assistant_start|>``), and rows of
     ``{"input_ids", "targets"}`` for training.

Message text goes through ``Tokenizer.encode``, which encodes text that spells a special
token as ordinary text: a user cannot forge a turn boundary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from crawl2chat.model.gpt import IGNORE_INDEX as IGNORE
from crawl2chat.tokenizer import special

if TYPE_CHECKING:
    from crawl2chat.tokenizer.tokenizer import Tokenizer

TURN_TOKENS = {
    "system": (special.SYSTEM_START, special.SYSTEM_END),
    "user": (special.USER_START, special.USER_END),
    "assistant": (special.ASSISTANT_START, special.ASSISTANT_END),
}
Messages = Sequence[Mapping[str, str]]
Segment = tuple[str, list[int], list[int]]  # (role, ids, mask) of one turn


def _segment(role: str, body: list[int], tok: Tokenizer) -> Segment:
    if role not in TURN_TOKENS:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(TURN_TOKENS)}")
    start, end = (tok.special_id(t) for t in TURN_TOKENS[role])
    ids = [start, *body, end]
    learn = 1 if role == "assistant" else 0
    return role, ids, [0] + [learn] * (len(body) + 1)


def _segments(messages: Messages, tok: Tokenizer, bodies: list[list[int]] | None = None
              ) -> list[Segment]:
    if bodies is None:
        bodies = [tok.encode(m["content"]) for m in messages]
    return [_segment(m["role"], body, tok) for m, body in zip(messages, bodies, strict=True)]


def _join(segments: Iterable[Segment], tok: Tokenizer) -> tuple[list[int], list[int]]:
    ids, mask = [tok.special_id(special.BOS)], [0]
    for _, seg_ids, seg_mask in segments:
        ids += seg_ids
        mask += seg_mask
    return ids, mask


def render(messages: Messages, tok: Tokenizer) -> tuple[list[int], list[int]]:
    """``(ids, loss_mask)`` of a whole conversation; the mask marks what the model learns."""
    return _join(_segments(messages, tok), tok)


def render_prompt(messages: Messages, tok: Tokenizer) -> list[int]:
    """The ids to generate the next assistant turn from: ends with ``<|assistant_start|>``."""
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("a chat prompt must end with a user message")
    ids, _ = render(messages, tok)
    return [*ids, tok.special_id(special.ASSISTANT_START)]


def chunks(segments: list[Segment], max_len: int) -> tuple[list[list[Segment]], int]:
    """Split one conversation at turn boundaries into pieces of at most ``max_len`` ids.

    Each piece repeats the system turn and holds whole exchanges (a user turn and the
    answer to it). An exchange that does not fit even alone is dropped, never cut.
    Returns the pieces and the number of dropped exchanges.
    """
    prefix = [s for s in segments if s[0] == "system"]
    exchanges: list[list[Segment]] = []
    for seg in segments:
        if seg[0] == "user" or (seg[0] == "assistant" and not exchanges):
            exchanges.append([])
        if seg[0] != "system":
            exchanges[-1].append(seg)
    exchanges = [x for x in exchanges if any(s[0] == "assistant" for s in x)]

    def length(parts: list[Segment]) -> int:
        return 1 + sum(len(s[1]) for s in parts)  # 1 for <|bos|>

    pieces: list[list[Segment]] = []
    current: list[Segment] = []
    dropped = 0
    for exchange in exchanges:
        if length(prefix + exchange) > max_len:
            dropped += 1
            continue
        if current and length(prefix + current + exchange) > max_len:
            pieces.append(prefix + current)
            current = []
        current += exchange
    if current:
        pieces.append(prefix + current)
    return pieces, dropped


def _row(ids: list[int], mask: list[int], block_size: int, pad: int) -> dict[str, torch.Tensor]:
    """Inputs ``ids[:-1]``; target ``ids[i+1]`` where the mask marks it, else ignored."""
    inputs = ids[:-1] + [pad] * (block_size + 1 - len(ids))
    targets = [t if m else IGNORE for t, m in zip(ids[1:], mask[1:], strict=True)]
    targets += [IGNORE] * (block_size - len(targets))
    return {"input_ids": torch.tensor(inputs, dtype=torch.long),
            "targets": torch.tensor(targets, dtype=torch.long)}


def to_examples(conversations: Iterable[Messages], tok: Tokenizer, block_size: int,
                stats: Counter[str] | None = None, every_token: bool = False,
                ) -> list[dict[str, torch.Tensor]]:
    """Training rows of ``block_size`` tokens from whole conversations.

    A row packs consecutive conversations (each from its own ``<|bos|>``) while they fit,
    then pads with ``<|pad|>`` / ignored targets: on a CPU budget, one conversation per row
    would spend most of the compute on padding. (Attention may look back across a
    ``<|bos|>`` into the previous conversation, as it did across documents in
    pretraining.) A conversation longer than a row is split at turn boundaries (see
    :func:`chunks`). ``stats`` receives the counts: conversations, split_conversations,
    dropped_conversations, dropped_exchanges, rows, assistant_tokens. ``every_token``
    makes every token after a row's first a target (midtraining), not only the assistant's.
    """
    stats = Counter() if stats is None else stats
    conversations = list(conversations)
    bodies = iter(tok.encode_batch([m["content"] for c in conversations for m in c]))
    pad = tok.special_id(special.PAD)
    rows: list[dict[str, torch.Tensor]] = []
    ids: list[int] = []
    mask: list[int] = []
    for messages in conversations:
        stats["conversations"] += 1
        segments = _segments(messages, tok, [next(bodies) for _ in messages])
        pieces, dropped = chunks(segments, block_size + 1)
        stats["dropped_exchanges"] += dropped
        if not pieces:
            stats["dropped_conversations"] += 1
        elif len(pieces) > 1 or dropped:
            stats["split_conversations"] += 1
        for piece in pieces:
            piece_ids, piece_mask = _join(piece, tok)
            if every_token:
                piece_mask = [1] * len(piece_mask)
            if ids and len(ids) + len(piece_ids) > block_size + 1:
                rows.append(_row(ids, mask, block_size, pad))
                ids, mask = [], []
            ids += piece_ids
            mask += piece_mask
            stats["assistant_tokens"] += sum(piece_mask)
    if ids:
        rows.append(_row(ids, mask, block_size, pad))
    stats["rows"] += len(rows)
    return rows
