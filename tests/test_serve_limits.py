"""The server's limits against abusive clients, on a real uvicorn on 127.0.0.1: body size
(413), message count, stop strings, seeds torch cannot take, Host names (DNS rebinding),
the optional API key, and tokenising off the event loop (``/health`` stays fast)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch

from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.serve.guard import allowed_hosts, host_name
from crawl2chat.serve.server import Limits, create_app, serving_in_background
from crawl2chat.tokenizer.tokenizer import Tokenizer

HELLO = [{"role": "user", "content": "hi"}]
KEY = "sk-test-0123456789"


def _serve(tok: Tokenizer, **limits: Any) -> Any:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, block_size=64, n_layer=1, n_head=2, n_embd=32))
    return serving_in_background(create_app(model.eval(), tok, "tiny",
                                            Limits(max_tokens=4, **limits)))


@pytest.fixture(scope="module")
def url(tok: Tokenizer) -> Iterator[str]:
    with _serve(tok, max_body_bytes=20_000) as base:
        yield base


def _chat(url: str, **body: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions",
                      json={"model": "tiny", "messages": HELLO, "max_tokens": 2, **body},
                      timeout=30)


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()["error"]


def test_an_oversized_body_gets_413_by_length_and_when_chunked(url: str) -> None:
    big = "x" * 30_000
    error = _error(_chat(url, messages=[{"role": "user", "content": big}]), 413)
    assert error["code"] == "request_too_large" and "20000" in error["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"y" * 1000
        yield b'"}]}'

    r = httpx.post(url + "/v1/chat/completions", content=chunks(),
                   headers={"content-type": "application/json"}, timeout=30)
    assert _error(r, 413)["code"] == "request_too_large"
    assert _chat(url).status_code == 200  # the server is fine afterwards


@pytest.mark.parametrize(("body", "param", "needle"), [
    ({"messages": HELLO * 513}, "messages", "at most 512"),
    ({"stop": ["z" * 257]}, "stop", "at most 256 characters"),
    ({"seed": 2**70}, "seed", "less than or equal to"),
    ({"seed": -(2**64)}, "seed", "greater than or equal to"),
])
def test_caps_and_a_seed_out_of_torch_range_get_a_json_400(
        url: str, body: dict[str, Any], param: str, needle: str) -> None:
    error = _error(_chat(url, **body), 400)
    assert error["param"] == param and needle in error["message"], error


def test_seeds_torch_accepts_are_served(url: str) -> None:
    for seed in (0, -1, 2**64 - 1, -(2**63)):
        assert _chat(url, seed=seed).status_code == 200, seed


def test_a_foreign_host_name_is_refused(url: str) -> None:
    port = url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        r = httpx.get(url + "/v1/models", headers={"host": host})
        assert _error(r, 400)["code"] == "invalid_host", host
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert httpx.get(url + "/v1/models", headers={"host": host}).status_code == 200, host


def test_allowed_hosts_add_the_listening_address_and_named_hosts() -> None:
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM:80") == "example.com"
    assert "10.0.0.5" in allowed_hosts("10.0.0.5", ())
    assert allowed_hosts("0.0.0.0", ["chat.example:443"]) == {
        "localhost", "127.0.0.1", "::1", "chat.example"}


def test_with_an_api_key_v1_needs_the_bearer_token(tok: Tokenizer) -> None:
    with _serve(tok, api_key=KEY) as base:
        body = {"model": "tiny", "messages": HELLO, "max_tokens": 2}
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
            r = httpx.post(base + "/v1/chat/completions", json=body, headers=headers)
            error = _error(r, 401)
            assert error["type"] == "authentication_error" and KEY not in r.text
            assert r.headers["www-authenticate"] == "Bearer"
        r = httpx.post(base + "/v1/chat/completions", json=body,
                       headers={"authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and r.json()["choices"]
        assert httpx.get(base + "/health").status_code == 200  # probes need no key


def test_a_huge_prompt_is_tokenised_off_the_event_loop(tok: Tokenizer) -> None:
    text = "the cat sat on the mat; " * 300_000  # 7.2M chars: a second or more of tokenising
    with _serve(tok, max_body_bytes=10_000_000, max_input_chars=10_000_000) as base:
        started = time.monotonic()
        slow = threading.Thread(target=lambda: httpx.post(
            base + "/v1/completions", json={"model": "tiny", "prompt": text}, timeout=120))
        slow.start()
        time.sleep(0.3)  # the body is in, tokenising has begun
        waits = []
        while slow.is_alive() and len(waits) < 40:
            t0 = time.monotonic()
            assert httpx.get(base + "/health", timeout=60).status_code == 200
            waits.append(time.monotonic() - t0)
            time.sleep(0.05)
        slow.join()
        busy = time.monotonic() - started
    # on the event loop, one probe would wait out the whole tokenising (about `busy`)
    assert len(waits) >= 2, f"the huge request took only {busy:.2f} s"
    assert max(waits) < max(0.5, busy / 3), (waits, busy)
