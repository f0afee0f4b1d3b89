"""Word and sentence splitting shared by the quality rules.

In: text. Out: :func:`words`, the tokens datatrove's filters count: spaCy's rule-based
English tokenizer (``spacy.blank("en")``, no model, no download) with whitespace tokens
dropped -- ``"Don't stop (now)."`` -> ``Do``, ``n't``, ``stop``, ``(``, ``now``, ``)``,
``.``. The word and n-gram rules depend on how text is cut (``e.g.``, ``/etc``,
``built-in``), so a home-made splitter changes decisions on about one page in twenty
of the demo sample; with the same tokenizer they agree page by page. The result is
cached for the last few texts, as Gopher repetition and Gopher quality read the same
page one after the other. :func:`sentences` splits after ``.``/``!``/``?`` followed by
space. Punctuation sets come from datatrove so the rules see FineWeb's characters.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import Any

from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

__all__ = ["PUNCTUATION_SET", "TERMINAL", "sentences", "words"]

TERMINAL: tuple[str, ...] = tuple(sorted(TERMINAL_PUNCTUATION))
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


@cache
def _english() -> Any:
    import spacy

    return spacy.blank("en")


@lru_cache(maxsize=4)
def words(text: str) -> tuple[str, ...]:
    """``"Don't stop (now)."`` -> ``("Do", "n't", "stop", "(", "now", ")", ".")``."""
    nlp = _english()
    # the memory zone frees the strings spaCy interns per text (else its vocabulary
    # grows with every page the stage reads)
    with nlp.memory_zone():
        return tuple(t for t in (tok.text.strip() for tok in nlp.tokenizer(text)) if t)


def sentences(text: str) -> list[str]:
    """Non-empty sentences of one line or paragraph."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]
