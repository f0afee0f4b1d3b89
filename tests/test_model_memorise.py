"""The memorisation check: a model trained over and over on a few documents recites
them, and not documents it never saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.model.memorise import documents, longest_common_run, memorisation
from crawl2chat.tokenizer import special
from crawl2chat.tokenizer.tokenizer import Tokenizer

DOC_TOKENS = 24


def _split(tok: Tokenizer, docs: list[list[int]], repeats: int) -> np.ndarray:
    bos = tok.special_id(special.BOS)
    return np.array([t for _ in range(repeats) for d in docs for t in (bos, *d)],
                    dtype=np.uint16)


def _memorised_model(train: np.ndarray, steps: int = 300) -> GPT:
    """A small GPT trained on random windows of ``train`` until it knows it by heart."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, block_size=32, n_layer=2, n_head=2, n_embd=64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = torch.from_numpy(train.astype(np.int64))
    rng = np.random.default_rng(0)
    for _ in range(steps):
        starts = rng.integers(0, len(data) - 33, 16)
        batch = torch.stack([data[s:s + 33] for s in starts])
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_a_model_recites_the_documents_it_was_trained_on_and_not_others(
        tok: Tokenizer) -> None:
    rng = np.random.default_rng(1)
    seen, unseen = ([rng.integers(len(special.SPECIAL_TOKENS), tok.vocab_size,
                                  DOC_TOKENS).tolist() for _ in range(4)] for _ in range(2))
    splits = {"train": _split(tok, seen, repeats=50), "val": _split(tok, unseen, repeats=1)}
    model = _memorised_model(splits["train"])
    result = memorisation(model, tok, splits, docs=4, prefix=12, continuation=12,
                          scan_tokens=10_000)
    m = result.metrics
    assert m["memorise_train_docs"] == m["memorise_val_docs"] == 4
    assert m["memorise_train_exact"] == 1.0 and m["memorise_train_common_run"] == 12.0
    assert m["memorise_val_exact"] == 0.0 and m["memorise_val_common_run"] < 2
    table = result.markdown()
    assert "| train (seen in training: yes) | 4 | 1.000 | 12.0 |" in table
    assert "recites parts of its training text" in table


def test_documents_are_the_first_long_enough_ones_within_the_scan() -> None:
    tokens = np.array([0, 5, 6, 0, 7, 8, 9, 0, 1, 2, 3, 4], dtype=np.uint16)
    assert documents(tokens, 0, 5, 3, 100) == [[7, 8, 9], [1, 2, 3, 4]]
    assert documents(tokens, 0, 1, 2, 100) == [[5, 6]]
    assert documents(tokens, 0, 5, 3, 10) == [[7, 8, 9]]  # the last one is cut by the scan
    assert documents(tokens, 0, 0, 1, 100) == []


@pytest.mark.parametrize(("a", "b", "run"), [
    ([1, 2, 3, 4], [1, 2, 3, 4], 4),
    ([9, 1, 2, 3], [1, 2, 3, 8], 3),  # shifted by one: still a run of three
    ([1, 2, 3], [4, 5, 6], 0),
    ([], [1], 0),
])
def test_longest_common_run(a: list[int], b: list[int], run: int) -> None:
    assert longest_common_run(a, b) == run == longest_common_run(b, a)
