"""Person names: a spaCy NER model (``PERSON``/``PER``), run only where a name can be.

In: texts. Out: :func:`person_spans` gives, per text, the (start, end) of every person
name of at least ``min_words`` name words ("John Smith", "Guido van Rossum",
"Fred L. Drake"); a single word counts too after a title ("Dr. Watson").

NER is the slowest part of the text stage, so:

- the model is loaded once per process, on first use, with its ``ner`` pipe only (plus
  the embedding pipe it listens to, if the model shares one);
- it reads only windows around *hints*: ``min_words`` capitalised words in a row
  (joined by spaces, initials or particles such as "van"), none after the first a word
  the text also writes in lower case (see :func:`common_words`). The NER looks a few
  tokens either side, so :data:`CONTEXT` characters of context find what it finds in
  the whole text; on the demo sample the windows are ~7% of the English text;
- the windows of many texts go through one ``nlp.pipe``; a window longer than
  ``chunk_chars`` is cut at whitespace, so long texts are read whole, in pieces.

An entity counts only if it looks like a name (letters, every word capitalised except
particles, no line break, later words not common in the text): the small model calls
many product and API names in software documentation PERSON ("asyncio", "KDE Plasma",
"DeprecationWarning", "Configuring Logging").
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from crawl2chat.errors import ConfigError

PERSON_LABELS = frozenset({"PERSON", "PER"})  # OntoNotes (English), WikiNER (French)
CONTEXT = 64  # characters of context on each side of a hint
WORD = re.compile(r"[^\W\d_][\w'’.-]*")
PARTICLES = frozenset({"al", "bin", "da", "das", "de", "del", "della", "den", "der", "di",
                       "do", "dos", "du", "ibn", "la", "le", "ten", "ter", "van", "von", "y",
                       "zu"})
TITLES = frozenset({"Mr", "Mrs", "Ms", "Mx", "Miss", "Dr", "Prof", "Professor", "Sir",
                    "Dame", "Lady", "Lord", "Rev", "Fr", "Sr", "Sra", "Mme", "Mlle"})
# a whole word (not part of a path, address or identifier); lower case is checked after
WORD_ALONE = re.compile(r"(?<![\w.'’@/-])[^\W\d_]+(?![\w'’@/-]|\.\w)")
NOT_NAMES = frozenset({"None", "True", "False", "Null"})  # code constants in prose
CAMEL = re.compile(r"(?:Mc|Mac)[A-Z][a-z]+")
_LOCK, _RUN_LOCK = threading.Lock(), threading.Lock()


def name_word(word: str) -> bool:
    """Capitalised like a name or an initial: Smith, O'Brien, Marc-André, L., McDonald."""
    core = word.rstrip(".")
    if not core or not all(ch.isalpha() or ch in "'’-" for ch in core):
        return False
    return core.istitle() or CAMEL.fullmatch(core) is not None


@cache
def _model(package: str) -> Any:
    """The NER pipeline of an installed spaCy model package, without the other pipes."""
    import spacy

    try:
        module = importlib.import_module(package)
    except ImportError as err:
        raise ConfigError(f"text.pii.ner_models: spaCy model package {package!r} is not "
                          f"installed ({err})") from err
    configs = sorted(Path(module.__file__ or "").parent.glob("*/config.cfg"))
    if not configs:
        raise ConfigError(f"text.pii.ner_models: {package!r} is not a spaCy model package")
    config = spacy.util.load_config(configs[0], interpolate=False)
    pipes = list(config["nlp"]["pipeline"])
    if "ner" not in pipes:
        raise ConfigError(f"text.pii.ner_models: {package!r} has no 'ner' pipe ({pipes})")
    # a model whose NER listens to a shared embedding layer needs that layer too
    listens = "Listener" in str(config["components"]["ner"]["model"].get("tok2vec", ""))
    keep = {"ner"} | ({"tok2vec", "transformer"} if listens else set())
    return module.load(exclude=[p for p in pipes if p not in keep])


def model(package: str) -> Any:
    """The cached pipeline; loaded once per process even when threads ask together."""
    with _LOCK:
        return _model(package)


def common_words(text: str) -> set[str]:
    """The words ``text`` also writes in lower case, standing alone.

    A name's later words hardly ever occur so ("Lundh", "Hammond"); those of title-case
    headings the small model reads as names do ("Configuring Logging", "Debug Mode").
    First names may ("Mark", "Bill"), so only the later words of a name are checked.
    """
    return {w for w in WORD_ALONE.findall(text) if w.islower()}


def _is_common(word: str, common: set[str]) -> bool:
    core = word.rstrip(".")
    return len(core) > 1 and core.lower() in common  # an initial never is


