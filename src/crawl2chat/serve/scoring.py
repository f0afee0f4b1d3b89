"""``/v1/completions`` with ``logprobs`` and ``echo``: log-likelihoods over HTTP.

In:  the server's engine (serve/server.py ``Engine``: model, tokenizer, limits), a
     :class:`~crawl2chat.serve.openai_api.CompletionRequest` asking for ``logprobs`` (top
     alternatives per token, 0-5), ``echo`` (the prompt's tokens returned and scored too)
     or ``max_tokens: 0`` (score only, generate nothing), and the prompt ids
     (``<|bos|>`` first).
Out: a ``text_completion`` whose choice carries OpenAI's legacy ``logprobs`` object:
     ``{"tokens", "token_logprobs", "top_logprobs", "text_offset"}``.

This is what lm-evaluation-harness's ``local-completions`` backend sends for its
log-likelihood tasks (``echo: true, logprobs: 1, max_tokens: 0 or 1``, the prompt as a
string or as token ids): it sums ``token_logprobs`` over the continuation's positions and
checks each against the best of ``top_logprobs``. ``<|bos|>`` conditions the prompt but is
not echoed, so the returned tokens are exactly the prompt's; the first has no context and
gets ``null``, as OpenAI's API gives. Log-probabilities are the model's own distribution
(temperature and top-k shape sampling, not the scores). ``text_offset`` counts characters
of the prompt followed by the completion. Streaming is not combined with logprobs or echo.
"""

from __future__ import annotations

import secrets
import threading
from typing import TYPE_CHECKING, Any, Protocol

from starlette.concurrency import run_in_threadpool

from crawl2chat.chat.turns import Turn
from crawl2chat.model.logprobs import Scored, score
from crawl2chat.model.sampling import SamplingCfg
from crawl2chat.serve.openai_api import APIError, CompletionRequest, Reply, usage
from crawl2chat.serve.stops import TextStream

if TYPE_CHECKING:
    from crawl2chat.model.gpt import GPT
    from crawl2chat.tokenizer.tokenizer import Tokenizer


class Engine(Protocol):
    """What this needs of the server's engine (serve/server.py ``Engine``)."""

    model: GPT
    tok: Tokenizer
    limits: Any  # serve/server.py Limits: top_k, max_concurrency
    block_size: int
    slots: threading.BoundedSemaphore

    def budget(self, prompt_len: int, requested: int | None, param: str) -> int: ...


def logprobs_object(tok: Tokenizer, scored: Scored, first: int, top: int) -> dict[str, Any]:
    """OpenAI's ``logprobs`` for the tokens ``scored.ids[first:]`` (``scored.ids[0]`` is
    ``<|bos|>``; offsets count the text of ``scored.ids[1:]``)."""
    ids = scored.ids
    tokens, token_logprobs, top_logprobs, offsets = [], [], [], []
    for i in range(first, len(ids)):
        tokens.append(tok.token_pieces([ids[i]])[0])
        offsets.append(len(tok.decode(ids[1:i])))
        if i == 1:  # the prompt's first token: no context of its own to be scored from
            token_logprobs.append(None)
            top_logprobs.append(None)
            continue
        token_logprobs.append(scored.logprobs[i - 1])
        best = {tok.token_pieces([t])[0]: lp for t, lp in scored.top[i - 1]} if top else {}
        top_logprobs.append(best if top else None)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs,
            "text_offset": offsets}


def _kept(tok: Tokenizer, ids: list[int], text: str) -> list[int]:
    """The generated ids whose text lies inside ``text`` (a stop sequence may cut it)."""
    kept: list[int] = []
    for token in ids:
        if len(tok.decode([*kept, token])) > len(text):
            break
        kept.append(token)
    return kept


async def scored_completion(engine: Engine, reply: Reply, prompt: list[int],
                            req: CompletionRequest) -> dict[str, Any]:
    """Generate ``max_tokens`` (0: none) after ``prompt`` and score prompt and reply."""
    if req.stream:
        raise APIError(400, "logprobs and echo are not supported with stream",
                       param="stream", code="unsupported_parameter")
    requested = req.limit()
    if requested == 0:
        if len(prompt) > engine.block_size:
            raise APIError(400, f"this model's context holds {engine.block_size} tokens; the "
                           f"prompt is {len(prompt)}", param="prompt",
                           code="context_length_exceeded")
        budget = 0
    else:
        budget = engine.budget(len(prompt), requested, "prompt")
    top = req.logprobs or 0
    tok = engine.tok

    def work() -> tuple[str, list[int], str, Scored]:
        text, generated, finish = "", [], "length"
        if budget:
            sampling = SamplingCfg(temperature=req.temperature, top_p=req.top_p,
                                   top_k=req.top_k if req.top_k is not None
                                   else engine.limits.top_k)
            seed = secrets.randbelow(2**31) if req.seed is None else req.seed
            turn = Turn(engine.model, tok, prompt, budget, sampling, seed)
            stream = TextStream(turn, req.stop_sequences())
            text = "".join(stream)
            generated = _kept(tok, turn.ids, text)
            if turn.stop is not None and not stream.stopped:
                # the control token that ended the reply was generated and is scored, as
                # OpenAI's API lists its end-of-text token (lm-eval drops the last token)
                generated.append(turn.stop)
            finish = "stop" if stream.stopped or turn.stop is not None else "length"
        scored = score(engine.model, [prompt + generated], vocab_limit=tok.vocab_size, top=top)
        return text, generated, finish, scored[0]

    if not engine.slots.acquire(blocking=False):
        raise APIError(429, f"the server is busy ({engine.limits.max_concurrency} "
                       "generations running); retry shortly", code="rate_limit_exceeded",
                       kind="rate_limit_error")
    try:
        text, generated, finish, scored = await run_in_threadpool(work)
    finally:
        engine.slots.release()
    first = 1 if req.echo else len(prompt)
    body = reply.whole(tok.decode(prompt[1:]) + text if req.echo else text, finish,
                       usage(len(prompt), len(generated)))
    if req.logprobs is not None:
        body["choices"][0]["logprobs"] = logprobs_object(tok, scored, first, top)
    return body
