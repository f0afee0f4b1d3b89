"""Test-wide settings and shared fixtures.

Run state (MLflow store, Prefect home) goes to a temp folder, offline. Fixtures: stage
configs composed from ``conf/`` (``stage_cfg``), a tiny tokenizer, tiny GPTs, token
streams and a tokens stage output folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_STATE = Path(tempfile.mkdtemp(prefix="crawl2chat-tests-"))
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_STATE / 'mlflow.db'}"
os.environ["PREFECT_HOME"] = str(_STATE / "prefect")

import importlib  # noqa: E402
import random  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from crawl2chat import config, runtime  # noqa: E402
from crawl2chat.model.gpt import GPT, GPTConfig  # noqa: E402
from crawl2chat.tokenizer.shards import encode_part, join_parts, part_files  # noqa: E402
from crawl2chat.tokenizer.tokenizer import Tokenizer  # noqa: E402
from crawl2chat.tokenizer.train import train_bpe  # noqa: E402

runtime.configure()

REPO = Path(__file__).resolve().parents[1]


def stage_cfg(stage: str, *overrides: str) -> Any:
    """Stage ``stage``'s Cfg as ``conf/`` composes it for the smoke run, shrunk further by
    Hydra ``overrides`` (full paths, e.g. ``base.train.max_steps=5``)."""
    module = importlib.import_module(f"crawl2chat.stages.{stage}")
    tree = config.compose(REPO, ["experiment=smoke", *overrides])
    return config.build(module.Cfg, tree[stage], stage)


TEXTS = ["the cat sat on the mat. " * 20, "a dog ran in the park, then sat down. " * 20,
         "Zürich café: 3 € for a coffee! " * 10]
"""The tiny tokenizer's corpus: English words, and non-ASCII letters and symbols."""


@pytest.fixture(scope="session")
def tok() -> Tokenizer:
    """A 300-id BPE tokenizer of ``TEXTS``."""
    return train_bpe(TEXTS, vocab_size=300, min_frequency=1)


@pytest.fixture(scope="session")
def tiny_gpt() -> Callable[..., GPT]:
    """A factory of seeded 2-layer GPTs: ``tiny_gpt(vocab, block, **GPTConfig options)``."""
    def build(vocab: int = 64, block: int = 32, **options: Any) -> GPT:
        torch.manual_seed(0)
        shape = {"n_layer": 2, "n_head": 2, "n_embd": 32, **options}
        return GPT(GPTConfig(vocab_size=vocab, block_size=block, **shape))
    return build


@pytest.fixture(scope="session")
def periodic_tokens() -> np.ndarray:
    """Ids 8..39 over and over: a token stream a model learns in a few steps."""
    return np.tile(np.arange(8, 40, dtype=np.uint16), 300)


ANIMALS = ["cat", "dog", "bird", "horse", "fox"]
PLACES = ["mat", "roof", "garden", "barn", "hill"]


def documents(n: int) -> list[str]:
    """``n`` seeded documents of template sentences, each ending in non-ASCII text."""
    rng = random.Random(0)
    return [" ".join(f"The {rng.choice(ANIMALS)} sat on the {rng.choice(PLACES)}."
                     for _ in range(rng.randint(20, 40))) + " Zürich: 3 €!" for _ in range(n)]


@pytest.fixture(scope="session")
def tokens_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokens stage output of 40 documents (every 8th in val): tokenizer, shards, meta."""
    out = tmp_path_factory.mktemp("tokens")
    docs = documents(40)
    tokenizer = train_bpe(docs, vocab_size=300, min_frequency=2)
    tokenizer.save(out / "tokenizer")
    stats = encode_part(tokenizer, docs, [i % 8 == 0 for i in range(len(docs))],
                        part_files(out, 0))
    join_parts(tokenizer, out, 1, stats)
    return out
