"""Held-out evaluation of a language model: bits per byte and next-word accuracy.

In: a :class:`~crawl2chat.model.gpt.GPT`, its tokenizer and the val token split
(``val.bin``: every document is ``<|bos|>`` + its tokens). Out: an :class:`Evaluation`
with the metrics and a markdown section for the stage report.

**Bits per byte** divides the summed cross-entropy of the text tokens by the UTF-8 bytes
they stand for (and by ln 2). Unlike loss per token it does not depend on how much text
a token covers, so models with different tokenizers compare. It is measured on windows
of ``block_size`` tokens spread evenly over the val split (the windows the val loss
uses); ``<|bos|>`` and other special tokens stand for no bytes and are left out of both
sums.

**Next-word accuracy** is a LAMBADA-style test built from the val documents (decoded
from ``val.bin``: byte-level BPE gives the text back exactly). LAMBADA keeps passages
whose last word people can guess only from the whole passage; no person judges ours,
so a passage is built mechanically:

- the target is a whole word (a run of letters, preceded by a space) of at least
  ``min_word_letters`` letters that ends a sentence (``.``, ``!`` or ``?`` and then
  whitespace or the end of the document);
- the context is the text right before the target's space, cut on the left to at most
  ``max_context_tokens`` tokens (starting at a whole word), and the target word occurs
  in the context (the context can give it away, as in LAMBADA);
- candidates are shuffled with ``seed`` and the first ``passages`` that qualify are
  kept, so the set is fixed by the seed and the val split.

The model decodes greedily after the context until the text it produced holds a word
followed by a character that is not a letter (or ``max_word_tokens`` tokens); the first
word, leading whitespace skipped, must equal the target exactly (case included). As a
baseline, the same passages are answered with the context's most frequent word of
``min_word_letters`` or more letters (the latest on a tie): what copying from the
context without a model achieves.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from crawl2chat.model.generate import generate
from crawl2chat.model.gpt import GPT
from crawl2chat.model.sampling import SamplingCfg
from crawl2chat.model.windows import TokenWindows
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.tokenizer import Tokenizer

_LETTERS = r"[^\W\d_]+"  # a run of letters, any script
_TARGET = re.compile(rf" ({_LETTERS})[.!?](?:\s|$)")
_WORD = re.compile(rf"(?<![\w'’-]){_LETTERS}(?![\w'’-])")
_ANSWER = re.compile(rf"\s*({_LETTERS})")
EXAMPLES = 3  # passages shown in the report


@dataclass
class EvalCfg:
    """The held-out evaluation after training (``base.eval``)."""

    bpb_windows: int = 128
    """Val windows of block_size tokens, spread evenly, scored for bits per byte."""
    batch_size: int = 8
    """Windows per forward pass."""
    passages: int = 200
    """Next-word passages drawn from the val documents; 0 turns the test off."""
    min_word_letters: int = 4
    """Letters a target word has at least (short words are guessed without context)."""
    max_context_tokens: int = 192
    """Longest passage context; also capped by block_size - max_word_tokens - 1."""
    max_word_tokens: int = 8
    """Greedy tokens decoded at most to spell the predicted word."""
    scan_tokens: int = 2_000_000
    """Val tokens decoded, at most, to look for passages."""
    seed: int = 0
    """Picks the passages among the candidates."""
    memorise_docs: int = 20
    """Train and val documents each for the memorisation check; 0 turns it off."""
    memorise_prefix_tokens: int = 32
    """Tokens of a document the model is given."""
    memorise_continue_tokens: int = 32
    """Greedy tokens compared with the document's next ones."""
    hellaswag: str | None = None
    """A HellaSwag-format JSONL file (e.g. ``hellaswag_val.jsonl``), scored at every
    validation and after training (model/mc_eval.py); None: not measured."""
    hellaswag_items: int | None = 500
    """Its first N items (None: all); each costs one forward pass per ending."""


@dataclass
class Passage:
    """A context and the word that follows it (after one space) in a val document."""

    context: str
    target: str
    from_start: bool  # the context begins at the start of its document


