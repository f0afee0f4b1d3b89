"""``crawl2chat synth``: a teacher model writes conversations from seed topics or passages.

In:  seeds (synth/files.py: ``topic_seeds``, one topic a line; ``passage_seeds``, documents
     of the ``text`` stage, ``data/text/documents-*.parquet``) and a teacher behind any
     OpenAI-compatible ``POST {endpoint}/chat/completions`` (our own ``crawl2chat serve``
     included).
Out: a messages-format JSONL file, one conversation a line, usable as an ``sft.data``
     source: ``{"messages": [...], "source": "synth", "synth": {job, seed, teacher,
     created, turns}}`` (the provenance: which seed, which teacher model, when).

Each conversation is written UltraChat-style: the teacher writes the user's opening
question about the seed, answers it as the assistant, writes the user's follow-up, answers
again, for ``turns`` exchanges. The run is polite and restartable: requests start at most
``rps`` per second, at most ``concurrency`` conversations are in flight, 429 / 5xx /
timeouts are retried with exponential backoff (``Retry-After`` honoured when it is a
sane number of seconds or a date; ``-1``, ``nan`` or garbage fall back to the backoff), an
empty reply
is asked again, any other error stops the run. Every conversation is appended as one
whole line; a rerun skips the jobs already in the file (a half-written last line left by
a crash is dropped) and a conversation whose normalized text is already there is not
written twice. The API key is sent only as a header: messages, logs and the records name
the endpoint without credentials (crawl2chat.redact).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from crawl2chat.errors import InputError
from crawl2chat.redact import redact, redact_url
from crawl2chat.synth.files import Output, Seed

log = logging.getLogger("crawl2chat.synth")
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
ASSISTANT = "You are a helpful, honest and concise assistant."
OPENER = ("You write the first message a curious person sends to an AI assistant. {about} "
          "Write only that message: one clear question or request, at most three sentences.")
FOLLOW_UP = ("You play a person talking with an AI assistant. Read the conversation and "
             "write the person's next message: a natural follow-up question. Write only "
             "that message.")


@dataclass
class SynthCfg:
    """How to ask the teacher; the ``crawl2chat synth`` options."""

    endpoint: str  # OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1
    model: str
    out: Path
    n: int | None = None  # conversations to have in ``out``; None = one per seed
    turns: int = 2  # user/assistant exchanges per conversation
    rps: float = 1.0  # request starts per second, all workers together (0 = no limit)
    concurrency: int = 2  # conversations in flight
    max_retries: int = 5  # per request, on 429 / 5xx / timeouts
    backoff_s: float = 1.0  # first retry delay; doubles each time
    max_backoff_s: float = 60.0
    timeout_s: float = 120.0
    max_tokens: int = 300  # per teacher reply
    temperature: float = 0.8
    api_key: str | None = None

    def __post_init__(self) -> None:
        if self.turns < 1 or self.concurrency < 1 or self.max_retries < 0 or self.rps < 0:
            raise InputError("synth: --turns and --concurrency must be >= 1, --max-retries "
                             "and --rps >= 0")


class RateLimiter:
    """At most ``rps`` starts per second across threads (evenly spaced)."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps if rps > 0 else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        time.sleep(max(0.0, start - now))


class Failed(Exception):
    """One conversation could not be written (retries exhausted, not a chat completion)."""


class _Bearer(httpx.Auth):
    """``Authorization: Bearer KEY`` on every request."""

    def __init__(self, key: str) -> None:
        self._header = f"Bearer {key}"

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = self._header
        yield request


class Teacher:
    """Chat completions from the endpoint, rate limited and retried."""

    def __init__(self, cfg: SynthCfg, client: httpx.Client) -> None:
        self.cfg, self.client = cfg, client
        base = cfg.endpoint.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self.shown = redact_url(self.url)  # what messages name: no credentials in it
        self.limiter = RateLimiter(cfg.rps)
        # an Auth, not a header: httpx would replace a header by the URL's user:pass
        self.auth: httpx.Auth | None = _Bearer(cfg.api_key) if cfg.api_key else None

    def ask(self, messages: list[dict[str, str]], role: str) -> str:
        """The teacher's reply, cleaned as a ``role`` message; an empty one is asked again."""
        body = {"model": self.cfg.model, "messages": messages,
                "max_tokens": self.cfg.max_tokens, "temperature": self.cfg.temperature}
        problem, hint = "", None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, hint, problem))
            self.limiter.wait()
            try:
                response = self.client.post(self.url, json=body, timeout=self.cfg.timeout_s,
                                            **({"auth": self.auth} if self.auth else {}))
            except httpx.TransportError as err:  # timeouts, refused or dropped connections
                problem, hint = f"{type(err).__name__}: {err}", None
                continue
            if response.status_code == 200:
                text = _clean(_content(response, self.shown), role)
                if text:
                    return text
                problem, hint = f"an empty {role} message", "0"
                continue
            problem = f"HTTP {response.status_code}: {_error_message(response)}"
            if response.status_code not in RETRY_STATUS:
                raise InputError(f"synth: the teacher at {self.shown} refused the request "
                                 f"({self.hide(problem)})")
            hint = response.headers.get("retry-after")
        raise Failed(f"{self.shown}: gave up after {self.cfg.max_retries + 1} tries "
                     f"({self.hide(problem)})")

    def hide(self, text: str) -> str:
        """``text`` (an error a server sent, say) with no URL credentials and no API key:
        a server may echo the request's headers back."""
        text = redact(text)
        return text.replace(self.cfg.api_key, "***") if self.cfg.api_key else text

    def _delay(self, attempt: int, hint: str | None, problem: str) -> float:
        wanted = retry_after_s(hint)
        if wanted is None:  # jitter keeps parallel workers from retrying in lockstep
            wanted = self.cfg.backoff_s * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
        log.info("retrying in %.2f s (%s)", wanted, self.hide(problem))
        return min(wanted, self.cfg.max_backoff_s)