@cache
def _runs(min_words: int) -> re.Pattern[str]:
    """Capitalised words in a row (a cheap first pass; :func:`hints` checks each word)."""
    upper = "".join(c for c in map(chr, range(0x10000)) if c.isupper())  # re has no \p{Lu}
    word = rf"[{upper}][\w'’.-]*"
    gap = rf"[ \u00a0]+(?:(?:{'|'.join(sorted(PARTICLES))})[ \u00a0]+)*"
    return re.compile(rf"(?<![\w'’.-]){word}(?:{gap}{word}){{{min_words - 1},}}")


def hints(text: str, min_words: int, common: set[str]) -> Iterator[tuple[int, int]]:
    """Spans of ``min_words`` name words in a row, joined by spaces, particles, initials;
    after the first, none of them a ``common`` word."""
    for run in _runs(min_words).finditer(text):
        yield from _run_hints(text, run.start(), run.end(), min_words, common)


def _run_hints(text: str, begin: int, end: int, min_words: int,
               common: set[str]) -> Iterator[tuple[int, int]]:
    start, count, prev_end = -1, 0, 0
    for m in WORD.finditer(text, begin, end):
        word = m.group()
        joined = count > 0 and text[prev_end:m.start()].strip(" \u00a0") == ""
        if name_word(word):
            later = joined and not _is_common(word, common)
            start, count = (start, count + 1) if later else (m.start(), 1)
            if count >= min_words:
                yield start, m.end()
        elif not (joined and word in PARTICLES):
            count = 0
        prev_end = m.end()


def windows(text: str, min_words: int, chunk_chars: int,
            common: set[str] | None = None) -> list[tuple[int, int]]:
    """Hints widened by :data:`CONTEXT` to whitespace, merged, cut to ``chunk_chars``."""
    common = common_words(text) if common is None else common
    merged: list[tuple[int, int]] = []
    for a, b in hints(text, min_words, common):
        a, b = _widen(text, a - CONTEXT, b + CONTEXT)
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return [piece for a, b in merged for piece in _cut(text, a, b, chunk_chars)]


def _widen(text: str, a: int, b: int) -> tuple[int, int]:
    a, b = max(a, 0), min(b, len(text))
    while a > 0 and not text[a - 1].isspace():
        a -= 1
    while b < len(text) and not text[b].isspace():
        b += 1
    return a, b


def _cut(text: str, a: int, b: int, size: int) -> Iterator[tuple[int, int]]:
    """(a, b) in pieces of at most ``size`` chars, cut at a line end or else a space."""
    while b - a > size:
        cut = max(text.rfind("\n", a + size // 2, a + size), text.rfind(" ", a + size // 2,
                                                                          a + size))
        cut = cut + 1 if cut > a else a + size  # one huge word: cut anyway
        yield a, cut
        a = cut
    if b > a:
        yield a, b


def person_spans(texts: Sequence[str], package: str, min_words: int = 2,
                 chunk_chars: int = 10_000) -> list[list[tuple[int, int]]]:
    """Per text, the (start, end) of each person name, in order."""
    common = [common_words(text) for text in texts]
    pieces = [(i, a, b) for i, text in enumerate(texts)
              for a, b in windows(text, min_words, chunk_chars, common[i])]
    found: list[list[tuple[int, int]]] = [[] for _ in texts]
    if not pieces:
        return found  # no hint anywhere: the model is not even loaded
    nlp = model(package)
    with _RUN_LOCK:  # spaCy adds to its string store while it reads: one thread at a time
        docs = list(nlp.pipe((texts[i][a:b] for i, a, b in pieces), batch_size=64))
    for (i, offset, _), doc in zip(pieces, docs, strict=True):
        for ent in doc.ents:
            if ent.label_ not in PERSON_LABELS:
                continue
            span = _accept(texts[i], offset + ent.start_char, offset + ent.end_char,
                           min_words, common[i])
            if span and (not found[i] or span[0] >= found[i][-1][1]):
                found[i].append(span)
    return found


def _accept(text: str, a: int, b: int, min_words: int,
            common: set[str]) -> tuple[int, int] | None:
    """The entity's span if it looks like a person's name (see :func:`common_words`)."""
    b = a + len(text[a:b].rstrip())
    words = text[a:b].split()
    if words and words[0] in PARTICLES:  # "van Rossum": take the "Guido" in front too
        front = re.search(r"(\S+) +$", text[max(0, a - CONTEXT):a])
        if front and name_word(front.group(1)):
            a -= len(front.group())
            words.insert(0, front.group(1))
    if "\n" in text[a:b] or not words or words[-1] in PARTICLES:
        return None
    if not all(name_word(w) or w in PARTICLES for w in words):
        return None
    if any(w in NOT_NAMES or _is_common(w, common) for w in words[1:] if w not in PARTICLES):
        return None
    named = sum(name_word(w) for w in words)
    previous = text[max(0, a - CONTEXT):a].rsplit(None, 1)[-1:]
    titled = bool(previous) and previous[0].rstrip(".") in TITLES
    return (a, b) if named >= min_words or titled else None
