"""``crawl2chat synth`` against our own server as the teacher, on loopback.

The teacher is an untrained 1-layer GPT served by serve/server.py: its replies are random
tokens, which is all synth needs to be tested (schema, resume, retries, de-duplication).
A second real local HTTP server in front of it fails requests on purpose (503, 429).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pandas as pd
import pytest
import torch

from crawl2chat.chat.data import Source, load_sources
from crawl2chat.cli import main
from crawl2chat.errors import InputError
from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.serve.server import Limits, load_app, serving_in_background
from crawl2chat.synth.files import Output, passage_seeds, topic_seeds
from crawl2chat.synth.teacher import RateLimiter, SynthCfg, run_synth
from crawl2chat.tokenizer.train import train_bpe

TOPICS = "# seed topics\nGardening on a balcony\n\nThe history of tea\nLearning to juggle\n"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our server on a free loopback port with a random model: the base URL (…/v1)."""
    folder = tmp_path_factory.mktemp("teacher") / "teacher"
    tok = train_bpe(["Write the first message about gardening, tea and juggling."] * 3,
                    vocab_size=300)
    torch.manual_seed(0)
    save_model(GPT(GPTConfig(vocab_size=320, block_size=1024, n_layer=1, n_head=2, n_embd=32)),
               tok, folder)
    app = load_app(folder, limits=Limits(max_tokens=16, max_concurrency=4))
    with serving_in_background(app) as url:
        yield f"{url}/v1"


def _cfg(endpoint: str, out: Path, **kw: Any) -> SynthCfg:
    return SynthCfg(**{"endpoint": endpoint, "model": "teacher", "out": out, "turns": 2,
                       "rps": 0, "max_tokens": 6, "backoff_s": 0.01, **kw})


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_synth_writes_conversations_with_provenance_and_resumes(teacher: str,
                                                                tmp_path: Path) -> None:
    (tmp_path / "topics.txt").write_text(TOPICS)
    seeds = topic_seeds(tmp_path / "topics.txt")
    assert [s.text for s in seeds] == ["Gardening on a balcony", "The history of tea",
                                       "Learning to juggle"]
    out = tmp_path / "synth.jsonl"
    counts = run_synth(_cfg(teacher, out, n=2), seeds)
    assert counts == {"written": 2}
    first = _records(out)  # in the order the conversations were finished
    by_job = {r["synth"]["job"]: r for r in first}
    assert by_job[f"{seeds[0].id}#0"]["synth"]["seed"]["line"] == f"{tmp_path / 'topics.txt'}:2"
    for seed in seeds[:2]:
        record = by_job[f"{seed.id}#0"]
        assert [m["role"] for m in record["messages"]] == ["user", "assistant"] * 2
        assert all(m["content"].strip() for m in record["messages"])
        synth = record["synth"]
        assert synth["seed"]["topic"] == seed.text
        assert synth["teacher"] == {"model": "teacher", "endpoint": teacher}
        assert synth["created"].endswith("+00:00") and synth["turns"] == 2
    # a crash left half a line: it is dropped, and only the missing jobs are done
    with out.open("a") as f:
        f.write('{"messages": [{"role": "user", "con')
    counts = run_synth(_cfg(teacher, out, n=5, concurrency=3), seeds)
    assert counts == {"already_done": 2, "written": 3}
    records = _records(out)
    assert records[:2] == first
    jobs = [r["synth"]["job"] for r in records]
    assert len(set(jobs)) == 5 and {f"{s.id}#1" for s in seeds[:2]} <= set(jobs)
    assert run_synth(_cfg(teacher, out, n=5), seeds) == {"already_done": 5}
    # the output is an SFT source as it is
    loaded = load_sources([Source(str(out))], tmp_path)
    assert len(loaded.conversations) == 5 and not loaded.skipped


