"""Stop strings on growing text: the pieces shown add up to the text before the first stop,
and no piece of a stop string is ever shown, however the text grows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crawl2chat.model.stops import StopCutter, held_back

TEXT = st.text(alphabet="abHuman:\n\ufffd", max_size=40)
STOPS = st.lists(st.text(alphabet="abHuman:\n", min_size=1, max_size=6), max_size=3)


def _expected(prefixes: list[str], stops: list[str]) -> str:
    """Generation ends at the first prefix holding a stop, cut before its earliest one."""
    for text in prefixes:
        cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
        if cuts:
            return text[:min(cuts)]
    return prefixes[-1]


@given(TEXT, STOPS, st.lists(st.integers(1, 5), min_size=1, max_size=40))
def test_pieces_add_up_to_the_text_before_the_first_stop(
        text: str, stops: list[str], steps: list[int]) -> None:
    ends = [min(len(text), sum(steps[:i + 1])) for i in range(len(steps))] + [len(text)]
    answer = _expected([text[:end] for end in ends], stops)
    cutter, shown = StopCutter(stops), ""
    for end in ends[:-1]:
        shown += cutter.update(text[:end])
        # what is shown is always a prefix of the answer: no stop string, nothing taken back
        assert answer.startswith(shown)
        if cutter.stopped:
            break
    if not cutter.stopped:
        shown += cutter.update(text, final=True)
    assert shown == answer
    assert not any(s in shown for s in stops if s)


def test_a_possible_stop_is_held_back_until_the_text_decides() -> None:
    cutter = StopCutter(["\nHuman:"])
    assert cutter.update("Hello\nHu") == "Hello"
    assert held_back("Hello\nHu", ["\nHuman:"]) == 3
    assert cutter.update("Hello\nHug") == "\nHug"  # not the stop after all
    assert cutter.update("Hello\nHug\nHuman: hi") == "" and cutter.stopped
    assert cutter.shown == "Hello\nHug"
