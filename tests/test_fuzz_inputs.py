"""Fuzzing (hypothesis, bounded and derandomized) of what comes from outside: chat JSONL and
Parquet rows, OASST message trees, and request bodies sent to a running server. The
invariants: no exception but a clear InputError naming the file, every record read is
either kept or a counted skip, and the server answers every body with JSON: never a 500."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawl2chat.chat.data import _collect, candidates
from crawl2chat.errors import InputError
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.serve.server import Limits, create_app
from crawl2chat.tokenizer.tokenizer import Tokenizer

FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
TEXT = st.text(max_size=40)
SCALAR = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT
ANY = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4)
                   | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
ROLE = st.sampled_from(["user", "assistant", "system", "developer", "tool", "human", "gpt",
                        "prompter", "", "USER"]) | ANY
MESSAGE = st.fixed_dictionaries({"role": ROLE, "content": TEXT | ANY},
                                optional={"name": ANY, "from": ROLE, "value": TEXT | ANY})
RECORD = (st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=5) | ANY},
                                optional={"language": ANY, "lang": ANY})
          | st.fixed_dictionaries({"conversations": st.lists(MESSAGE, max_size=5) | ANY})
          | ANY)


def _jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _read_all(path: Path, fmt: str) -> int:
    """Kept + skipped conversations of ``path``; an InputError must name the file."""
    try:
        loaded = _collect(candidates(path, fmt), path, set())
    except InputError as err:
        assert str(path) in str(err) or path.name in str(err), err
        return -1
    return len(loaded.conversations) + sum(loaded.skipped.values())


@FUZZ
@given(records=st.lists(RECORD, min_size=1, max_size=6),
       fmt=st.sampled_from(["messages", "sharegpt"]))
def test_chat_jsonl_rows(records: list[Any], fmt: str, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "chat.jsonl", records)
    counted = _read_all(path, fmt)
    assert counted in (-1, len(records))


PARQUET_MESSAGE = st.fixed_dictionaries({"role": st.none() | st.sampled_from(
    ["user", "assistant", "system", "x", ""]), "content": st.none() | TEXT})


@FUZZ
@given(rows=st.lists(st.none() | st.lists(PARQUET_MESSAGE, max_size=4), min_size=1,
                     max_size=6))
def test_chat_parquet_rows(rows: list[Any], tmp_path: Path) -> None:
    path = tmp_path / "chat.parquet"
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    pq.write_table(pa.table({"messages": pa.array(rows, pa.list_(message))}), path)
    assert _read_all(path, "messages") in (-1, len(rows))


def _oasst_message(draw: Any, ids: list[str], i: int) -> dict[str, Any]:
    parent = draw(st.none() | st.sampled_from(ids) | TEXT) if i else None
    row: dict[str, Any] = {
        "message_id": ids[i], "parent_id": parent,
        "message_tree_id": draw(st.sampled_from(["t1", "t2"]) | ANY),
        "role": draw(st.sampled_from(["prompter", "assistant"]) | ANY),
        "text": draw(TEXT | ANY),
        "lang": draw(st.sampled_from(["en", "de"]) | ANY),
        "rank": draw(st.none() | st.integers(0, 3) | st.floats() | ANY),
        "deleted": draw(st.booleans() | ANY),
        "review_result": draw(st.none() | st.booleans() | ANY),
        "tree_state": draw(st.sampled_from(["ready_for_export", "aborted_low_grade"]) | ANY)}
    for key in draw(st.lists(st.sampled_from(sorted(row)), max_size=2, unique=True)):
        del row[key]  # a missing field
    return row


@st.composite
def oasst_rows(draw: Any) -> list[Any]:
    ids = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=1,
                        max_size=6))  # repeats: duplicate ids
    return [_oasst_message(draw, ids, i) for i in range(len(ids))]


@FUZZ
@given(rows=oasst_rows(), mode=st.sampled_from(["best", "all_paths"]))
def test_oasst_message_trees(rows: list[Any], mode: str, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "oasst.jsonl", rows)
    try:
        found = list(candidates(path, "oasst", ("en",), mode))
        loaded = _collect(iter(found), path, set())
    except InputError as err:
        assert path.name in str(err), err
        return
    for candidate in found:  # a conversation or the reason it has none
        assert (candidate.messages is None) == (candidate.reason is not None)
    assert len(loaded.conversations) + sum(loaded.skipped.values()) == len(found)
    for conversation in loaded.conversations:  # what is kept ends on the assistant
        assert conversation.messages[-1][0] == "assistant"


@pytest.fixture(scope="module")
def client(tok: Tokenizer) -> TestClient:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, block_size=64, n_layer=1, n_head=2, n_embd=32))
    app = create_app(model.eval(), tok, "tiny", Limits(max_tokens=3, max_body_bytes=50_000))
    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)


FIELD_VALUES = {
    "max_tokens": st.integers(-5, 10) | ANY,
    "max_completion_tokens": st.integers(-5, 10) | ANY,
    "temperature": st.floats(-1, 3) | ANY, "top_p": st.floats(-1, 2) | ANY,
    "top_k": st.integers(-3, 2**70) | ANY, "seed": st.integers(-(2**70), 2**70) | ANY,
    "stop": TEXT | st.lists(TEXT, max_size=6) | ANY, "n": st.integers(0, 3) | ANY,
    "stream": st.booleans() | ANY, "stream_options": ANY,
    "logprobs": ANY, "tools": ANY, "echo": ANY,
}
BODY = st.fixed_dictionaries({"model": st.just("tiny") | st.just("tiny") | ANY}, optional={
    **FIELD_VALUES, "messages": st.lists(MESSAGE, max_size=4) | ANY,
    "prompt": TEXT | st.lists(TEXT, max_size=2) | ANY})


@FUZZ
@given(body=BODY | ANY, endpoint=st.sampled_from(["/v1/chat/completions",
                                                   "/v1/completions"]))
def test_server_request_bodies(client: TestClient, body: Any, endpoint: str) -> None:
    if isinstance(body, float) and not math.isfinite(body):
        body = str(body)  # not JSON at all: sent as bytes below
    r = client.post(endpoint, content=json.dumps(body).encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code in (200, 400, 404, 413, 429), (r.status_code, r.text[:300])
    if r.status_code != 200:
        error = r.json()["error"]
        assert error["message"] and error["type"]
    elif r.headers["content-type"].startswith("text/event-stream"):
        assert r.text.rstrip().endswith("data: [DONE]")
    else:
        assert r.json()["choices"]
