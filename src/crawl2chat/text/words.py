"""Word and sentence splitting shared by the quality rules, per language.

In: text and its language (a lid.176 code). Out: :func:`words`, the tokens datatrove's
filters count. English: spaCy's rule-based English tokenizer (``spacy.blank("en")``,
no model, no download) with whitespace tokens dropped -- ``"Don't stop (now)."`` ->
``Do``, ``n't``, ``stop``, ``(``, ``now``, ``)``, ``.``. Other languages: the word
tokenizer FineWeb-2 assigns them (datatrove's ``load_word_tokenizer``: spaCy's rules
for the language, jieba for Chinese, SudachiPy for Japanese, PyThaiNLP for Thai).
Two have no segmenter installed and get an approximation (:data:`APPROXIMATE`):
Korean (FineWeb-2 uses Kiwi) and Vietnamese (pyvi) are cut by spaCy's multi-language
rules at spaces and punctuation. A language datatrove has no tokenizer for falls back
to the English one (:func:`tokenizer_name` says which is used).

The word and n-gram rules depend on how text is cut (``e.g.``, ``/etc``, ``built-in``),
so a home-made splitter changes decisions on about one page in twenty of the demo
sample; with the same tokenizer they agree page by page. The result is cached for the
last few texts, as Gopher repetition and Gopher quality read the same page one after
the other. :func:`sentences` splits after ``.``/``!``/``?`` followed by space, and after
``。！？`` (no space follows them). Punctuation sets come from datatrove so the rules see
FineWeb's characters.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

__all__ = ["APPROXIMATE", "PUNCTUATION_SET", "TERMINAL", "sentences", "tokenizer_name",
           "words"]

TERMINAL: tuple[str, ...] = tuple(sorted(TERMINAL_PUNCTUATION))
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*")
# lid.176 code -> spaCy language whose rules cut it, where FineWeb-2's segmenter is missing
APPROXIMATE = {"ko": "xx", "vi": "xx"}
NO_SPACES = frozenset({"zh", "ja", "th"})  # written without spaces between words
_LOCK = threading.Lock()


@cache
def _spacy(lang: str) -> Any:
    import spacy

    return spacy.blank(lang)


def _spacy_words(lang: str) -> Callable[[str], list[str]]:
    nlp = _spacy(lang)

    def cut(text: str) -> list[str]:
        # the memory zone frees the strings spaCy interns per text (else its vocabulary
        # grows with every page the stage reads)
        with nlp.memory_zone():
            nlp.max_length = max(nlp.max_length, len(text) + 1)
            return [t for t in (tok.text.strip() for tok in nlp.tokenizer(text)) if t]
    return cut


@cache
def _tokenizer(lang: str) -> tuple[str, Callable[[str], list[str]]]:
    """(what cuts ``lang``, the function) -- loaded once per process."""
    if lang == "en":
        return "spaCy en", _spacy_words("en")
    if lang in APPROXIMATE:
        return f"spaCy {APPROXIMATE[lang]} (approximation)", _spacy_words(APPROXIMATE[lang])
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from crawl2chat.text.languages import fineweb2, spacy_code

    # by FineWeb-2's name (cmn_Hani): datatrove's two-letter keys can name another variety
    published = fineweb2(lang)
    try:
        tok = load_word_tokenizer(published[0] if published else spacy_code(lang))
    except ValueError:
        return "spaCy en (no tokenizer for this language)", _spacy_words("en")
    return f"datatrove {type(tok).__name__} {getattr(tok, 'language', '') or lang}", \
        tok.word_tokenize


def tokenizer_name(lang: str) -> str:
    """Which tokenizer cuts ``lang``'s words, e.g. ``datatrove SpaCyTokenizer zh``."""
    with _LOCK:
        return _tokenizer(lang)[0]


@lru_cache(maxsize=8)
def words(text: str, lang: str = "en") -> tuple[str, ...]:
    """``"Don't stop (now)."`` -> ``("Do", "n't", "stop", "(", "now", ")", ".")``."""
    with _LOCK:  # each segmenter is loaded once, even when threads ask together
        cut = _tokenizer(lang or "en")[1]
    return tuple(cut(text))


def sentences(text: str) -> list[str]:
    """Non-empty sentences of one line or paragraph."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]
