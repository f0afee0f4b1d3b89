"""FineWeb's own three quality rules (Penedo et al. 2024, datatrove's FineWebQualityFilter).

In: a :class:`~crawl2chat.text.steps.Doc`. Out: None (keep) or the rule that fired:
``line_punct_ratio`` (under 12% of lines end in terminal punctuation),
``short_line_ratio`` (over 67% of lines have at most 30 characters),
``char_dup_ratio`` (over 1% of characters sit in repeated lines) or ``list_ratio``
(more than 0.3 newlines per word); ``empty`` for a text without a non-blank line.
A language may have its own thresholds (``by_language``, FineWeb-2's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawl2chat.text.gopher import find_duplicates
from crawl2chat.text.recipe import FineWebCfg
from crawl2chat.text.steps import Doc
from crawl2chat.text.words import TERMINAL, words


@dataclass
class FineWebRules(FineWebCfg):
    """The three rules; thresholds are FineWeb's, compared strictly as in datatrove."""

    name: str = field(default="fineweb", init=False)

    def __call__(self, doc: Doc) -> str | None:
        return self.for_language(doc.lang).check(doc)

    def check(self, doc: Doc) -> str | None:
        """The rules with these settings, whatever the document's language."""
        text = doc.text
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            return "empty"
        ratio = sum(line.endswith(TERMINAL) for line in lines) / len(lines)
        if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
            return "line_punct_ratio"
        ratio = sum(len(line) <= self.short_line_length for line in lines) / len(lines)
        if ratio > self.short_line_thr:
            return "short_line_ratio"
        if find_duplicates(lines)[1] / len(text.replace("\n", "")) > self.char_duplicates_ratio:
            return "char_dup_ratio"
        # every whitespace-separated piece gives at least one word, so when the newlines
        # are few even for the pieces, the (costlier) word count cannot change the answer
        newlines = text.count("\n")
        if newlines / max(len(text.split()), 1) > self.new_line_ratio and (
                newlines / max(len(words(text, doc.lang)), 1) > self.new_line_ratio):
            return "list_ratio"
        return None
