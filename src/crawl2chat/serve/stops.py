"""A generated turn as text pieces, cut before the first stop sequence (OpenAI's ``stop``).

In:  a :class:`~crawl2chat.chat.turns.Turn` (not yet generated) and stop strings.
Out: the turn's text in pieces as it is generated. The text up to the earliest stop
     sequence is sent, the stop sequence itself never; generation ends there and
     ``stopped`` is set (the server then reports ``finish_reason: "stop"``).

What may be sent as the text grows is :class:`~crawl2chat.model.stops.StopCutter`'s
answer: no piece of a stop sequence is ever sent, nor half a multi-byte character.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from crawl2chat.model.stops import StopCutter

if TYPE_CHECKING:
    from crawl2chat.chat.turns import Turn


class TextStream:
    """Iterate to generate ``turn`` and get its text in pieces (see the module docstring)."""

    def __init__(self, turn: Turn, stops: Sequence[str] = ()) -> None:
        self.turn = turn
        self._cutter = StopCutter(stops)

    @property
    def stopped(self) -> bool:
        """A stop sequence ended the turn."""
        return self._cutter.stopped

    @property
    def text(self) -> str:
        """Everything sent so far."""
        return self._cutter.shown

    def __iter__(self) -> Iterator[str]:
        tokens = iter(self.turn)
        try:
            for _ in tokens:
                piece = self._cutter.update(self.turn.text())
                if piece:
                    yield piece
                if self._cutter.stopped:
                    return
        finally:
            # ends the underlying generation too when a stop sequence (or the client) ends
            # the stream early
            tokens.close()  # type: ignore[attr-defined]
        piece = self._cutter.update(self.turn.text(), final=True)
        if piece:
            yield piece
