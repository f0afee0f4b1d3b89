"""``/v1/completions`` logprobs and echo, over loopback, and lm-evaluation-harness against it.

The server runs the tiny model of test_serve.py; every returned log-probability is checked
against the model's own forward pass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from test_serve import _fit_tiny_model

from crawl2chat.model.checkpoint import load_model
from crawl2chat.serve.server import Limits, load_app, serving_in_background
from crawl2chat.tokenizer import special

PROMPT = "The quick brown fox."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("serve_logprobs") / "tiny"
    _fit_tiny_model(folder)
    model, tok = load_model(folder)
    app = load_app(folder, limits=Limits(max_tokens=20, max_concurrency=2))
    with serving_in_background(app) as url:
        yield {"url": url, "model": model, "tok": tok, "folder": folder}


def _post(served: dict[str, Any], **body: Any) -> httpx.Response:
    return httpx.post(served["url"] + "/v1/completions", json={"model": "tiny", **body},
                      timeout=30)


def _expected(served: dict[str, Any], ids: list[int]) -> list[list[float]]:
    """log_softmax rows of the model after <|bos|> + ids[:i], over the tokenizer's ids."""
    model, tok = served["model"], served["tok"]
    x = torch.tensor([[tok.special_id(special.BOS), *ids]])
    with torch.no_grad():
        logits, _ = model(x)
    return torch.log_softmax(logits[0, :, : tok.vocab_size].float(), dim=-1).tolist()


def test_echo_scores_every_prompt_token_but_the_first(served: dict[str, Any]) -> None:
    r = _post(served, prompt=PROMPT, max_tokens=0, echo=True, logprobs=3)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    tok = served["tok"]
    ids = tok.encode(PROMPT)
    assert choice["text"] == PROMPT and r.json()["usage"]["completion_tokens"] == 0
    assert lp["tokens"] == tok.token_pieces(ids)
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    rows = _expected(served, ids)
    for i in range(1, len(ids)):
        # the token at i is predicted at position i of <|bos|> + ids (the row before it)
        assert lp["token_logprobs"][i] == pytest.approx(rows[i][ids[i]], abs=1e-4)
        top = lp["top_logprobs"][i]
        assert len(top) == 3
        assert max(top.values()) == pytest.approx(max(rows[i]), abs=1e-4)
    assert lp["text_offset"] == [len(tok.decode(ids[:i])) for i in range(len(ids))]
    assert "".join(lp["tokens"]) == PROMPT


def test_lm_eval_payload_token_ids_and_one_generated_token(served: dict[str, Any]) -> None:
    """What lm-eval's local-completions sends for a log-likelihood request."""
    tok = served["tok"]
    ids = tok.encode(PROMPT)
    r = _post(served, prompt=[ids], max_tokens=1, temperature=0, logprobs=1, seed=1234,
              echo=True)
    assert r.status_code == 200, r.text
    lp = r.json()["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(ids) + 1  # the prompt, then the one generated token
    last, top = lp["token_logprobs"][-1], lp["top_logprobs"][-1]
    assert last == pytest.approx(max(top.values()), abs=1e-5)  # greedy: the best token
    rows = _expected(served, ids)
    total = sum(lp["token_logprobs"][2:-1])  # lm-eval's sum for a context of 2 tokens
    assert total == pytest.approx(sum(rows[i][ids[i]] for i in range(2, len(ids))), abs=1e-4)
    same = _post(served, prompt=[tok.decode(ids)], max_tokens=1, temperature=0, logprobs=1,
                 echo=True).json()["choices"][0]["logprobs"]
    assert same["token_logprobs"][1:] == pytest.approx(lp["token_logprobs"][1:], abs=1e-5)


def test_logprobs_without_echo_cover_the_generated_text(served: dict[str, Any]) -> None:
    r = _post(served, prompt="The quick", max_tokens=6, temperature=0, logprobs=2)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    assert choice["text"].startswith("".join(lp["tokens"])[: len(choice["text"])])
    assert all(len(t) == 2 for t in lp["top_logprobs"])
    assert lp["text_offset"][0] == len("The quick")
    assert all(v <= 0 and math.isfinite(v) for v in lp["token_logprobs"])
    plain = _post(served, prompt="The quick", max_tokens=6, temperature=0).json()
    assert plain["choices"][0]["logprobs"] is None
    assert plain["choices"][0]["text"] == choice["text"]


@pytest.mark.parametrize(("body", "param", "needle"), [
    ({"prompt": PROMPT, "logprobs": 6}, "logprobs", "less than or equal to 5"),
    ({"prompt": PROMPT, "logprobs": 1, "stream": True}, "stream", "not supported with stream"),
    ({"prompt": [[1, 99999]], "echo": True, "max_tokens": 0}, "prompt", "token ids must be"),
    ({"prompt": [[5, 6], [7, 8]], "echo": True}, "prompt", "batches are not supported"),
    ({"prompt": "word " * 80, "echo": True, "max_tokens": 0}, "prompt", "context holds 64"),
    ({"prompt": PROMPT, "max_tokens": -1}, "max_tokens", "greater than or equal to 0"),
])
def test_bad_scoring_requests_get_400(served: dict[str, Any], body: dict[str, Any],
                                      param: str, needle: str) -> None:
    r = _post(served, **body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and needle in error["message"], error


def test_chat_completions_still_refuse_logprobs(served: dict[str, Any]) -> None:
    r = httpx.post(served["url"] + "/v1/chat/completions", timeout=30, json={
        "model": "tiny", "messages": [{"role": "user", "content": "Say hello."}],
        "logprobs": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "logprobs"


@pytest.mark.slow  # imports lm-eval and transformers: ~20 s on an idle 2-core CPU
def test_lm_eval_runs_a_loglikelihood_task_against_the_server(
        served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-evaluation-harness's local-completions backend, a multiple-choice task from a
    local JSONL file in HellaSwag's schema; each of its log-likelihoods equals ours."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    docs = [{"ctx": "Say", "endings": ["hello.", "goodbye."], "label": 0},
            {"ctx": "The quick brown", "endings": ["fox.", "yes!"], "label": 0}]
    data = tmp_path / "hs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "task.yaml").write_text(
        "task: tiny_hellaswag\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    validation: {data}\n"
        "validation_split: validation\noutput_type: multiple_choice\n"
        "doc_to_text: '{{ctx}}'\ndoc_to_choice: '{{endings}}'\ndoc_to_target: '{{label}}'\n"
        "metric_list:\n  - metric: acc\n")
    results = lm_eval.simple_evaluate(
        model="local-completions",
        model_args={"model": "tiny", "base_url": served["url"] + "/v1/completions",
                    "tokenizer": str(served["folder"] / "tokenizer"),
                    "tokenizer_backend": "huggingface", "max_length": 60, "max_retries": 1},
        tasks=["tiny_hellaswag"], task_manager=TaskManager(include_path=str(tmp_path)),
        log_samples=True)
    samples = results["samples"]["tiny_hellaswag"]
    tok = served["tok"]
    scored = 0
    for sample in samples:
        for (context, continuation), (loglik, _) in zip(
                [a[:2] for a in sample["arguments"]], [r[0] for r in sample["resps"]],
                strict=True):
            whole, head = tok.encode(context + continuation), tok.encode(context)
            rows = _expected(served, whole)
            ours = sum(rows[i][whole[i]] for i in range(len(head), len(whole)))
            assert loglik == pytest.approx(ours, abs=1e-4)
            scored += 1
    assert scored == 4
    assert 0.0 <= results["results"]["tiny_hellaswag"]["acc,none"] <= 1.0
