"""Templated assistant conversations: identity answers, refusals, harmless look-alikes and
ordinary questions with short answers.

In:  a template file (``prompts/assistant_set.yaml``: openers, and for ``identity``,
     ``refusal``, ``benign`` and the optional ``helpful`` questions with ``{a|b|c}``
     alternatives and answer templates) and the held-out prompt texts that must never be
     produced.
Out: conversations in the messages format, ``{"messages": [user, assistant], "topic"}``,
     the same list on every run (a seeded generator picks openers and answers).

Every question is expanded to all its alternatives; each expansion gets ``per_question``
openers ("Hi! ", "Quick question: " ...) and one answer. A question is dropped when it is
close to a held-out prompt: the same words (lower case, letters and digits only), or
``MAX_OVERLAP`` or more of their words in common (Jaccard, the opener left out). So the
evaluation asks only questions no training conversation contains, nor a one-word change
of one ("kill a frozen program on Ubuntu" is left out beside "... on Windows").
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from crawl2chat.errors import InputError

_ALTERNATIVES = re.compile(r"\{([^{}]*\|[^{}]*)\}")
SEED = 18
MAX_OVERLAP = 0.6  # word Jaccard with a held-out prompt from which a question is dropped
TOPICS = ("identity", "refusal", "benign", "helpful")


def expand(template: str) -> list[str]:
    """Every text ``template`` spells out: ``"a {b|c}"`` -> ``["a b", "a c"]``, whitespace
    and spaces before punctuation tidied (an empty alternative leaves none behind)."""
    parts = _ALTERNATIVES.split(template)
    # split() alternates literal text and the inside of a {..|..} group
    choices = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    out = []
    for combo in itertools.product(*choices):
        text = " ".join("".join(combo).split())
        out.append(re.sub(r" ([?.!,:])", r"\1", text))
    return out


def normalise(text: str) -> str:
    """Lower-case letters and digits only: the identity of a question for exclusion."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def overlap(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' normalised word sets."""
    x, y = set(normalise(a).split()), set(normalise(b).split())
    return len(x & y) / len(x | y) if x | y else 1.0


def _with_opener(opener: str, question: str) -> str:
    if opener.endswith((", ", ": ")) and not question.startswith(("I ", "I'm ", "My ")):
        # "Hey, who are you?", but "Quick question: I ..." keeps the pronoun's capital
        question = question[:1].lower() + question[1:]
    return opener + question


def _get(section: dict[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise InputError(f"{where}: missing field {key!r}")
    return section[key]


def _identity(spec: dict[str, Any], openers: list[str], rng: random.Random
              ) -> list[tuple[str, str, str, str]]:
    out = []
    answers = _get(spec, "answers", "identity")
    for template in _get(spec, "questions", "identity"):
        for question in expand(template):
            for opener in rng.sample(openers, min(spec.get("per_question", 1), len(openers))):
                out.append(("identity", opener, question, rng.choice(answers)))
    return out


def _refusal(spec: dict[str, Any], rng: random.Random) -> list[tuple[str, str, str, str]]:
    out = []
    openings, closings = _get(spec, "openings", "refusal"), _get(spec, "closings", "refusal")
    wrappers = spec.get("wrappers", [""])
    for n, category in enumerate(_get(spec, "categories", "refusal")):
        where = f"refusal.categories[{n}]"
        what, why = _get(category, "what", where), _get(category, "why", where)
        for template in _get(category, "questions", where):
            for question in expand(template):
                answer = " ".join(filter(None, (rng.choice(openings).format(what=what), why,
                                                rng.choice(closings))))
                out.append(("refusal", rng.choice(wrappers), question, answer))
    return out


def _answers(topic: str, spec: dict[str, Any], openers: list[str], rng: random.Random
             ) -> list[tuple[str, str, str, str]]:
    """Question templates with one fixed answer each (``benign`` and ``helpful``)."""
    out = []
    for n, item in enumerate(_get(spec, "items", topic)):
        answer = _get(item, "a", f"{topic}.items[{n}]")
        for template in _get(item, "q", f"{topic}.items[{n}]"):
            for question in expand(template):
                for opener in rng.sample(openers, min(spec.get("per_question", 1), len(openers))):
                    out.append((topic, opener, question, answer))
    return out


def build(spec: dict[str, Any], exclude: Collection[str] = ()) -> list[dict[str, Any]]:
    """The conversations ``spec`` (the parsed template file) describes, held-out
    ``exclude`` prompts and repeated questions left out."""
    rng = random.Random(SEED)
    openers = _get(spec, "openers", "templates")
    rows = (_identity(_get(spec, "identity", "templates"), openers, rng)
               + _refusal(_get(spec, "refusal", "templates"), rng)
               + _answers("benign", _get(spec, "benign", "templates"), openers, rng)
               + _answers("helpful", spec.get("helpful", {"items": []}), openers, rng))
    seen = {normalise(p) for p in exclude}
    near: dict[str, bool] = {}  # bare question -> close to a held-out prompt
    out = []
    for topic, opener, bare, answer in rows:
        question = _with_opener(opener, bare)
        key = normalise(question)
        if bare not in near:
            near[bare] = any(overlap(bare, p) >= MAX_OVERLAP for p in exclude)
        if key in seen or near[bare]:
            continue
        seen.add(key)
        out.append({"messages": [{"role": "user", "content": question},
                                 {"role": "assistant", "content": answer}], "topic": topic})
    return out


def load_templates(path: Path) -> dict[str, Any]:
    """The parsed template file; InputError naming it when it is not a YAML mapping."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read the templates: {err}") from err
    if not isinstance(spec, dict):
        raise InputError(f"{path}: expected a mapping with openers, identity, refusal, benign")
    return spec
