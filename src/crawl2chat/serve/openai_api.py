"""The OpenAI wire format the server speaks: request schemas, responses, stream chunks, errors.

In:  JSON bodies of ``POST /v1/chat/completions`` and ``POST /v1/completions``.
Out: validated requests (:class:`ChatRequest`, :class:`CompletionRequest`) and the JSON
     shapes OpenAI clients parse: ``chat.completion`` / ``chat.completion.chunk`` /
     ``text_completion`` objects and ``{"error": {message, type, param, code}}``.

Unknown fields are ignored, as OpenAI-compatible servers commonly do, except those whose
meaning this server cannot honour (tools, penalties, chat logprobs, ...): those are refused
with a 400 rather than silently giving a different result. ``top_p`` (0 < top_p <= 1) and
``stop`` (a string or a list of up to 4 non-empty strings of at most 256 characters) are
honoured; a request holds at most 512 messages, and a ``seed`` is one torch accepts.
Completions also take ``logprobs`` (0-5 alternatives per token), ``echo`` and
``max_tokens: 0``, and a prompt given as token ids (serve/scoring.py).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from crawl2chat.tokenizer.tokenizer import Tokenizer

# Fields OpenAI defines that change the result; refused unless absent, null, false or neutral.
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "response_format",
               "logprobs", "top_logprobs", "logit_bias", "echo", "suffix", "best_of",
               "presence_penalty", "frequency_penalty", "audio", "modalities", "prediction")
NEUTRAL: dict[str, Any] = {"presence_penalty": 0, "frequency_penalty": 0, "best_of": 1,
                           "echo": False, "logprobs": False}
MAX_STOPS = 4  # OpenAI's limit on stop sequences
MAX_STOP_CHARS = 256  # every generated token is checked against every stop sequence
MAX_MESSAGES = 512  # a conversation longer than this does not fit any context we serve
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts
MAX_LOGPROBS = 5  # OpenAI's limit on the legacy completions' top alternatives


class APIError(Exception):
    """An error answered as ``{"error": {...}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status, message, param, code, kind)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Request(BaseModel):
    """Sampling fields shared by both endpoints."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling")
    stop: str | list[str] | None = Field(None, description="text that ends the reply; "
                                         "not included in it")
    top_k: int | None = Field(None, ge=1, description="extension: sample among the k best")
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    stream: bool = False
    stream_options: StreamOptions | None = None

    def check_supported(self) -> None:
        """Refuse fields whose meaning this server cannot honour."""
        for name in UNSUPPORTED:
            value = (self.model_extra or {}).get(name)
            if value is not None and value != NEUTRAL.get(name) and value != []:
                raise APIError(400, f"{name} is not supported by this server", param=name,
                               code="unsupported_parameter")
        stops = [self.stop] if isinstance(self.stop, str) else self.stop or []
        if len(stops) > MAX_STOPS:
            raise APIError(400, f"stop: at most {MAX_STOPS} sequences, got {len(stops)}",
                           param="stop", code="invalid_value")
        if any(not s for s in stops):
            raise APIError(400, "stop: sequences must be non-empty strings", param="stop",
                           code="invalid_value")
        if any(len(s) > MAX_STOP_CHARS for s in stops):
            raise APIError(400, f"stop: sequences may be at most {MAX_STOP_CHARS} characters",
                           param="stop", code="invalid_value")

    def stop_sequences(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    # "developer" is what newer OpenAI clients call the system message
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def as_template(self) -> dict[str, str]:
        """``{"role", "content"}`` as chat/template.py renders it."""
        text = (self.content if isinstance(self.content, str)
                else "".join(part.text for part in self.content))
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1)

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Request):
    # a string, or token ids (lm-evaluation-harness sends either, in a batch of one)
    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = Field(None, ge=0, description="0: score the prompt only")
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS,
                                 description="log-probabilities, with this many alternatives")
    echo: bool = Field(False, description="return (and score) the prompt too")

    def _one(self) -> str | list[int]:
        prompt = self.prompt
        if isinstance(prompt, str) or not prompt or isinstance(prompt[0], int):
            return prompt  # type: ignore[return-value]
        if len(prompt) != 1:
            raise APIError(400, "prompt must be one string or one list of token ids "
                           "(batches are not supported)", param="prompt")
        return prompt[0]

    def size(self) -> int:
        """Characters, or token ids, of the prompt: what the input limit counts."""
        return len(self._one())

    def ids(self, tok: Tokenizer) -> list[int]:
        """The prompt's token ids; a 400 names an id the tokenizer does not have."""
        prompt = self._one()
        if isinstance(prompt, str):
            return tok.encode(prompt)
        bad = [i for i in prompt if not 0 <= i < tok.vocab_size]
        if bad or not prompt:
            raise APIError(400, f"prompt: token ids must be in [0, {tok.vocab_size}), got "
                           f"{bad[:3] or 'none'}", param="prompt", code="invalid_value")
        return list(prompt)

    def scored(self) -> bool:
        """Whether the answer needs scores (serve/scoring.py) rather than plain text."""
        return self.logprobs is not None or self.echo or self.max_tokens == 0

    def limit(self) -> int | None:
        return self.max_tokens


class Reply:
    """The identity of one response, shared by all its stream chunks."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat, self.model = chat, model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def _envelope(self, choices: list[dict[str, Any]], chunk: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat \
            else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": None, "choices": choices}

    def _choice(self, text: str | None, finish: str | None, chunk: bool) -> dict[str, Any]:
        if not self.chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        if chunk:
            delta = {} if text is None else {"content": text}
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "message": {"role": "assistant", "content": text},
                "logprobs": None, "finish_reason": finish}

    def whole(self, text: str, finish: str, usage: dict[str, int]) -> dict[str, Any]:
        """The non-streaming response."""
        return {**self._envelope([self._choice(text, finish, False)], False), "usage": usage}

    def first_chunk(self) -> dict[str, Any]:
        """Chat streams open with the assistant role, as OpenAI's do."""
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""},
                  "logprobs": None, "finish_reason": None}
        return self._envelope([choice], True)

    def chunk(self, text: str | None, finish: str | None = None) -> dict[str, Any]:
        return self._envelope([self._choice(text, finish, True)], True)

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        """``stream_options.include_usage``: a last chunk with no choices and the usage."""
        return {**self._envelope([], True), "usage": usage}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
