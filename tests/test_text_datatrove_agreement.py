"""Our Gopher, C4 and FineWeb rules against datatrove's own filters, page by page.

In: every English or German page of the bundled demo sample (data/demo/web), extracted by
our ``extract`` step and labelled by our ``lang`` step. Each of the four rules runs on the
same extracted text in both implementations, with the same thresholds (the published
defaults; C4 without the terminal-punctuation rule, as FineWeb runs it; German pages get
the German word tokenizer and spaCy's German stop words on both sides). Out: per rule
the share of keep/drop decisions that agree (asserted >= 99%), every disagreement with
both reasons, and, where both keep a page, whether C4 left the same text (C4 removes lines).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crawl2chat.crawl.warc import iter_responses
from crawl2chat.text.c4 import C4
from crawl2chat.text.extract import Extraction
from crawl2chat.text.fineweb import FineWebRules
from crawl2chat.text.gopher import GopherQuality, GopherRepetition
from crawl2chat.text.langid import Language
from crawl2chat.text.languages import stop_words
from crawl2chat.text.steps import Doc

REPO = Path(__file__).resolve().parents[1]
RULES = ("gopher_rep", "gopher_quality", "c4", "fineweb")
LANGS = ("en", "de")
MIN_AGREEMENT = 0.99


@dataclass
class Page:
    """One page's decisions: per rule (ours, datatrove's), None meaning keep."""

    url: str
    lang: str
    decisions: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    c4_same_text: bool = True
    c4_rewrote: bool = False  # C4 removed or cut lines of a page both keep


def _theirs(rule: str, lang: str) -> object:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {"gopher_rep": lambda: GopherRepetitionFilter(language=lang),
            "gopher_quality": lambda: GopherQualityFilter(stop_words=stop_words(lang),
                                                          language=lang),
            "c4": lambda: C4QualityFilter(filter_no_terminal_punct=False, language=lang),
            "fineweb": lambda: FineWebQualityFilter(language=lang)}[rule]()


def _judge(batch: list[tuple[str, str, str, bytes]]) -> list[Page]:
    """Extract each page and run both implementations of every rule on its text."""
    from datatrove.data import Document

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    extract, language = Extraction(min_chars=0, max_html_bytes=2_000_000), Language(
        {lang: 0.0 for lang in LANGS})
    ours = {"gopher_rep": GopherRepetition(), "gopher_quality": GopherQuality(), "c4": C4(),
            "fineweb": FineWebRules()}
    theirs = {(rule, lang): _theirs(rule, lang) for rule in RULES for lang in LANGS}
    pages = []
    for doc_id, url, content_type, payload in batch:
        doc = Doc(doc_id, url, "", content_type, payload)
        if extract(doc) is not None or language(doc) is not None:
            continue
        page = Page(url, doc.lang)
        for rule in RULES:
            mine, other = copy.copy(doc), Document(text=doc.text, id=doc_id)
            verdict = theirs[rule, doc.lang].filter(other)  # type: ignore[attr-defined]
            page.decisions[rule] = (ours[rule](mine),
                                    None if verdict is True else verdict[1])
            if rule == "c4" and page.decisions[rule] == (None, None):
                page.c4_same_text = mine.text == other.text
                page.c4_rewrote = mine.text != doc.text
        pages.append(page)
    return pages


def _batches(size: int) -> Iterator[list[tuple[str, str, str, bytes]]]:
    batch = []
    for path in sorted((REPO / "data/demo/web").glob("*.warc.gz")):
        for r in iter_responses(path):
            batch.append((r.record_id, r.url, r.header("Content-Type") or "", r.payload))
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    with ProcessPoolExecutor(max_workers=2) as pool:
        return [page for done in pool.map(_judge, _batches(25)) for page in done]


def _disagreements(pages: list[Page], rule: str) -> list[str]:
    return [f"{p.url} [{p.lang}]: ours {p.decisions[rule][0] or 'keep'}, "
            f"datatrove {p.decisions[rule][1] or 'keep'}"
            for p in pages if (p.decisions[rule][0] is None) != (p.decisions[rule][1] is None)]


@pytest.mark.parametrize("rule", RULES)
def test_rule_agrees_with_datatrove(pages: list[Page], rule: str) -> None:
    assert len(pages) > 300, "the demo sample should give over 300 English/German pages"
    differ = _disagreements(pages, rule)
    agreement = 1 - len(differ) / len(pages)
    dropped = sum(p.decisions[rule][0] is not None for p in pages)
    print(f"\n{rule}: {agreement:.4f} of {len(pages)} decisions agree, ours drops {dropped}")
    print("\n".join(differ))
    assert agreement >= MIN_AGREEMENT, "\n".join(differ)
    # the rule is exercised: it drops some pages of the sample and keeps others
    assert 0 < dropped < len(pages)


def test_c4_leaves_the_same_text_as_datatrove(pages: list[Page]) -> None:
    both_keep = [p for p in pages if p.decisions["c4"] == (None, None)]
    differ = [p.url for p in both_keep if not p.c4_same_text]
    assert len(both_keep) > 100
    assert sum(p.c4_rewrote for p in both_keep) > 10  # the comparison covers rewritten texts
    assert not differ, differ