def retry_after_s(hint: str | None) -> float | None:
    """Seconds a ``Retry-After`` value asks for: delta-seconds or an HTTP date; None for
    anything else (negative, nan, infinite, garbage), which backs off as usual."""
    if hint is None:
        return None
    try:
        seconds = float(hint)
    except ValueError:
        try:
            when = parsedate_to_datetime(hint)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
        return max(0.0, seconds)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _content(response: httpx.Response, url: str) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise Failed(f"{url}: not a chat completion ({err!r}): {response.text[:200]}") from err
    return content if isinstance(content, str) else ""


def _clean(text: str, role: str) -> str:
    """The message without the wrappers teachers like to add ("User:", quotes)."""
    text = text.strip()
    for prefix in ("User:", "Assistant:", "Question:"):
        if role == "user" and text.startswith(prefix):
            text = text[len(prefix):].strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _transcript(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"{'Person' if m['role'] == 'user' else 'Assistant'}: {m['content']}"
                       for m in messages)


def converse(teacher: Teacher, seed: Seed, turns: int) -> list[dict[str, str]]:
    """One conversation of ``turns`` exchanges about ``seed``, all written by the teacher."""
    about = (f"The topic: {seed.text}" if seed.kind == "topic" else
             f"Ask about this passage, in a way that makes sense without it:\n\n{seed.text}")
    background = ASSISTANT + ("" if seed.kind == "topic" else
                              f" Background you may use:\n\n{seed.text}")
    question = teacher.ask([{"role": "system", "content": OPENER.format(about=about)},
                            {"role": "user", "content": "Write the first message."}], "user")
    messages = [{"role": "user", "content": question}]
    for turn in range(turns):
        answer = teacher.ask([{"role": "system", "content": background}, *messages],
                             "assistant")
        messages.append({"role": "assistant", "content": answer})
        if turn + 1 < turns:
            follow = teacher.ask([{"role": "system", "content": FOLLOW_UP},
                                  {"role": "user", "content": _transcript(messages)}], "user")
            messages.append({"role": "user", "content": follow})
    return messages


def jobs(seeds: list[Seed], n: int | None) -> list[tuple[str, Seed]]:
    """``(job id, seed)``: ``n`` conversations, the seeds taken in turn (``seed#k``)."""
    if not seeds:
        raise InputError("synth: no seeds (the topics file or passages are empty)")
    n = len(seeds) if n is None else n
    return [(f"{seeds[i % len(seeds)].id}#{i // len(seeds)}", seeds[i % len(seeds)])
            for i in range(n)]


def run_synth(cfg: SynthCfg, seeds: list[Seed],
              progress: Callable[[str], None] | None = None) -> Counter[str]:
    """Write the missing conversations into ``cfg.out``; counts: written, already_done,
    duplicate, failed."""
    output = Output(cfg.out)
    counts: Counter[str] = Counter()
    todo = []
    for job, seed in jobs(seeds, cfg.n):
        if job in output.jobs:
            counts["already_done"] += 1
        else:
            todo.append((job, seed))
    stop = threading.Event()  # set by a fatal error: the other workers stop asking
    teacher_info = {"model": cfg.model, "endpoint": redact_url(cfg.endpoint)}

    def work(job: str, seed: Seed) -> str:
        if stop.is_set():
            return "cancelled"
        try:
            messages = converse(teacher, seed, cfg.turns)
        except Failed as err:
            log.warning("synth %s: %s", job, teacher.hide(str(err)))
            return "failed"
        except BaseException:
            stop.set()
            raise
        record: dict[str, Any] = {
            "messages": messages, "source": "synth",
            "synth": {"job": job, "seed": seed.provenance(), "teacher": teacher_info,
                      "created": datetime.now(UTC).isoformat(timespec="seconds"),
                      "turns": cfg.turns}}
        return "written" if output.add(record) else "duplicate"

    limits = httpx.Limits(max_connections=cfg.concurrency)
    with httpx.Client(limits=limits) as client, \
            ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
        teacher = Teacher(cfg, client)
        futures = [pool.submit(work, job, seed) for job, seed in todo]
        for future in futures:
            outcome = future.result()  # re-raises a fatal error (after the rest stopped)
            counts[outcome] += 1
            if progress:
                progress(outcome)
    return counts
