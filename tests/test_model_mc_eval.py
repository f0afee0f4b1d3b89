"""Multiple-choice evaluation: the public JSONL schemas, scoring, `crawl2chat eval`, and
the base stage's figures at every validation."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import stage_cfg

from crawl2chat.errors import InputError
from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.mc_eval import Item, evaluate, load_items, predict
from crawl2chat.stages.base import run
from crawl2chat.tokenizer import special

REPO = Path(__file__).resolve().parents[1]
MC = REPO / "tests/fixtures/mc"


def test_hellaswag_fixture_reads_in_the_public_schema() -> None:
    items = load_items(MC / "hellaswag.jsonl", "hellaswag")
    assert [i.label for i in items] == [0, 2, 1]  # the second label is the string "2"
    assert items[0].context == "A woman fills a kettle with water. she"
    assert len(items[0].choices) == 4 and items[0].origin.endswith("hellaswag.jsonl:1")
    assert len(load_items(MC / "hellaswag.jsonl", "hellaswag", limit=2)) == 2


def test_arc_and_mmlu_fixtures_read_in_their_schemas() -> None:
    arc = load_items(MC / "arc.jsonl", "arc")
    assert arc[0].context == ("Question: Which of these is needed for a plant to make food?"
                              "\nAnswer:")
    assert (arc[0].label, arc[1].label) == (0, 1)  # answerKey "A"; "2" among "1", "2", "3"
    assert load_items(MC / "arc_hf.jsonl", "arc")[0].choices[0] == "Mercury"
    mmlu = load_items(MC / "mmlu.jsonl", "mmlu")
    assert [m.label for m in mmlu] == [1, 0] and mmlu[0].choices == ("4", "5", "6", "7")


@pytest.mark.parametrize(("task", "record", "needle"), [
    ("hellaswag", {"ctx": "A", "endings": ["b", "c"]}, "no 'label'"),
    ("hellaswag", {"ctx": "A", "endings": ["b", "c"], "label": 2}, "field 'label' must be"),
    ("hellaswag", {"ctx": "A", "endings": "b", "label": 0}, "field 'endings' must be a list"),
    ("hellaswag", {"endings": ["b", "c"], "label": 0}, "field 'ctx'"),
    ("arc", {"question": {"stem": "Q", "choices": [{"text": "a", "label": "A"},
                                                   {"text": "b", "label": "B"}]},
             "answerKey": "E"}, "'answerKey' 'E' is not one of"),
    ("mmlu", {"question": "Q", "choices": ["a", "b"], "answer": 5}, "field 'answer'"),
])
def test_bad_records_fail_naming_file_line_and_field(tmp_path: Path, task: str,
                                                     record: dict[str, Any], needle: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n" + json.dumps(record) + "\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:2: ") as err:
        load_items(bad, task)
    assert needle in str(err.value)
    with pytest.raises(InputError, match="unknown task 'piqa'"):
        load_items(bad, "piqa")


def _brute_force(model: Any, tok: Any, item: Item) -> tuple[int, int]:
    """Each choice's log-likelihood from one plain forward pass per choice."""
    sums, means = [], []
    for choice in item.choices:
        context = [tok.special_id(special.BOS), *tok.encode(item.context)]
        ending = tok.encode(" " + choice)
        ids = torch.tensor([context + ending])
        with torch.no_grad():
            logits, _ = model(ids)
        logp = torch.log_softmax(logits[0, :, : tok.vocab_size], dim=-1)
        total = sum(float(logp[len(context) - 1 + j, t]) for j, t in enumerate(ending))
        sums.append(total)
        means.append(total / len(ending))
    return sums.index(max(sums)), means.index(max(means))


def test_scores_are_the_models_log_likelihoods(tok: Any, tiny_gpt: Any) -> None:
    model = tiny_gpt(vocab=320, block=64).eval()
    items = [Item("the cat sat on", ("the mat.", "a dog ran in the park"), 0, "x:1"),
             Item("a dog ran", ("in the park", "Zürich"), 0, "x:2"),
             Item("Zürich café:", ("3 € for a coffee!", "mat"), 1, "x:3")]
    picks = [predict(model, tok, item) for item in items]
    assert picks == [_brute_force(model, tok, item) for item in items]
    score = evaluate(model, tok, items, "hellaswag")
    assert score.acc == sum(p[0] == i.label for p, i in zip(picks, items, strict=True)) / 3
    assert score.acc_norm == sum(p[1] == i.label for p, i in zip(picks, items, strict=True)) / 3
    assert score.metrics() == {"eval.hellaswag.acc": score.acc,
                               "eval.hellaswag.acc_norm": score.acc_norm,
                               "eval.hellaswag.items": 3.0}


def test_a_long_context_loses_its_start(tok: Any, tiny_gpt: Any) -> None:
    model = tiny_gpt(vocab=320, block=16).eval()
    item = Item("the cat sat on the mat. " * 10, ("a dog", "the mat"), 1, "x:1")
    assert predict(model, tok, item) in {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_eval_command_prints_and_logs_to_mlflow(tok: Any, tiny_gpt: Any,
                                                tmp_path: Path) -> None:
    save_model(tiny_gpt(vocab=320, block=64).eval(), tok, tmp_path / "model")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "crawl2chat.cli", "eval", str(tmp_path / "model"), "--task",
         "hellaswag", "--data", str(MC / "hellaswag.jsonl")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["eval.hellaswag.items"] == 3
    assert 0 <= result["eval.hellaswag.acc_norm"] <= 1
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        logged = dict(db.execute("SELECT key, value FROM metrics").fetchall())
    assert logged["eval.hellaswag.acc_norm"] == result["eval.hellaswag.acc_norm"]
    bad = subprocess.run(
        [sys.executable, "-m", "crawl2chat.cli", "eval", str(tmp_path / "model"), "--task",
         "mmlu", "--data", str(MC / "hellaswag.jsonl")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "hellaswag.jsonl:1: field 'question'" in bad.stderr


def test_base_stage_reports_bits_per_byte_and_hellaswag_at_every_validation(
        tokens_folder: Path, tmp_path: Path) -> None:
    cfg = stage_cfg("base", "base.model.n_embd=32", "base.model.block_size=64",
                    "base.train.max_steps=10", "base.train.eval_every=5",
                    "base.train.warmup_steps=2", "base.train.log_every=5",
                    "base.train.checkpoint_every=0", "base.train.progress_bar=false",
                    "base.prompts=['A']", "base.sample_tokens=4", "base.eval.passages=0",
                    "base.eval.memorise_docs=0", "base.eval.bpb_windows=8",
                    f"base.eval.hellaswag='{MC / 'hellaswag.jsonl'}'",
                    "base.eval.hellaswag_items=2")
    m = run(cfg, tokens_folder, tmp_path)
    assert m["eval.hellaswag.items"] == 2 and 0 <= m["eval.hellaswag.acc_norm"] <= 1
    report = (tmp_path / "report.md").read_text()
    section = report.split("## At every validation")[1]
    rows = [line for line in section.splitlines() if line.startswith("| 5 |")
            or line.startswith("| 10 |")]
    assert len(rows) == 2 and all(line.count("|") == 5 for line in rows)
    assert "| hellaswag | 2 |" in report
