"""Stages killed with SIGKILL at a random point (seeded), each once it has made real
progress, then run again: the output equals an uninterrupted run's, nothing partial is left
beside it, the processes the killed attempt started are gone, and its MLflow run is marked
FAILED. Base training killed after a checkpoint, and in the middle of writing one, resumes
to bit-identical weights. (The same through ``dvc repro``: test_kill_dvc.py.)"""

from __future__ import annotations

import json
import random
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import documents
from safetensors.torch import load_file
from stagekill import kill_when, leftovers, run_of, start, status, still_running

from crawl2chat import config, paths
from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.config import LOSS_CURVE, TRAIN_LOG
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.runner import execute
from crawl2chat.text.shards import DOCUMENTS, shard_name
from crawl2chat.tokenizer.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[1]
BASE = ("experiment=smoke", "base.model.n_embd=32", "base.model.block_size=32",
        "base.train.lr=0.01", "base.train.warmup_steps=2", "base.train.max_steps=12",
        "base.train.eval_every=6", "base.train.log_every=3", "base.train.deterministic=true",
        "base.train.checkpoint_every=4", "base.train.progress_bar=false",
        "base.prompts=['A']", "base.sample_tokens=4", "base.eval.memorise_docs=0",
        "base.model.dropout=0.1")
# 16 pages in two slices of 8, on the real runner (a worker process: the kill leaves it)
TEXT = ("experiment=smoke", "text.chunk_records=8", "text.runner.workers=1")
SFT = ("experiment=smoke", "sft.max_conversations=120", "sft.min_train_conversations=50",
       "sft.train.max_steps=12", "sft.train.warmup_steps=2", "sft.train.eval_every=6",
       "sft.train.log_every=2", "+sft.train.deterministic=true", "sft.train.progress_bar=false",
       "sft.eval.conversations=4", "sft.eval.max_new_tokens=8", "sft.eval.refusal_prompts=2")
CHAT_FILES = ("assistant.jsonl", "dialogues.jsonl", "eval_identity.jsonl",
              "eval_harmful.jsonl", "eval_benign.jsonl")
# files that name the run (manifest: its time and run id; the gate's results under
# quality/: their validation time and id; the model card) or time it (sft's eval.json, log)
NAMES_THE_RUN = {"*": {paths.MANIFEST, paths.REPORT},
                 "sft": {"eval.json", TRAIN_LOG, "README.md"}}


def _crawl_project(root: Path) -> Path:
    (root / "warc").mkdir(parents=True)
    for source in sorted((REPO / "data/demo/web").glob("*.warc.gz")):
        shutil.copy(source, root / "warc" / source.name)
    (root / paths.PARAMS_FILE).write_text(
        yaml.safe_dump({"crawl": {"sources": ["warc/*.warc.gz"]}}))
    return root


def _tokens_project(root: Path) -> Path:
    text = paths.stage_output("text", root)
    text.mkdir(parents=True)
    docs = documents(400)
    pd.DataFrame({"doc_id": [f"d{i}" for i in range(len(docs))], "text": docs}).to_parquet(
        text / shard_name(DOCUMENTS, 0), index=False)
    (text / paths.MANIFEST).write_text(json.dumps({"stage": "text", "created_unix": 0}))
    section = config.compose(REPO, ["experiment=smoke", "tokens.vocab_size=320"])["tokens"]
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump({"tokens": section}))
    return root


@pytest.fixture(scope="module")
def crawl_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crawl stage output of the first 16 pages of the bundled sample."""
    root = _crawl_project(tmp_path_factory.mktemp("crawl16"))
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump(
        {"crawl": {"sources": ["warc/*.warc.gz"], "max_records": 16}}))
    execute("crawl", root)
    return paths.stage_output("crawl", root)


def _text_project(root: Path, crawl_folder: Path) -> Path:
    shutil.copytree(crawl_folder, paths.stage_output("crawl", root))
    section = config.compose(REPO, list(TEXT))["text"]
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump({"text": section}))
    return root


def _sft_project(root: Path, tokens_folder: Path) -> Path:
    """A seeded tiny base model on the tokens fixture's tokenizer, the demo conversations."""
    base = paths.stage_output("base", root)
    tok = Tokenizer.load(tokens_folder / "tokenizer")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2,
                          n_embd=32))
    save_model(model, tok, base)
    (base / paths.MANIFEST).write_text(json.dumps({"stage": "base", "created_unix": 0}))
    (root / "data/demo/chat").mkdir(parents=True)
    for name in CHAT_FILES:
        shutil.copy(REPO / "data/demo/chat" / name, root / "data/demo/chat" / name)
    section = config.compose(REPO, list(SFT))["sft"]
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump({"sft": section}))
    return root


@pytest.fixture(scope="module")
def projects(crawl_folder: Path, tokens_folder: Path) -> dict[str, Callable[[Path], Path]]:
    """stage -> a function that lays out a project for it in a folder."""
    return {"crawl": _crawl_project, "tokens": _tokens_project,
            "text": lambda root: _text_project(root, crawl_folder),
            "sft": lambda root: _sft_project(root, tokens_folder)}


def _content(file: Path) -> bytes:
    """The file's bytes; for the text stage's counts, without the time each step took."""
    if file.name == "counts.json" and file.parent.name == "text":
        counts = json.loads(file.read_text())
        for step in counts["steps"]:
            step.pop("seconds"), step.pop("ms_per_doc")
        return json.dumps(counts).encode()
    return file.read_bytes()


