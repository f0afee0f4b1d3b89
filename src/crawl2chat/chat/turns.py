"""Generate one assistant turn: the model's tokens until it closes the turn.

In:  a model, its tokenizer, a rendered prompt (chat/template.py ``render_prompt``) and a
     :class:`~crawl2chat.model.sampling.SamplingCfg`.
Out: a :class:`Turn`: its ordinary token ids and text, and the control token that ended it
     (``ended`` when that is ``<|assistant_end|>``). No control token is ever part of it.

:class:`Turn` is the one place that generates an assistant turn: the SFT evaluation, the
server and the terminal chat all use it, so what is measured is what a user gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from crawl2chat.tokenizer import special

if TYPE_CHECKING:
    from crawl2chat.model.gpt import GPT
    from crawl2chat.model.sampling import SamplingCfg
    from crawl2chat.tokenizer.tokenizer import Tokenizer


class Turn:
    """One generated assistant turn; iterate to get its ordinary (non-control) token ids.

    After iteration, ``ended`` says whether the model closed its turn properly with
    ``<|assistant_end|>`` before ``max_new_tokens``.
    """

    def __init__(self, model: GPT, tok: Tokenizer, prompt: list[int], max_new_tokens: int,
                 sampling: SamplingCfg, seed: int) -> None:
        self.model, self.tok, self.prompt = model, tok, prompt
        self.max_new_tokens = max_new_tokens
        self.sampling, self.seed = sampling, seed
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
        for token in generate(self.model, self.prompt, self.max_new_tokens, self.sampling,
                              seed=self.seed, vocab_limit=self.tok.vocab_size):
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
