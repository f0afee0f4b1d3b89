"""Exact deduplication of documents on a hash of their normalised text.

In: documents in a fixed order. Out: :class:`ExactDedup` keeps the first document with
a given normalised text and drops later ones with ``dedup:exact``. Normalisation (NFKC,
case folding, whitespace collapsed) makes copies that differ only in layout count as
the same; anything that changes a word keeps them apart (near-duplicates are a
different, fuzzier filter).
"""

from __future__ import annotations

import hashlib
import unicodedata

from crawl2chat.text.extract import Verdict, drop, keep


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    """A stable hex digest of the normalised text (same on every machine and run)."""
    return hashlib.sha1(normalize(text).encode("utf-8"), usedforsecurity=False).hexdigest()


class ExactDedup:
    """Remembers the hashes it has seen; the first copy wins."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def check(self, text: str) -> Verdict:
        digest = text_hash(text)
        if digest in self._seen:
            return drop("dedup:exact")
        self._seen.add(digest)
        return keep()