def _data(folder: Path, stage: str) -> dict[str, bytes]:
    """Every output file but those that name or time the run."""
    skip = NAMES_THE_RUN["*"] | NAMES_THE_RUN.get(stage, set())
    return {p.relative_to(folder).as_posix(): _content(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip
            and p.relative_to(folder).parts[0] != "quality"}


@pytest.fixture(scope="module")
def uninterrupted(projects: dict[str, Callable[[Path], Path]],
                  tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, bytes]]:
    """stage -> the output of a run that nothing interrupted (run once, when first asked)."""
    done: dict[str, dict[str, bytes]] = {}

    def output(stage: str) -> dict[str, bytes]:
        if stage not in done:
            root = projects[stage](tmp_path_factory.mktemp(f"whole-{stage}"))
            execute(stage, root)
            done[stage] = _data(paths.stage_output(stage, root), stage)
        return done[stage]
    return output


def _progress(stage: str, tmp: Callable[[], list[Path]], rng: random.Random
              ) -> tuple[Callable[[], bool], float]:
    """A seeded point of ``stage``'s progress, as what its temporary folder holds, and a
    seeded wait after it."""
    def holds(pattern: str, lines: int = 0) -> Callable[[], bool]:
        def check() -> bool:
            found = [f for t in tmp() for f in t.glob(pattern)]
            return bool(found) and (not lines or
                                    found[0].read_text().count("\n") >= lines)
        return check

    if stage == "text":  # filtered a slice; resolved dedup; decided the mix; writing shards
        return holds(rng.choice([".work-*/survivors-00000.parquet", ".work-*/dedup-00000.npy",
                                 ".work-*/keep-00000.npy", "documents-*.parquet"])), \
            rng.uniform(0.0, 0.3)
    if stage == "sft":  # n lines of training log, or trained (loss curve drawn), evaluating
        return rng.choice([holds(TRAIN_LOG, rng.randint(1, 5)), holds(LOSS_CURVE)]), \
            rng.uniform(0.0, 0.3)
    return (lambda: bool(tmp())), rng.uniform(0.0, 1.0)  # anywhere in a short stage


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "seed"), [("crawl", 0), ("crawl", 1), ("tokens", 0),
                                             ("tokens", 1), ("text", 0), ("text", 2),
                                             ("sft", 0), ("sft", 1)])
def test_a_stage_killed_anywhere_reruns_to_the_same_output(
        stage: str, seed: int, uninterrupted: Callable[[str], dict[str, bytes]],
        projects: dict[str, Callable[[Path], Path]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    expected = uninterrupted(stage)
    root = projects[stage](tmp_path)
    out = paths.stage_output(stage, root)
    rng = random.Random(seed)
    ready, wait = _progress(stage, lambda: list(out.parent.glob(f"{out.name}.tmp-*")), rng)
    killed, started = kill_when(start(stage, root), ready, wait)
    assert started or stage != "text"  # its worker and Prefect's API server, at least
    assert not out.exists() or _data(out, stage) == expected  # never a partial output
    assert status(killed) == "RUNNING"  # nothing in the killed process could end it
    execute(stage, root)
    assert _data(out, stage) == expected
    assert leftovers(root) == []
    assert still_running(started) == set()  # its API server and workers stopped too
    assert status(killed) == "FAILED"


def _base_project(root: Path, tokens_folder: Path) -> Path:
    tokens = paths.stage_output("tokens", root)
    shutil.copytree(tokens_folder, tokens)
    (tokens / paths.MANIFEST).write_text(json.dumps({"stage": "tokens", "created_unix": 0}))
    section = config.compose(REPO, list(BASE))["base"]
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump({"base": section}))
    return root


@pytest.fixture(scope="module")
def uninterrupted_base(tokens_folder: Path, tmp_path_factory: pytest.TempPathFactory
                       ) -> dict[str, object]:
    root = _base_project(tmp_path_factory.mktemp("whole-base"), tokens_folder)
    execute("base", root)
    return load_file(str(paths.stage_output("base", root) / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "in_write"), [(0, False), (1, True)])
def test_base_killed_after_or_while_writing_a_checkpoint_resumes_bit_identically(
        seed: int, in_write: bool, uninterrupted_base: dict[str, object], tokens_folder: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    root = _base_project(tmp_path, tokens_folder)
    models = root / "models"
    proc = start("base", root, kill_in_write=in_write)
    if in_write:  # it kills itself in the write; the run must have started first
        proc.wait(timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
        killed = run_of(proc.pid)
    else:
        killed, _ = kill_when(proc, lambda: any(models.glob("base.tmp-ckpt-*/last.ckpt")),
                              random.Random(seed).uniform(0.0, 2.0))
    assert killed is not None and status(killed) == "RUNNING"
    metrics = execute("base", root)
    assert metrics["resumed_from_step"] >= 4  # not a retrain from scratch
    if in_write:
        assert metrics["resumed_from_step"] == 4  # the half-written step-8 file never landed
    weights = load_file(str(paths.stage_output("base", root) / "model.safetensors"))
    assert weights.keys() == uninterrupted_base.keys()
    for name, tensor in weights.items():
        assert tensor.equal(uninterrupted_base[name]), name  # bit for bit
    assert leftovers(root) == [] and not list(models.glob("base.tmp-ckpt-*"))
    assert status(killed) == "FAILED"