class _Flaky(BaseHTTPRequestHandler):
    """Fails the first requests (503, then 429 with Retry-After), then passes them on."""

    failures: ClassVar[list[tuple[int, dict[str, str]]]] = []
    upstream = ""
    seen: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.failures:
            status, headers = self.failures.pop(0)
            payload = json.dumps({"error": {"message": "try later"}}).encode()
        else:
            reply = httpx.post(self.upstream + self.path.removeprefix("/v1"), content=body,
                               headers={"content-type": "application/json"}, timeout=30)
            status, headers, payload = reply.status_code, {}, reply.content
        self.seen.append(status)
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json",
                            "Content-Length": str(len(payload))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_retries_on_503_and_429_then_succeeds(teacher: str, tmp_path: Path) -> None:
    _Flaky.upstream, _Flaky.seen = teacher, []
    _Flaky.failures = [(503, {}), (429, {"Retry-After": "0"})]
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        (tmp_path / "t.txt").write_text("Rainy days\n")
        out = tmp_path / "out.jsonl"
        counts = run_synth(_cfg(f"http://127.0.0.1:{proxy.server_port}/v1", out, turns=1),
                           topic_seeds(tmp_path / "t.txt"))
    finally:
        proxy.shutdown()
    assert counts == {"written": 1}
    # the opener after two retries, then the answer (an empty random reply is asked again)
    assert _Flaky.seen[:2] == [503, 429] and _Flaky.seen[2:] == [200] * (len(_Flaky.seen) - 2)
    assert len(_Flaky.seen) >= 4
    assert len(_records(out)[0]["messages"]) == 2


def test_exhausted_retries_fail_the_job_and_other_errors_stop_the_run(
        teacher: str, tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("Rainy days\n")
    out = tmp_path / "out.jsonl"
    nothing = "http://127.0.0.1:9/v1"  # the discard port: connection refused
    counts = run_synth(_cfg(nothing, out, max_retries=2), topic_seeds(tmp_path / "t.txt"))
    assert counts == {"failed": 1}
    with pytest.raises(InputError, match=r"refused the request \(HTTP 404: the model "
                                         r"'gpt-9' does not exist"):
        run_synth(_cfg(teacher, out, model="gpt-9"), topic_seeds(tmp_path / "t.txt"))
    assert not out.exists() or not out.read_text()


def test_passages_of_the_text_stage_seed_grounded_conversations(teacher: str,
                                                                tmp_path: Path) -> None:
    text = "Debian packages are built from source packages.\n" * 6
    pd.DataFrame({"doc_id": ["d1", "d2"], "url": ["https://a.example/1", "https://b/2"],
                  "lang": ["en", "en"], "text": [text, "too short"]}).to_parquet(
        tmp_path / "documents-00000.parquet")
    seeds = passage_seeds(tmp_path)
    assert [s.id for s in seeds] == ["doc:d1"]
    out = tmp_path / "out.jsonl"
    assert run_synth(_cfg(teacher, out, turns=1), seeds) == {"written": 1}
    assert _records(out)[0]["synth"]["seed"] == {"id": "doc:d1", "kind": "passage",
                                                 "doc_id": "d1", "url": "https://a.example/1"}


def test_output_drops_duplicates_by_normalized_content(tmp_path: Path) -> None:
    out = Output(tmp_path / "o.jsonl")

    def record(job: str, text: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": text},
                             {"role": "assistant", "content": "Fine."}], "synth": {"job": job}}

    assert out.add(record("a#0", "How are you?"))
    assert not out.add(record("b#0", "  how ARE   you? "))
    assert out.add(record("c#0", "How old are you?"))
    again = Output(tmp_path / "o.jsonl")
    assert again.jobs == {"a#0", "c#0"} and not again.add(record("d#0", "how are you?"))
    (tmp_path / "bad.jsonl").write_text('{"messages": []}\n{"x": 1}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1: not a synth record"):
        Output(tmp_path / "bad.jsonl")


def test_rate_limiter_spaces_request_starts() -> None:
    limiter = RateLimiter(rps=50)
    started = time.monotonic()
    for _ in range(6):
        limiter.wait()
    assert time.monotonic() - started >= 5 / 50 * 0.95


def test_cli_synth_writes_and_reports(teacher: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.txt").write_text("Bicycles\nKites\n")
    out = tmp_path / "cli.jsonl"
    args = ["synth", "--endpoint", teacher, "--model", "teacher", "--topics",
            str(tmp_path / "t.txt"), "--out", str(out), "--turns", "1", "--rps", "0",
            "--max-tokens", "6"]
    assert main(args) == 0
    assert "2 written, 0 already there, 0 duplicates, 0 failed" in capsys.readouterr().out
    assert len(_records(out)) == 2
