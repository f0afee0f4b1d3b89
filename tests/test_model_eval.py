"""Held-out evaluation: bits per byte, next-word passages and accuracy, and its gate."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import conftest
import numpy as np
import pytest
import torch
from conftest import documents

from crawl2chat.errors import GateFailed
from crawl2chat.model.evaluate import (
    EvalCfg,
    Passage,
    bits_per_byte,
    copy_baseline,
    evaluate,
    next_word_accuracy,
    next_word_passages,
    token_bytes,
    val_bits_per_byte,
    val_documents,
)
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.windows import TokenWindows
from crawl2chat.quality.base import _held_out
from crawl2chat.quality.suite import validate
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.shards import open_split
from crawl2chat.tokenizer.tokenizer import Tokenizer

PADDED = 320  # the model's vocabulary: the tokenizer's 300 ids padded to a multiple of 64


@pytest.fixture(scope="module")
def tok(tokens_folder: Path) -> Tokenizer:
    """The tokens folder's tokenizer (not the shared tiny one)."""
    return Tokenizer.load(tokens_folder / "tokenizer")


def _gpt(block_size: int = 64) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=PADDED, block_size=block_size, n_layer=2, n_head=2,
                         n_embd=32)).eval()


def _always(token: int) -> GPT:
    """A real GPT that predicts ``token`` after any context: every block adds nothing
    (zero weights), the final norm outputs a constant that only ``token``'s row of the
    tied embedding/head matrix scores."""
    model = _gpt()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.transformer.wte.weight[token, 0] = 1.0
        model.transformer.ln_f.bias[0] = 1.0
    return model


def test_bits_per_byte_is_loss_per_byte_in_bits() -> None:
    assert bits_per_byte(math.log(2), 10, 10) == pytest.approx(1.0)
    # 4 bytes per token at 2 nats per token: 0.5 nats, 0.72 bits per byte
    assert bits_per_byte(2.0, 100, 400) == pytest.approx(0.5 / math.log(2))
    with pytest.raises(ValueError, match="n_bytes"):
        bits_per_byte(1.0, 5, 0)


def test_token_bytes_spell_exactly_the_split_text(tokens_folder: Path, tok: Tokenizer) -> None:
    lengths = token_bytes(tok, PADDED)
    meta = json.loads((tokens_folder / "meta.json").read_text())
    for split in ("train", "val"):
        ids = np.asarray(open_split(tokens_folder, split))
        assert lengths[ids].sum() == meta[f"{split}_text_bytes"]  # <|bos|> spells nothing
    assert (lengths[:len(special.SPECIAL_TOKENS)] == 0).all() and (lengths[300:] == 0).all()
    assert (lengths[len(special.SPECIAL_TOKENS):300] > 0).all()


def test_a_uniform_model_costs_log2_vocab_bits_per_token(tokens_folder: Path,
                                                         tok: Tokenizer) -> None:
    model = _gpt(block_size=32)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # all logits 0: every token costs ln(PADDED) nats
    val = open_split(tokens_folder, "val")
    lengths = token_bytes(tok, PADDED)
    m = val_bits_per_byte(model, val, lengths, windows=1000, batch_size=16)  # all windows
    windows = TokenWindows(val, 32, "strided")
    targets = torch.cat([windows[i]["targets"] for i in range(len(windows))])
    text = targets[lengths[targets.numpy()] > 0]
    assert m["val_eval_tokens"] == len(text) < len(targets)  # the <|bos|> targets left out
    assert m["val_eval_bytes"] == lengths[text.numpy()].sum()
    assert m["val_text_loss"] == pytest.approx(math.log(PADDED))
    assert m["val_bits_per_byte"] == pytest.approx(
        math.log2(PADDED) * len(text) / m["val_eval_bytes"])


def test_val_documents_are_the_held_out_texts(tokens_folder: Path, tok: Tokenizer) -> None:
    val = open_split(tokens_folder, "val")
    expected = [d for i, d in enumerate(documents(40)) if i % 8 == 0]
    assert list(val_documents(val, tok, len(val))) == expected
    bos = np.flatnonzero(np.asarray(val) == tok.special_id(special.BOS))
    # a limit inside the third document keeps the two before it, whole
    assert list(val_documents(val, tok, int(bos[2]) + 5)) == expected[:2]