@dataclass
class Evaluation:
    """What :func:`evaluate` measured: ``metrics`` for the DVC file and MLflow, and the
    passages with the model's answers for the report."""

    metrics: dict[str, float]
    passages: list[Passage] = field(default_factory=list)
    predictions: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        m = self.metrics
        lines = ["", "## Held-out evaluation", "",
                 "| measure | value |", "|---|---:|",
                 f"| bits per byte (val, {int(m['val_eval_tokens'])} tokens = "
                 f"{int(m['val_eval_bytes'])} bytes) | **{m['val_bits_per_byte']:.3f}** |"]
        n = int(m["next_word_n"])
        if n:
            lines += [f"| next-word accuracy ({n} passages) | "
                      f"**{m['next_word_accuracy']:.3f}** |",
                      "| baseline: the context's most frequent word | "
                      f"{m['next_word_baseline_accuracy']:.3f} |"]
        lines += ["", "Bits per byte: summed loss of the text tokens / their UTF-8 bytes / "
                  "ln 2 (compares across tokenizers). Next word: LAMBADA-style passages from "
                  "val documents, each ending before a sentence-final word that occurs in "
                  "its context; greedy answer, exact match (see "
                  "`crawl2chat.model.evaluate`)."]
        if n:
            lines += ["", "| passage (end) | target | model |", "|---|---|---|"]
            for passage, guess in list(zip(self.passages, self.predictions,
                                           strict=True))[:EXAMPLES]:
                tail = " ".join(passage.context.split())[-80:]
                lines.append(f"| …{_cell(tail)} | {passage.target} | {_cell(guess) or '∅'} |")
        return "\n".join(lines) + "\n"


def bits_per_byte(mean_loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Bits per byte of text whose ``n_tokens`` tokens cost ``mean_loss_nats`` each on
    average and spell ``n_bytes`` UTF-8 bytes."""
    if n_bytes <= 0:
        raise ValueError(f"bits per byte needs text: n_bytes is {n_bytes}")
    return mean_loss_nats * n_tokens / n_bytes / math.log(2)


def token_bytes(tok: Tokenizer, size: int) -> np.ndarray:
    """UTF-8 bytes each id < ``size`` stands for: 0 for special tokens and for the ids
    past the tokenizer that pad a model's vocabulary."""
    lengths = np.zeros(size, dtype=np.int64)
    for piece, i in tok.ranks.items():
        if i < size:
            lengths[i] = len(piece)
    return lengths


@torch.inference_mode()
def val_bits_per_byte(model: GPT, tokens: np.ndarray, byte_lengths: np.ndarray,
                      windows: int, batch_size: int) -> dict[str, float]:
    """Bits per byte over ``windows`` windows of ``block_size`` tokens spread evenly
    over ``tokens`` (each window scores the next token at each of its positions)."""
    device = next(model.parameters()).device
    data = TokenWindows(tokens, model.config.block_size, "strided", windows)
    weights = torch.from_numpy(byte_lengths).to(device)
    loss_sum, n_tokens, n_bytes = 0.0, 0, 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(data), batch_size):
            batch = [data[i] for i in range(start, min(start + batch_size, len(data)))]
            x = torch.stack([b["input_ids"] for b in batch]).to(device)
            y = torch.stack([b["targets"] for b in batch]).to(device)
            logits, _ = model(x)
            nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
            spelled = weights[y.flatten()]
            text = spelled > 0  # special tokens spell no bytes: left out of both sums
            loss_sum += float(nll[text].sum())
            n_tokens += int(text.sum())
            n_bytes += int(spelled.sum())
    finally:
        model.train(was_training)
    mean = loss_sum / max(1, n_tokens)
    return {"val_bits_per_byte": bits_per_byte(mean, n_tokens, n_bytes),
            "val_text_loss": mean, "val_eval_tokens": float(n_tokens),
            "val_eval_bytes": float(n_bytes)}


def val_documents(tokens: np.ndarray, tok: Tokenizer, max_tokens: int) -> Iterator[str]:
    """The documents of a token split (each starts with ``<|bos|>``), decoded, from the
    first ``max_tokens`` tokens; a document cut by that limit is left out."""
    head = np.asarray(tokens[:max_tokens])
    starts = np.flatnonzero(head == tok.special_id(special.BOS))
    ends = [*starts[1:], len(head)] if len(head) == len(tokens) else starts[1:]
    for start, end in zip(starts, ends, strict=False):
        yield tok.decode(head[start + 1:end].tolist())


