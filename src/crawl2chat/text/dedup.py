"""Exact deduplication of documents on a hash of their normalised text.

In: documents in a fixed order, as their :func:`text_hash`. Out: :class:`ExactDedup`
keeps the first document with a given normalised text and answers ``exact`` for later
ones (the stage's ``dedup`` step, with MinHash after it). Normalisation (NFKC,
case folding, whitespace collapsed) makes copies that differ only in layout count as
the same; anything that changes a word keeps them apart (near-duplicates are a
different, fuzzier filter).
"""

from __future__ import annotations

import hashlib
import unicodedata


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    """A stable hex digest of the normalised text (same on every machine and run)."""
    return hashlib.sha1(normalize(text).encode("utf-8"), usedforsecurity=False).hexdigest()


class ExactDedup:
    """Remembers the hashes it has seen; the first copy wins."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def check(self, digest: str) -> str | None:
        """``exact`` if a text with this :func:`text_hash` came earlier, else None."""
        if digest in self._seen:
            return "exact"
        self._seen.add(digest)
        return None