def test_passages_end_before_a_sentence_final_word_found_in_the_context(
        tok: Tokenizer) -> None:
    texts = [*documents(6), "Nothing here is repeated except nothing: unique."]
    passages = next_word_passages(texts, tok, 25, min_word_letters=4, max_context_tokens=40)
    assert len(passages) == 25
    for p in passages:
        assert len(p.target) >= 4 and p.target in conftest.PLACES
        assert re.search(rf"\b{p.target}\b", p.context)
        assert len(tok.encode(p.context)) <= 40
        doc = next(t for t in texts if p.context + " " + p.target in t)
        after = doc[doc.index(p.context) + len(p.context) + 1 + len(p.target):]
        assert after[0] in ".!?"
        assert p.from_start == doc.startswith(p.context)
        assert not p.context[0].isspace()
    assert all(p.target != "unique" for p in passages)
    again = next_word_passages(texts, tok, 25, min_word_letters=4, max_context_tokens=40)
    other = next_word_passages(texts, tok, 25, min_word_letters=4, max_context_tokens=40,
                               seed=1)
    assert again == passages and other != passages
    # 'mat' and 'barn' are too short for 5 letters; 'unique' never occurred before
    long = next_word_passages(texts, tok, 500, min_word_letters=5, max_context_tokens=40)
    assert long and {p.target for p in long} <= {"garden"}


def test_a_passage_from_the_start_of_a_short_document_is_all_of_it(tok: Tokenizer) -> None:
    text = "The fox sat on the hill. The dog sat on the hill."
    [passage] = next_word_passages([text], tok, 5, max_context_tokens=100)
    assert passage == Passage("The fox sat on the hill. The dog sat on the", "hill", True)
    assert next_word_passages([text], tok, 5, max_context_tokens=3) == []  # too long to fit


def test_accuracy_counts_exact_whole_word_answers(tokens_folder: Path, tok: Tokenizer) -> None:
    [mat] = tok.encode(" mat")  # one token: the model below says it after anything
    passages = next_word_passages(documents(6), tok, 30, min_word_letters=3,
                                  max_context_tokens=40)
    share = sum(p.target == "mat" for p in passages) / len(passages)
    assert 0 < share < 1
    accuracy, guesses = next_word_accuracy(_always(mat), tok, passages)
    assert guesses == ["mat"] * len(passages)  # ' mat mat ...' is cut after the word
    assert accuracy == pytest.approx(share)
    [comma] = tok.encode(",")
    assert next_word_accuracy(_always(comma), tok, passages) == (0.0, [""] * len(passages))


def test_copy_baseline_takes_the_most_frequent_context_word() -> None:
    passage = Passage("Alice met Bobby at the fair. Bobby saw Alice", "Bobby", False)
    assert copy_baseline(passage, 4) == "Alice"  # 2 each: the latest wins the tie
    assert copy_baseline(Passage("Alice saw Bobby, Bobby", "x", False), 4) == "Bobby"
    assert copy_baseline(Passage("a b c", "x", False), 4) == ""


def test_evaluate_reports_both_measures(tokens_folder: Path, tok: Tokenizer) -> None:
    cfg = EvalCfg(bpb_windows=4, passages=6, max_context_tokens=40, min_word_letters=3)
    result = evaluate(_gpt(), tok, open_split(tokens_folder, "val"), cfg)
    m = result.metrics
    assert m["next_word_n"] == 6 == len(result.passages) == len(result.predictions)
    assert 0 <= m["next_word_accuracy"] <= 1 and 0 <= m["next_word_baseline_accuracy"] <= 1
    assert 0 < m["val_bits_per_byte"] < math.log2(PADDED)  # fewer than 1 byte/token
    report = result.markdown()
    assert f"**{m['val_bits_per_byte']:.3f}**" in report and "6 passages" in report
    assert result.passages[0].target in report
    none = evaluate(_gpt(), tok, open_split(tokens_folder, "val"),
                    EvalCfg(bpb_windows=2, passages=0))
    assert none.metrics["next_word_n"] == 0 and "next-word" not in none.markdown()


GOOD = {"val_bits_per_byte": 1.2, "next_word_accuracy": 0.25,
        "next_word_baseline_accuracy": 0.5, "next_word_n": 8.0}


@pytest.mark.parametrize(("change", "expected"), [
    ({"val_bits_per_byte": float("inf")}, "bpb_finite"),
    ({"val_bits_per_byte": 0.0}, "val_bits_per_byte"),
    ({"next_word_accuracy": 1.5}, "next_word_accuracy"),
    ({"next_word_n": 9.0}, "next_word_n"),
    ({"next_word_baseline_accuracy": None}, "next_word_baseline_accuracy"),
])
def test_gate_rejects_impossible_figures(change: dict, expected: str) -> None:
    cfg = EvalCfg(passages=8)
    assert validate("base", [_held_out(GOOD, cfg)])
    extra = {k: v for k, v in (GOOD | change).items() if v is not None}
    with pytest.raises(GateFailed, match=expected):
        validate("base", [_held_out(extra, cfg)])
