"""The shape every text-stage step shares, and the bookkeeping around it.

In: a :class:`Doc` (one page on its way through the stage) and a list of steps.
Out: :func:`run_steps` passes the document through the steps in order until one drops
it and answers the drop reason (``"<step>:<why>"``, e.g. ``gopher_rep:dup_line_frac``)
or None when every step kept it. A step may also rewrite ``doc.text`` (the C4 step
removes lines, the PII step redacts). :class:`StepStats` counts, per step, documents and
whitespace tokens in and out and the time spent, so the report can draw the funnel;
:meth:`StepStats.count` is the one place a document's pass through a step is counted,
for the per-document steps and for the whole-crawl ones (dedup, mix, PII) alike.

A step is anything with a ``name`` and ``__call__(doc) -> str | None`` (the reason
without the step name); this mirrors datatrove's filters, whose base class does the
counting so each filter only says "keep?" and why.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass
class Doc:
    """One page: its identity, the raw HTML until extraction, then its text and language."""

    doc_id: str
    url: str
    warc_file: str
    content_type: str = ""
    html: bytes = b""
    text: str = ""
    lang: str = ""
    lang_score: float = 0.0
    encoding: str = ""
    dump: str = ""  # the crawl it came from (FineWeb's column), '' if unknown
    date: str = ""  # when it was fetched (WARC-Date)

    def tokens(self) -> int:
        """Whitespace tokens: of the text once extracted, of the HTML before."""
        return len(self.text.split()) if self.text or not self.html else len(self.html.split())


class Step(Protocol):
    """A named keep/drop rule; the config section of the same name holds its settings."""

    name: str

    def __call__(self, doc: Doc) -> str | None:
        """None to keep ``doc`` (possibly rewritten), else why it is dropped."""
        ...


@dataclass
class StepStats:
    """What one step saw: documents and tokens in and out, and seconds spent."""

    name: str
    docs_in: int = 0
    docs_out: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0

    def add(self, other: StepStats) -> None:
        for key in ("docs_in", "docs_out", "tokens_in", "tokens_out", "seconds"):
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def count(self, doc: Doc, why: str | None, tokens_in: int) -> str | None:
        """Count ``doc`` as it left this step (``tokens_in``: its tokens going in) and
        answer None if the step kept it, else the drop reason ``<step>:<why>``."""
        self.docs_in += 1
        self.tokens_in += tokens_in
        if why is not None:
            return f"{self.name}:{why}"
        self.docs_out += 1
        self.tokens_out += doc.tokens()
        return None

    def row(self) -> dict[str, float | str]:
        """The step as a report row, with removal share and milliseconds per document."""
        out: dict[str, float | str] = dict(asdict(self))
        out["removed_share"] = 1 - self.docs_out / self.docs_in if self.docs_in else 0.0
        out["ms_per_doc"] = 1000 * self.seconds / self.docs_in if self.docs_in else 0.0
        return out


def new_stats(names: Iterable[str]) -> dict[str, StepStats]:
    return {name: StepStats(name) for name in names}


def run_steps(doc: Doc, steps: Sequence[Step], stats: dict[str, StepStats]) -> str | None:
    """Pass ``doc`` through ``steps``; the first drop ends it. Counts go into ``stats``."""
    for step in steps:
        record = stats[step.name]
        tokens_in = doc.tokens()
        start = time.perf_counter()
        why = step(doc)
        record.seconds += time.perf_counter() - start
        reason = record.count(doc, why, tokens_in)
        if reason is not None:
            return reason
    return None
