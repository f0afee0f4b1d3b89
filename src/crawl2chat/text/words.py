"""Word and sentence splitting shared by the quality rules.

In: text. Out: :func:`words` (whitespace tokens with punctuation at their edges split
off, one mark per token -- ``"(see"`` -> ``(``, ``see`` -- while inner punctuation stays,
as in ``e.g`` or ``3.11``; close to the nltk Treebank tokenizer that datatrove uses
for English, and language-neutral and fast for the European languages we keep) and :func:`sentences`
(splits after ``.``/``!``/``?`` followed by space). Punctuation sets come from
datatrove so the rules see the same characters as FineWeb's.
"""

from __future__ import annotations

import re

from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

__all__ = ["PUNCTUATION_SET", "TERMINAL", "sentences", "words"]

TERMINAL: tuple[str, ...] = tuple(sorted(TERMINAL_PUNCTUATION))
_EDGES = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def words(text: str) -> list[str]:
    """``"Don't stop (now)."`` -> ``["Don't", "stop", "(", "now", ")", "."]``."""
    out: list[str] = []
    for token in text.split():
        match = _EDGES.match(token)
        assert match is not None  # the pattern matches any string
        lead, core, tail = match.groups()
        out += [*lead, core, *tail] if core else [*lead, *tail]
    return out


def sentences(text: str) -> list[str]:
    """Non-empty sentences of one line or paragraph."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]
