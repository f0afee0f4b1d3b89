"""The OpenAI-compatible server, called by the official ``openai`` client over loopback.

The model is a tiny GPT fitted for a few seconds to a handful of conversations, so that
greedy replies are known ("Say hello." -> "Hello!") and end with <|assistant_end|>.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch
from chromium import headless_chromium, needs_chromium

from crawl2chat.chat.template import render_prompt, to_examples
from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.serve.server import Limits, load_app, serving_in_background
from crawl2chat.tokenizer.train import train_bpe

CAP = 40  # the server's max_tokens cap in these tests
PAIRS = {"Say hello.": "Hello!", "Say thanks.": "Thanks!", "Say goodbye.": "Goodbye!",
         "Say yes.": "Yes!"}
HELLO = [{"role": "user", "content": "Say hello."}]


def _fit_tiny_model(folder: Path) -> None:
    """A 2-layer GPT that has learned PAIRS by heart (a plain loop: ~2 s on 2 cores)."""
    texts = [t for pair in PAIRS.items() for t in pair] + ["The quick brown fox."]
    tok = train_bpe(texts * 3, vocab_size=300)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, block_size=64, n_layer=2, n_head=2, n_embd=64))
    conversations = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                     for q, a in PAIRS.items()]
    rows = to_examples(conversations * 2, tok, block_size=64)
    inputs = torch.stack([r["input_ids"] for r in rows])
    targets = torch.stack([r["targets"] for r in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(120):
        _, loss = model(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_model(model.eval(), tok, folder)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve") / "tiny"
    _fit_tiny_model(folder)
    return folder


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[dict[str, Any]]:
    """The app served by uvicorn on a free loopback port, in a background thread."""
    app = load_app(model_dir, limits=Limits(max_tokens=CAP, max_concurrency=2))
    with serving_in_background(app) as url:
        yield {"app": app, "url": url, "tok": app.state.engine.tok}


@pytest.fixture(scope="module")
def client(server: dict[str, Any]) -> openai.OpenAI:
    # no retries: a 429 must surface, not be retried away
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key="x", max_retries=0)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"


def test_chat_completion_answers_with_the_template_and_counts_usage(
        client: openai.OpenAI, server: dict[str, Any]) -> None:
    reply = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and choice.message.content == "Hello!"
    assert choice.finish_reason == "stop"
    tok = server["tok"]
    assert reply.usage.prompt_tokens == len(render_prompt(HELLO, tok))
    assert reply.usage.completion_tokens == len(tok.encode("Hello!")) + 1  # + <|assistant_end|>
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_max_tokens_cuts_the_reply_with_finish_reason_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0,
                                           max_tokens=1)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 1
    assert "Hello!".startswith(reply.choices[0].message.content)


def test_streaming_sends_role_deltas_finish_and_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="tiny", messages=HELLO, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello!"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 1


def test_raw_stream_is_server_sent_events_ending_with_done(server: dict[str, Any]) -> None:
    body = {"model": "tiny", "messages": HELLO, "temperature": 0, "stream": True}
    with httpx.stream("POST", server["url"] + "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert "<|" not in "".join(events)  # no control token text ever leaves the server


def test_completions_continue_a_prompt_whole_and_streamed(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="tiny", prompt="The quick", max_tokens=8,
                                      temperature=0)
    assert whole.object == "text_completion"
    assert whole.choices[0].finish_reason in {"stop", "length"}
    assert whole.usage.completion_tokens <= 8
    streamed = list(client.completions.create(model="tiny", prompt="The quick", max_tokens=8,
                                              temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == whole.choices[0].text
    assert streamed[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_the_same_seed_gives_the_same_sampled_reply(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        return client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Say something."}],
            temperature=1.5, max_tokens=12, seed=seed).choices[0].message.content

    assert sample(7) == sample(7)
    assert len({sample(s) for s in range(4)}) > 1


def test_top_p_keeps_only_the_most_likely_tokens(client: openai.OpenAI) -> None:
    def sample(seed: int, top_p: float) -> str:
        return client.chat.completions.create(
            model="tiny", messages=HELLO, temperature=1.5, top_p=top_p, max_tokens=12,
            seed=seed).choices[0].message.content

    # a nucleus this small holds only the most likely token: sampling becomes greedy
    assert {sample(s, 1e-6) for s in range(4)} == {"Hello!"}
    assert len({sample(s, 1.0) for s in range(6)}) > 1


@pytest.mark.parametrize(("stop", "expected"), [
    ("l", "He"), (["lo", "!"], "Hel"), ("llo!", "He"), (["zz"], "Hello!"), ([], "Hello!")])
def test_stop_sequences_end_the_reply_and_are_left_out(
        client: openai.OpenAI, stop: str | list[str], expected: str) -> None:
    whole = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0,
                                           stop=stop)
    assert whole.choices[0].message.content == expected
    assert whole.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(model="tiny", messages=HELLO, temperature=0,
                                                 stop=stop, stream=True))
    pieces = [c.choices[0].delta.content or "" for c in chunks]
    assert "".join(pieces) == expected  # no piece of a stop sequence was ever sent
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completions_take_stop_and_top_p(client: openai.OpenAI) -> None:
    free = client.completions.create(model="tiny", prompt="The quick", max_tokens=12,
                                     temperature=0).choices[0]
    assert len(free.text) > 2
    stop = free.text[2:4]
    cut = client.completions.create(model="tiny", prompt="The quick", max_tokens=12,
                                    temperature=0, stop=[stop], top_p=0.9).choices[0]
    assert cut.text == free.text[: free.text.index(stop)] and cut.finish_reason == "stop"
    streamed = list(client.completions.create(model="tiny", prompt="The quick", max_tokens=12,
                                              temperature=0, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == cut.text


@pytest.mark.parametrize(("body", "param", "needle"), [
    ({"messages": []}, "messages", "at least 1 item"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role", "'user'"),
    ({"messages": HELLO, "max_tokens": CAP + 1}, "max_tokens", f"at most {CAP}"),
    ({"messages": HELLO, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ({"messages": HELLO, "temperature": 3}, "temperature", "less than or equal to 2"),
    ({"messages": [*HELLO, {"role": "assistant", "content": "Hi"}]}, "messages",
     "must end with a user message"),
    ({"messages": [{"role": "user", "content": "word " * 200}]}, "messages",
     "context holds 64 tokens"),
    ({"messages": HELLO, "top_p": 0}, "top_p", "greater than 0"),
    ({"messages": HELLO, "top_p": 1.5}, "top_p", "less than or equal to 1"),
    ({"messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({"messages": HELLO, "stop": ""}, "stop", "non-empty"),
    ({"messages": HELLO, "tools": [{"type": "function"}]}, "tools", "not supported"),
    ({"messages": HELLO, "n": 2}, "n", "less than or equal to 1"),
])
def test_bad_chat_requests_get_400_in_openai_error_shape(
        client: openai.OpenAI, body: dict[str, Any], param: str, needle: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", **body)
    assert err.value.status_code == 400
    error = err.value.response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert needle in error["message"], error["message"]


def test_unknown_model_gets_404_and_bad_json_400(client: openai.OpenAI,
                                                  server: dict[str, Any]) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    r = httpx.post(server["url"] + "/v1/chat/completions", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.get(server["url"] + "/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_a_saturated_server_answers_429_then_recovers(client: openai.OpenAI,
                                                      server: dict[str, Any]) -> None:
    slots = server["app"].state.engine.slots
    held = [slots.acquire(blocking=False) for _ in range(2)]  # as two long generations would
    try:
        assert all(held)
        with pytest.raises(openai.RateLimitError, match="busy"):
            client.chat.completions.create(model="tiny", messages=HELLO)
    finally:
        for _ in held:
            slots.release()
    assert client.chat.completions.create(model="tiny", messages=HELLO, temperature=0,
                                          max_tokens=2).choices
    # every finished request gave its slot back, streamed or not
    assert all(slots.acquire(blocking=False) for _ in range(2))
    slots.release()
    slots.release()


def test_web_page_is_served_and_talks_to_the_streaming_endpoint(
        server: dict[str, Any]) -> None:
    r = httpx.get(server["url"] + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/v1/chat/completions" in r.text and "stream: true" in r.text


@needs_chromium
def test_web_page_chats_in_headless_chromium(server: dict[str, Any], tmp_path: Path) -> None:
    """Load the page with ?q=, let it stream the reply, then type a follow-up and send it."""
    with headless_chromium(tmp_path) as tools:
        page = tools.open_page(server["url"] + "/?" + urllib.parse.urlencode({"q": "Say hello."}))
        state = "document.body ? document.body.dataset.state : null"
        tools.wait_for(page, state, "done")
        tools.evaluate(page, "document.getElementById('input').value = 'Say yes.';"
                       "document.getElementById('send').click(); 0")
        tools.wait_for(page, state, "done")
        bubbles = tools.evaluate(page, "[...document.querySelectorAll('#log .msg')]"
                                 ".map(d => [d.className, d.textContent])")
    assert [b[0] for b in bubbles] == ["msg user", "msg assistant"] * 2, bubbles
    assert bubbles[:2] == [["msg user", "Say hello."], ["msg assistant", "Hello!"]]
    assert bubbles[2][1] == "Say yes." and "<|" not in bubbles[3][1]


def test_serve_command_serves_a_model_folder(model_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "crawl2chat.cli", "serve", str(model_dir),
                             "--port", str(port), "--max-tokens", "16"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 45
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "serve did not come up"
            try:
                card = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"][0]
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert card["id"] == "tiny" and card["max_tokens"] == 16
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert "web chat:" in (proc.stdout.read() if proc.stdout else "")


def test_serve_help_names_every_option() -> None:
    out = subprocess.run([sys.executable, "-m", "crawl2chat.cli", "serve", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for option in ("--port", "--host", "--max-tokens", "--max-concurrency", "--model-name",
                   "--top-k", "OpenAI"):
        assert option in out
