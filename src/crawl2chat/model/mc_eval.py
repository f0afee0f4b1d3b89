"""Multiple-choice evaluation by log-likelihood: HellaSwag, ARC and MMLU from local JSONL.

In:  a model + tokenizer and a JSONL file in one of the public schemas:

- HellaSwag (``rowanz/hellaswag`` ``hellaswag_val.jsonl``; the Hugging Face copy too):
  ``{"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "split", "split_type", "label",
  "endings": [4 strings], "source_id"}``; ``label`` an int or a digit string;
- ARC (AI2's ``ARC-*.jsonl``): ``{"id", "question": {"stem", "choices": [{"text",
  "label"}]}, "answerKey"}``, or the Hugging Face ``ai2_arc`` rows ``{"id", "question":
  str, "choices": {"text": [...], "label": [...]}, "answerKey"}``;
- MMLU (Hugging Face ``cais/mmlu``): ``{"question", "subject", "choices": [...],
  "answer": index}``.

Out: :class:`Score` (``acc``, ``acc_norm``, item count) and per-item predictions.

Each choice is scored by the summed log-probability of its tokens after the context
(``<|bos|>`` + context; the choice tokenised on its own with a leading space, as llm.c's
HellaSwag evaluation does). ``acc`` picks the highest sum; ``acc_norm`` the highest mean
per token (llm.c's normalisation, the one behind GPT-2 124M's 0.294 acc_norm; lm-eval
normalises by characters instead, so its figures differ slightly). ARC and MMLU questions
are asked cloze-style, ``"Question: ...\\nAnswer:"`` followed by each answer's text, as
lm-evaluation-harness's ARC tasks do. A context too long for the model loses its start.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawl2chat.errors import InputError
from crawl2chat.model.gpt import GPT
from crawl2chat.model.logprobs import score
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.tokenizer import Tokenizer


@dataclass(frozen=True)
class Item:
    """One question: the context, its candidate continuations and the right one's index."""

    context: str
    choices: tuple[str, ...]
    label: int
    origin: str  # file:line


@dataclass(frozen=True)
class Score:
    task: str
    acc: float
    acc_norm: float
    items: int

    def metrics(self) -> dict[str, float]:
        """``eval.<task>.acc``, ``eval.<task>.acc_norm``, ``eval.<task>.items``."""
        return {f"eval.{self.task}.acc": self.acc, f"eval.{self.task}.acc_norm": self.acc_norm,
                f"eval.{self.task}.items": float(self.items)}


