"""Stop strings on streamed text (OpenAI's ``stop``): what may be shown so far.

In: the stop strings, then the decoded text of a generation each time it grows. Out: the
new piece to show. The text is cut before the earliest stop string (the stop itself is
never shown, and ``stopped`` tells the caller to end the generation there). While
streaming, an end of the text that could begin a stop string is held back until the next
tokens show whether it is one, and so is text ending in the replacement character (a
byte-level token can end inside a multi-byte character). ``crawl2chat generate --stop``
and the server's ``stop`` both use it.
"""

from __future__ import annotations

from collections.abc import Sequence


def held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that begins some stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class StopCutter:
    """Feed it the whole text so far; it answers the piece that is new to show."""

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self.stops = [s for s in stops if s]
        self.shown = ""  # everything shown so far
        self.stopped = False  # a stop string ended the text

    def update(self, text: str, final: bool = False) -> str:
        """The piece to show now that the text is ``text`` (``final``: it is complete)."""
        if not final and text.endswith("\ufffd"):
            return ""
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.stopped = True
            visible = text[:min(cuts)]
        else:
            visible = text if final else text[:len(text) - held_back(text, self.stops)]
        if len(visible) <= len(self.shown):
            return ""
        piece, self.shown = visible[len(self.shown):], visible
        return piece
