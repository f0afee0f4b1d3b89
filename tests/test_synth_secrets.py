"""``synth`` against a real misbehaving teacher on 127.0.0.1 (odd ``Retry-After``
values), and credentials kept out of everything recorded: synth's log and output, and a
stage run's manifest, outputs and MLflow store (crawl from a presigned, password URL)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import crawl_over_http

from crawl2chat import paths, redact
from crawl2chat.synth.files import Seed
from crawl2chat.synth.teacher import SynthCfg, retry_after_s, run_synth

REPO = Path(__file__).resolve().parents[1]
API_KEY = "sk-live-SECRETKEY0123"
PASSWORD = "PASSWORDSECRET77"
SIGNATURE = "SIGNATURESECRET99"
SECRETS = (API_KEY, PASSWORD, SIGNATURE)


class _Teacher(BaseHTTPRequestHandler):
    """Answers each conversation's requests after 429s with hostile ``Retry-After``s."""

    hints: ClassVar[list[str]] = ["-1", "nan", "soon", "inf", "-inf", "1e309"]
    calls = 0
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.lock:
            n = type(self).calls
            type(self).calls += 1
        assert self.headers["authorization"] == f"Bearer {API_KEY}"
        if n < len(self.hints):
            payload = {"error": {"message": f"slow down, {self.headers['authorization']}"}}
            self._send(429, payload, {"Retry-After": self.hints[n]})
            return
        text = "What is it?" if body["messages"][-1]["role"] == "user" else "It is that."
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] = {}  # noqa: B006
              ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in {"content-type": "application/json", **headers}.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def teacher() -> Iterator[int]:
    _Teacher.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Teacher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_retry_after_takes_seconds_or_a_date_and_nothing_else() -> None:
    assert retry_after_s("5") == 5.0 and retry_after_s("0") == 0.0
    for bad in ("-1", "nan", "inf", "-inf", "1e309", "soon", "", None):
        assert retry_after_s(bad) is None, bad
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_s(later) <= 30  # type: ignore[operator]
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def _files_hold_no_secret(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, f"{secret} in {file}"


def test_synth_survives_bad_retry_after_and_records_no_credentials(
        teacher: int, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "synth.jsonl"
    cfg = SynthCfg(endpoint=f"http://user:{PASSWORD}@127.0.0.1:{teacher}/v1", model="t",
                   out=out, turns=1, rps=0, concurrency=1, max_retries=7, backoff_s=0.01,
                   api_key=API_KEY)
    with caplog.at_level(logging.DEBUG):
        counts = run_synth(cfg, [Seed("topic:a", "topic", "cats")])
    assert counts["written"] == 1 and _Teacher.calls == 6 + 2
    record = json.loads(out.read_text())
    assert record["synth"]["teacher"]["endpoint"] == f"http://***@127.0.0.1:{teacher}/v1"
    assert "retrying" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text
    _files_hold_no_secret(tmp_path)


def test_params_over_mlflows_limit_are_hashed_and_urls_redacted() -> None:
    long = "x" * 10_000
    value = redact.param_value(long)
    assert len(value) == redact.MLFLOW_PARAM_LIMIT and value.endswith(
        f"sha256 {__import__('hashlib').sha256(long.encode()).hexdigest()})")
    assert redact.params({"a": "s3://k:s@b/x?X-Amz-Signature=z&X-Amz-Expires=9", "b": "1"}) == {
        "a": "s3://***@b/x?X-Amz-Signature=***&X-Amz-Expires=9", "b": "1"}
    assert redact.redact("see https://h/p?sig=abc&sv=1 and ftp://u:p@h/") == (
        "see https://h/p?sig=***&sv=1 and ftp://***@h/")


def test_a_stage_records_no_credentials_of_its_source_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    project, _ = crawl_over_http(
        tmp_path, lambda path: (f"http://reader:{PASSWORD}@{path}"
                                f"?X-Amz-Expires=60&X-Amz-Signature={SIGNATURE}"))
    out = paths.stage_output("crawl", project)
    manifest = json.loads((out / paths.MANIFEST).read_text())
    [name] = manifest["inputs"]
    assert name.startswith("http://***@127.0.0.1:") and "X-Amz-Signature=***" in name
    for folder in (out, project / paths.METRICS_DIR):
        _files_hold_no_secret(folder)
    store = Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    data = store.read_bytes() + b"".join(
        f.read_bytes() for f in store.parent.rglob("*") if f.is_file() and f != store)
    for secret in (PASSWORD, SIGNATURE):
        assert secret.encode() not in data