def _records(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read: {err}") from err
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object")
        yield record, where


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: field {name!r} must be a non-empty string")
    return value


def _index(value: Any, count: int, where: str, name: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < count:
        raise InputError(f"{where}: field {name!r} must be an index below {count}, "
                         f"got {value!r}")
    return value


def _choices(value: Any, where: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) < 2:
        raise InputError(f"{where}: field {name!r} must be a list of at least 2 answers")
    return tuple(_text(v, where, f"{name}[{i}]") for i, v in enumerate(value))


def hellaswag_item(record: dict[str, Any], where: str) -> Item:
    """An :class:`Item` from a HellaSwag record (``ctx``, or ``ctx_a`` + ``ctx_b``)."""
    if "ctx" in record:
        context = _text(record["ctx"], where, "ctx")
    else:
        a, b = record.get("ctx_a"), record.get("ctx_b", "")
        context = _text(f"{a} {b}".strip() if isinstance(a, str) else None, where, "ctx")
    if "label" not in record:
        raise InputError(f"{where}: no 'label' (the test split has none; use val)")
    endings = _choices(record.get("endings"), where, "endings")
    return Item(context, endings, _index(record["label"], len(endings), where, "label"), where)


def multiple_choice_item(record: dict[str, Any], where: str) -> Item:
    """An :class:`Item` from an ARC (AI2 or Hugging Face) or MMLU record."""
    question = record.get("question")
    if isinstance(question, dict):  # AI2's ARC: the choices sit inside the question
        stem = _text(question.get("stem"), where, "question.stem")
        raw = question.get("choices")
        if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
            raise InputError(f"{where}: field 'question.choices' must be a list of "
                             f"{{text, label}} objects")
        texts = [c.get("text") for c in raw]
        labels = [str(c.get("label")) for c in raw]
    else:
        stem = _text(question, where, "question")
        raw = record.get("choices")
        if isinstance(raw, dict):  # Hugging Face ai2_arc: {"text": [...], "label": [...]}
            texts, labels = raw.get("text"), [str(x) for x in raw.get("label") or []]
        else:  # MMLU: a plain list and an index
            choices = _choices(raw, where, "choices")
            answer = _index(record.get("answer"), len(choices), where, "answer")
            return Item(f"Question: {stem}\nAnswer:", choices, answer, where)
    choices = _choices(texts, where, "choices")
    key = str(record.get("answerKey"))
    if len(labels) != len(choices) or key not in labels:
        raise InputError(f"{where}: field 'answerKey' {key!r} is not one of the choice "
                         f"labels {labels}")
    return Item(f"Question: {stem}\nAnswer:", choices, labels.index(key), where)


# task name -> the reader of its records; results are logged as eval.<task>.*
TASKS = {"hellaswag": hellaswag_item, "arc": multiple_choice_item,
         "mmlu": multiple_choice_item}


def load_items(path: Path, task: str, limit: int | None = None) -> list[Item]:
    """The first ``limit`` items (all when None) of a ``task`` file (``TASKS``)."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    parse = TASKS[task]
    items = []
    for record, where in _records(path):
        if limit is not None and len(items) >= limit:
            break
        items.append(parse(record, where))
    if not items:
        raise InputError(f"{path}: no {task} items")
    return items


def _sequences(item: Item, tok: Tokenizer, block_size: int) -> list[tuple[list[int], int]]:
    """(ids, choice length) per choice: ``<|bos|>`` + context + choice, cut on the left."""
    context = [tok.special_id(special.BOS), *tok.encode(item.context)]
    out = []
    for choice in item.choices:
        ending = tok.encode(" " + choice.strip())[: block_size - 1]
        ids = context + ending
        out.append((ids[-block_size:], len(ending)))
    return out


def predict(model: GPT, tok: Tokenizer, item: Item) -> tuple[int, int]:
    """The choice with the highest summed log-probability, and with the highest mean."""
    pairs = _sequences(item, tok, model.config.block_size)
    scored = score(model, [ids for ids, _ in pairs], vocab_limit=tok.vocab_size,
                   batch_size=len(pairs))
    sums = [sum(s.logprobs[-n:]) for s, (_, n) in zip(scored, pairs, strict=True)]
    means = [total / n for total, (_, n) in zip(sums, pairs, strict=True)]
    return max(range(len(sums)), key=sums.__getitem__), max(range(len(means)),
                                                            key=means.__getitem__)


def evaluate(model: GPT, tok: Tokenizer, items: list[Item], task: str) -> Score:
    """``acc`` and ``acc_norm`` of ``model`` on ``items``."""
    right = right_norm = 0
    for item in items:
        best, best_norm = predict(model, tok, item)
        right += best == item.label
        right_norm += best_norm == item.label
    return Score(task, right / len(items), right_norm / len(items), len(items))


def markdown(scores: list[Score]) -> str:
    """A report section: one row per task."""
    lines = ["", "## Multiple-choice evaluation (log-likelihood)", "",
             "| task | items | acc | acc_norm |", "|---|---:|---:|---:|"]
    lines += [f"| {s.task} | {s.items} | {s.acc:.3f} | {s.acc_norm:.3f} |" for s in scores]
    lines += ["", "Each answer scored by the summed log-probability of its tokens after the "
              "context; acc_norm divides by its token count (llm.c's HellaSwag rule; "
              "`crawl2chat.model.mc_eval`)."]
    return "\n".join(lines) + "\n"
