"""Test-wide settings and shared fixtures.

Run state (MLflow store, Prefect home) goes to a temp folder, offline. Fixtures: stage
configs composed from ``conf/`` (``stage_cfg``), a tiny tokenizer, tiny GPTs, token
streams, a tokens stage output folder, small projects (``conf/`` only, or one bundled WARC
to crawl) and a folder served on loopback."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_STATE = Path(tempfile.mkdtemp(prefix="crawl2chat-tests-"))
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_STATE / 'mlflow.db'}"
os.environ["PREFECT_HOME"] = str(_STATE / "prefect")

import functools  # noqa: E402
import importlib  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from crawl2chat import config, paths, runtime  # noqa: E402
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


DEMO_WARC = sorted((REPO / "data/demo/web").glob("*.warc.gz"))[0]
"""One bundled WARC file, for stages that need a real crawl to read."""


@pytest.fixture()
def conf_project(tmp_path: Path) -> Path:
    """A project folder holding a copy of ``conf/`` and an empty ``dvc.yaml``."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    return tmp_path


def crawl_project(root: Path, max_records: int = 5) -> Path:
    """Make ``root`` a project whose crawl stage reads ``max_records`` records of
    :data:`DEMO_WARC`, copied into ``root/warc`` and named relative to the project."""
    (root / "warc").mkdir(parents=True)
    shutil.copy(DEMO_WARC, root / "warc" / DEMO_WARC.name)
    params = {"crawl": {"sources": ["warc/*.warc.gz"], "max_records": max_records}}
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump(params))
    return root


@contextmanager
def http_server(handler: Callable[..., Any]) -> Iterator[str]:
    """A real HTTP server with ``handler`` on a free loopback port; yields ``host:port``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serving(folder: Path) -> Any:
    """Serve ``folder``'s files over HTTP on loopback (a context yielding ``host:port``)."""
    return http_server(functools.partial(SimpleHTTPRequestHandler, directory=str(folder)))


def crawl_over_http(tmp_path: Path, url_of: Callable[[str], str]) -> tuple[Path, str]:
    """Run the crawl stage of a new project in ``tmp_path/project`` on 5 records of
    :data:`DEMO_WARC` served on loopback; ``url_of("host:port/name")`` spells the URL the
    project names. Returns the project and that URL."""
    from crawl2chat.runner import execute

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(DEMO_WARC, served / DEMO_WARC.name)
    project = tmp_path / "project"
    project.mkdir()
    with serving(served) as host:
        url = url_of(f"{host}/{DEMO_WARC.name}")
        (project / paths.PARAMS_FILE).write_text(
            yaml.safe_dump({"crawl": {"sources": [url], "max_records": 5}}))
        execute("crawl", project)
    return project, url
