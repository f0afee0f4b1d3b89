"""A generated turn as text pieces, cut before the first stop sequence (OpenAI's ``stop``).

In:  a :class:`~crawl2chat.chat.turns.Turn` (not yet generated) and stop strings.
Out: the turn's text in pieces as it is generated. The text up to the earliest stop
     sequence is sent, the stop sequence itself never; generation ends there and
     ``stopped`` is set (the server then reports ``finish_reason: "stop"``).

While streaming, text that could be the start of a stop sequence is held back until the
next tokens show whether it is one, so no piece of a stop sequence is ever sent. Likewise
text that decodes to the replacement character at its end (a byte-level token can end
inside a multi-byte character) waits until the character is complete.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawl2chat.chat.turns import Turn


def _held(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that begins some stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class TextStream:
    """Iterate to generate ``turn`` and get its text in pieces (see the module docstring)."""

    def __init__(self, turn: Turn, stops: Sequence[str] = ()) -> None:
        self.turn, self.stops = turn, [s for s in stops if s]
        self.stopped = False  # a stop sequence ended the turn
        self.text = ""  # everything sent so far

    def _cut(self, text: str) -> int | None:
        found = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        return min(found) if found else None

    def __iter__(self) -> Iterator[str]:
        tokens = iter(self.turn)
        try:
            for _ in tokens:
                text = self.turn.text()
                if text.endswith("\ufffd"):
                    continue
                cut = self._cut(text)
                if cut is not None:
                    self.stopped = True
                    yield from self._send(text[:cut])
                    return
                yield from self._send(text[: len(text) - _held(text, self.stops)])
        finally:
            # ends the underlying generation too when a stop sequence (or the client) ends
            # the stream early
            tokens.close()  # type: ignore[attr-defined]
        text = self.turn.text()
        cut = self._cut(text)
        self.stopped = cut is not None
        yield from self._send(text if cut is None else text[:cut])

    def _send(self, text: str) -> Iterator[str]:
        if len(text) > len(self.text):
            piece, self.text = text[len(self.text):], text
            yield piece
