"""Gopher's repetition and quality rules (Rae et al. 2021, as datatrove implements them).

In: a :class:`~crawl2chat.text.steps.Doc` with extracted text and its language.
Out: None (keep) or the rule that fired, e.g. ``dup_line_frac``, ``top_2_gram``,
``duplicated_5_n_grams``, ``short_doc``, ``below_avg_word_length``, ``few_stop_words``.
The thresholds are :class:`~crawl2chat.text.recipe.GopherRepCfg` and
:class:`~crawl2chat.text.recipe.GopherQualityCfg`; a ratio equal to its threshold is
kept (the rules drop on ``>``/``<`` strictly, as in datatrove). Words are cut as
datatrove cuts them, per language (:func:`~crawl2chat.text.words.words`). Each language
may have its own thresholds (``by_language``: FineWeb-2's, see
:class:`~crawl2chat.text.recipe.Cfg`). Stop words are per language: ``stop_words``
from the config, else Gopher's for English and spaCy's list for the others; a language
with neither skips the stop-word rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from crawl2chat.text.languages import stop_words
from crawl2chat.text.recipe import GopherQualityCfg, GopherRepCfg
from crawl2chat.text.steps import Doc
from crawl2chat.text.words import PUNCTUATION_SET, words

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def find_duplicates(items: Sequence[str]) -> tuple[int, int]:
    """(repeated items, characters in repeats): every copy after the first counts."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def top_ngram_chars(tokens: Sequence[str], n: int) -> int:
    """Characters covered by the most frequent n-gram (0 for fewer than n tokens).

    An n-gram seen once counts too, as in datatrove: on a page of a few words it alone
    can exceed the limit (such a page is short for Gopher quality as well).
    """
    grams = Counter(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    if not grams:
        return 0
    gram, times = grams.most_common(1)[0]
    return len(gram) * times


def duplicate_ngram_chars(tokens: Sequence[str], n: int) -> int:
    """Characters in n-grams seen before, counting each repeated span once (no overlap)."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(tokens) - n + 1:
        gram = "".join(tokens[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


@dataclass
class GopherRepetition(GopherRepCfg):
    """Drop pages that repeat lines, paragraphs or n-grams (boilerplate, spam)."""

    name: str = field(default="gopher_rep", init=False)

    def __call__(self, doc: Doc) -> str | None:
        return self.for_language(doc.lang).check(doc)

    def check(self, doc: Doc) -> str | None:
        """The rules with these settings, whatever the document's language."""
        text = doc.text
        if not text:
            return "empty"
        for unit, parts, frac, char_frac in (
                ("para", _PARAGRAPHS.split(text.strip()), self.dup_para_frac,
                 self.dup_para_char_frac),
                ("line", _LINES.split(text), self.dup_line_frac, self.dup_line_char_frac)):
            count, chars = find_duplicates(parts)
            if count / len(parts) > frac:
                return f"dup_{unit}_frac"
            if chars / len(text) > char_frac:
                return f"dup_{unit}_char_frac"
        tokens = words(text, doc.lang)
        for n, limit in sorted(self.top_n_grams.items()):
            if top_ngram_chars(tokens, int(n)) / len(text) > limit:
                return f"top_{n}_gram"
        for n, limit in sorted(self.dup_n_grams.items()):
            if duplicate_ngram_chars(tokens, int(n)) / len(text) > limit:
                return f"duplicated_{n}_n_grams"
        return None


@dataclass
class GopherQuality(GopherQualityCfg):
    """Drop pages whose words do not look like prose: too short or long, symbols, lists."""

    name: str = field(default="gopher_quality", init=False)

    def __call__(self, doc: Doc) -> str | None:
        return self.for_language(doc.lang).check(doc)

    def check(self, doc: Doc) -> str | None:
        """The rules with these settings, whatever the document's language."""
        text = doc.text
        tokens = words(text, doc.lang)
        real = [w for w in tokens if any(ch not in PUNCTUATION_SET for ch in w)]
        if len(real) < self.min_doc_words:
            return "short_doc"
        if len(real) > self.max_doc_words:
            return "long_doc"
        mean = sum(len(w) for w in real) / len(real)
        if mean < self.min_avg_word_length:
            return "below_avg_word_length"
        if mean > self.max_avg_word_length:
            return "above_avg_word_length"
        if text.count("#") / len(tokens) > self.max_symbol_word_ratio:
            return "too_many_hashes"
        if (text.count("...") + text.count("…")) / len(tokens) > self.max_symbol_word_ratio:
            return "too_many_ellipsis"
        lines = text.splitlines() or [""]
        bullets = sum(line.lstrip().startswith(("•", "-")) for line in lines)
        if bullets / len(lines) > self.max_bullet_lines_ratio:
            return "too_many_bullets"
        trailing = sum(line.rstrip().endswith(("...", "…")) for line in lines)
        if trailing / len(lines) > self.max_ellipsis_lines_ratio:
            return "too_many_end_ellipsis"
        alpha = sum(any(c.isalpha() for c in w) for w in tokens)
        if alpha / len(tokens) < self.max_non_alpha_words_ratio:
            return "below_alpha_threshold"
        stop = set(self.stop_words.get(doc.lang) or stop_words(doc.lang or "en"))
        # distinct stop words, as Gopher states it ("at least two of ..."), not occurrences
        if stop and self.min_stop_words and len(stop.intersection(tokens)) < self.min_stop_words:
            return "few_stop_words"
        return None
