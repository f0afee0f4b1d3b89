"""Language mix: bring the kept documents to the configured language shares.

In: the kept documents' (doc_id, lang) in crawl order and the target shares
(``{en: 0.9, de: 0.1}``, summing to 1). Out: :func:`quotas` gives how many documents
of each language to keep -- the largest total whose per-language counts the data can
fill -- and :func:`over_share` the ids to drop (reason ``mix:<lang>``) to meet them.
Which documents go is decided by a hash of their id, so the choice is spread over the
whole crawl, not its tail, and is the same on every run. :func:`shares` reports the mix.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence


def quotas(counts: Mapping[str, int], targets: Mapping[str, float]) -> dict[str, int]:
    """Documents to keep per language; languages without documents cap the total at 0."""
    total = min(counts.get(lang, 0) / share for lang, share in targets.items() if share > 0)
    return {lang: min(counts.get(lang, 0), int(total * share + 0.5))
            for lang, share in targets.items()}


def _rank(doc_id: str) -> str:
    return hashlib.sha1(doc_id.encode("utf-8"), usedforsecurity=False).hexdigest()


def over_share(docs: Sequence[tuple[str, str]], targets: Mapping[str, float]) -> set[str]:
    """Ids to drop so that each language keeps exactly its quota."""
    counts = Counter(lang for _, lang in docs)
    keep = quotas(counts, targets)
    dropped: set[str] = set()
    for lang in counts:
        ids = sorted((doc_id for doc_id, doc_lang in docs if doc_lang == lang), key=_rank)
        dropped.update(ids[keep.get(lang, 0):])
    return dropped


def shares(langs: Sequence[str]) -> dict[str, float]:
    """Achieved share of each language."""
    counts = Counter(langs)
    return {lang: n / len(langs) for lang, n in counts.most_common()} if langs else {}