def next_word_passages(texts: Iterable[str], tok: Tokenizer, count: int,
                       min_word_letters: int = 4, max_context_tokens: int = 192,
                       seed: int = 0) -> list[Passage]:
    """Up to ``count`` LAMBADA-style passages from ``texts`` (see the module docstring)."""
    docs = list(texts)
    candidates = [(d, m.start(1), m.group(1)) for d, text in enumerate(docs)
                  for m in _TARGET.finditer(text) if len(m.group(1)) >= min_word_letters]
    random.Random(seed).shuffle(candidates)
    passages: list[Passage] = []
    for d, start, word in candidates:
        if len(passages) >= count:
            break
        text = docs[d]
        if word not in _words(text[:start]):  # cheap check before encoding anything
            continue
        context = _fit(text[:start - 1], tok, max_context_tokens)  # the space goes with it
        if context and word in _words(context):
            passages.append(Passage(context, word, from_start=len(context) == start - 1))
    return passages


def predict_word(model: GPT, tok: Tokenizer, passage: Passage, max_word_tokens: int) -> str:
    """The word the model continues ``passage`` with, greedily ('' when it starts with
    something else than a word)."""
    bos = tok.special_id(special.BOS)
    ids = ([bos] if passage.from_start else []) + tok.encode(passage.context)
    new: list[int] = []
    text = ""
    for token in generate(model, ids, max_word_tokens, SamplingCfg(temperature=0),
                          stop_ids=range(len(special.SPECIAL_TOKENS)),
                          vocab_limit=tok.vocab_size):
        new.append(token)
        text = tok.decode(new)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            continue
        if re.search(r"[\W\d_]", text.lstrip()):
            break  # a word and what follows it, or something else than a word: decided
    answer = _ANSWER.match(text)
    return answer.group(1) if answer else ""


def copy_baseline(passage: Passage, min_word_letters: int) -> str:
    """The context's most frequent word of ``min_word_letters`` or more letters, the
    latest of the most frequent on a tie ('' when there is none)."""
    words = [w for w in _WORD.findall(passage.context) if len(w) >= min_word_letters]
    if not words:
        return ""
    counts = Counter(words)
    top = max(counts.values())
    return next(w for w in reversed(words) if counts[w] == top)


def next_word_accuracy(model: GPT, tok: Tokenizer, passages: list[Passage],
                       max_word_tokens: int = 8) -> tuple[float, list[str]]:
    """Share of ``passages`` whose target the model predicts exactly, and its answers."""
    guesses = [predict_word(model, tok, p, max_word_tokens) for p in passages]
    right = sum(g == p.target for g, p in zip(guesses, passages, strict=True))
    return (right / len(passages) if passages else 0.0), guesses


def evaluate(model: GPT, tok: Tokenizer, val_tokens: np.ndarray, cfg: EvalCfg) -> Evaluation:
    """Bits per byte and next-word accuracy on the val split, as :class:`Evaluation`."""
    metrics = val_bits_per_byte(model, val_tokens, token_bytes(tok, model.config.vocab_size),
                                cfg.bpb_windows, cfg.batch_size)
    budget = min(cfg.max_context_tokens, model.config.block_size - cfg.max_word_tokens - 1)
    passages = next_word_passages(val_documents(val_tokens, tok, cfg.scan_tokens), tok,
                                  cfg.passages, cfg.min_word_letters, budget,
                                  cfg.seed) if cfg.passages > 0 else []
    accuracy, guesses = next_word_accuracy(model, tok, passages, cfg.max_word_tokens)
    baseline = [copy_baseline(p, cfg.min_word_letters) == p.target for p in passages]
    metrics |= {"next_word_accuracy": accuracy, "next_word_n": float(len(passages)),
                "next_word_baseline_accuracy": (sum(baseline) / len(passages)
                                                if passages else 0.0)}
    return Evaluation(metrics, passages, guesses)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text))


def _fit(text: str, tok: Tokenizer, max_tokens: int) -> str:
    """The longest end of ``text`` that starts after a whitespace (or is all of it) and
    encodes to at most ``max_tokens`` tokens ('' when none does)."""
    if max_tokens < 1:
        return ""
    text = text[-max_tokens * 32:]  # a token spells at most a few dozen characters
    ids = tok.encode(text)
    keep = max_tokens
    while len(ids) > max_tokens and keep > 0:
        tail = tok.decode(ids[-keep:])  # may begin inside a word, or inside a character
        cut = re.search(r"\s+", tail)
        if cut is None:
            return ""
        text = tail[cut.end():]  # exact: everything after a whitespace decoded whole
        ids = tok.encode(text)
        keep -= 1  # re-encoding the shorter text can take a token more
    return text if len(ids) <= max_tokens else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
