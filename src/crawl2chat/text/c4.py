"""The C4 rules (Raffel et al. 2020, as datatrove's ``C4QualityFilter`` applies them).

In: a :class:`~crawl2chat.text.steps.Doc`. Out: None (keep; ``doc.text`` is rewritten
without the lines the rules remove) or ``lorem_ipsum``, ``curly_bracket`` or
``too_few_sentences``. Per line: lines with a word over ``max_word_length`` characters,
with fewer than ``min_words_per_line`` words, mentioning javascript or a cookie/terms
policy are removed; citation marks (``[1]``, ``[edit]``) are cut. FineWeb switches off
C4's terminal-punctuation rule (a line must end in ``.?!"'``), so it is off by default
here too and can be switched on (:class:`~crawl2chat.text.recipe.C4Cfg`). Words are
whitespace pieces, except in languages written without spaces (Chinese, Japanese,
Thai), where the language's segmenter counts them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crawl2chat.text.recipe import C4Cfg
from crawl2chat.text.steps import Doc
from crawl2chat.text.words import NO_SPACES, sentences, words

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")


@dataclass
class C4(C4Cfg):
    """C4's line filters and its three document-level drops."""

    name: str = field(default="c4", init=False)

    def __call__(self, doc: Doc) -> str | None:
        kept: list[str] = []
        n_sentences = 0
        segmented = doc.lang in NO_SPACES
        for raw in doc.text.splitlines():
            line = raw.strip()
            line_words = words(line, doc.lang) if segmented else line.split()
            if self.max_word_length >= 0 and any(len(w) > self.max_word_length
                                                 for w in line_words):
                continue
            line = CITATION.sub("", line)
            if self.terminal_punctuation and (not line.endswith(END_PUNCTUATION)
                                              or line.endswith("...")):
                continue
            if len(line_words) < self.min_words_per_line:
                continue
            lower = line.lower()
            if self.lorem_ipsum and "lorem ipsum" in lower:
                return "lorem_ipsum"
            if self.javascript and "javascript" in lower:
                continue
            if self.curly_bracket and "{" in line:
                return "curly_bracket"
            if self.policy and any(p in lower for p in self.policy_phrases):
                continue
            n_sentences += len(sentences(line))
            kept.append(line)
        if n_sentences < self.min_num_sentences:
            return "too_few_sentences"
        doc.text = "\n".join(kept).strip()
        return None
