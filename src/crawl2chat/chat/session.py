"""Talk to a chat model: one assistant turn at a time, streamed, never showing control tokens.

In:  a model folder (``models/sft``: weights, config, tokenizer) and the user's messages,
     from ``--message`` or typed at a prompt.
Out: the assistant's replies on stdout, token by token as they are generated. A reply ends
     at ``<|assistant_end|>``; any other control token (the model starting a user turn, a
     new document) also ends it, and none is ever printed.

:class:`Turn` is the one place that generates an assistant turn; the SFT stage's
evaluation uses it too, so what is measured there is what a user sees here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from crawl2chat.chat.template import render_prompt
from crawl2chat.tokenizer import special

if TYPE_CHECKING:
    from crawl2chat.model.gpt import GPT
    from crawl2chat.tokenizer.tokenizer import Tokenizer

Messages = list[dict[str, str]]


class Turn:
    """One generated assistant turn; iterate to get its ordinary (non-control) token ids.

    After iteration, ``ended`` says whether the model closed its turn properly with
    ``<|assistant_end|>`` before ``max_new_tokens``.
    """

    def __init__(self, model: GPT, tok: Tokenizer, prompt: list[int], max_new_tokens: int,
                 temperature: float, top_k: int | None, seed: int,
                 top_p: float | None = None) -> None:
        self.model, self.tok, self.prompt = model, tok, prompt
        self.max_new_tokens = max_new_tokens
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed
        self.ids: list[int] = []
        self.stop: int | None = None  # the control token that ended the turn, if any

    @property
    def ended(self) -> bool:
        return self.stop == self.tok.special_id(special.ASSISTANT_END)

    def __iter__(self) -> Iterator[int]:
        from crawl2chat.model.generate import generate

        control = {self.tok.special_id(t) for t in special.SPECIAL_TOKENS}
        # stopping is decided here, not by generate's stop_ids, so that the turn knows
        # which control token ended it
        for token in generate(self.model, self.prompt, self.max_new_tokens,
                              temperature=self.temperature, top_k=self.top_k, seed=self.seed,
                              vocab_limit=self.tok.vocab_size, top_p=self.top_p):
            if token in control:
                self.stop = token
                return
            self.ids.append(token)
            yield token

    def text(self) -> str:
        return self.tok.decode(self.ids, skip_special=True)


def complete(turn: Turn) -> Turn:
    """Generate the whole turn (no streaming)."""
    for _ in turn:
        pass
    return turn


def stream(turn: Turn, write: Callable[[str], Any]) -> str:
    """Write the turn's text as it is generated; return the whole text.

    A byte-level token can end inside a multi-byte character; text that decodes to the
    replacement character is held back until the character is complete.
    """
    shown = ""
    for _ in turn:
        text = turn.text()
        if text.endswith("\ufffd"):
            continue
        write(text[len(shown):])
        shown = text
    text = turn.text()
    write(text[len(shown):])
    return text


def fit_context(messages: Messages, tok: Tokenizer, block_size: int, max_new_tokens: int
                ) -> tuple[Messages, list[int]]:
    """Drop the oldest exchanges until prompt + reply fit the model's context."""
    kept = list(messages)
    prompt = render_prompt(kept, tok)
    while len(prompt) + max_new_tokens > block_size and len(kept) > 2:
        kept = kept[2:]  # an exchange: the oldest user message and its answer
        prompt = render_prompt(kept, tok)
    return kept, prompt


def chat_loop(model: GPT, tok: Tokenizer, read_line: Callable[[str], str], out: TextIO,
              max_new_tokens: int, temperature: float, top_k: int | None, seed: int) -> None:
    """The interactive session: read a line, stream the reply, until EOF or an empty line."""
    out.write("Chat with the model. /reset starts a new conversation; an empty line or "
              "Ctrl-D ends.\n")
    history: Messages = []
    turn_number = 0
    while True:
        try:
            line = read_line("you> ").strip()
        except EOFError:
            out.write("\n")
            return
        if not line:
            return
        if line == "/reset":
            history = []
            out.write("(new conversation)\n")
            continue
        history.append({"role": "user", "content": line})
        history, prompt = fit_context(history, tok, model.config.block_size, max_new_tokens)
        budget = min(max_new_tokens, model.config.block_size - len(prompt))
        if budget <= 0:
            out.write(f"(that message is too long for this model's context of "
                      f"{model.config.block_size} tokens; try a shorter one)\n")
            history.pop()
            continue
        out.write("assistant> ")
        turn = Turn(model, tok, prompt, budget, temperature, top_k, seed + turn_number)
        reply = stream(turn, lambda s: (out.write(s), out.flush()))
        out.write("\n" if turn.stop is not None else " [...]\n")  # [...]: cut at the limit
        history.append({"role": "assistant", "content": reply or "..."})
        turn_number += 1


def run_chat(model_dir: Path, message: str | None, max_new_tokens: int, temperature: float,
             top_k: int | None, seed: int) -> int:
    """``crawl2chat chat``: one reply to ``message``, or an interactive session."""
    import torch

    from crawl2chat.model.checkpoint import load_model

    model, tok = load_model(Path(model_dir), device="cuda" if torch.cuda.is_available() else "cpu")
    if message is None:
        chat_loop(model, tok, input, sys.stdout, max_new_tokens, temperature, top_k, seed)
        return 0
    _, prompt = fit_context([{"role": "user", "content": message}], tok,
                            model.config.block_size, max_new_tokens)
    budget = min(max_new_tokens, model.config.block_size - len(prompt))
    if budget <= 0:
        from crawl2chat.errors import InputError

        raise InputError(f"--message is {len(prompt)} tokens; this model's context holds "
                         f"{model.config.block_size}")
    turn = Turn(model, tok, prompt, budget, temperature, top_k, seed)
    stream(turn, lambda s: (sys.stdout.write(s), sys.stdout.flush()))
    sys.stdout.write("\n")
    return 0
