"""Language mix: a streaming quota by characters, deterministic, O(languages) memory.

In: the documents left after dedup, as (doc_id, lang, characters), seen once to
count and once to decide, and the target shares (``{en: 0.9, de: 0.1}``, summing to
1). Out: a keep/drop decision per document (reason ``mix:<lang>``) such that each
language's share of the kept *characters* meets its target as closely as the data
allows, and a report row per language (target, effective target, achieved, gap).

How: every document gets a rank in [0, 1) from a hash of its id; :class:`Tally` adds
its characters to its language's histogram over ``BINS`` rank bins (memory: languages
x bins, never documents). :func:`plan` takes the largest total the languages can
fill at their shares, and per language the rank bin below which the kept characters
stay within its quota; :meth:`Plan.keep` then keeps a document if its rank's bin is
below its language's. The choice is spread over the whole crawl, not its tail, and is
the same on every run and for any worker count.

A configured language with no documents cannot be met: it is reported with its gap,
and the other languages keep their shares relative to one another (their targets,
rescaled to sum to 1, are the effective targets), instead of every quota dropping to
zero.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

BIN_BITS = 16
BINS = 1 << BIN_BITS  # rank resolution: a quota is met to within one bin's characters


def ranks(doc_ids: list[str], salt: bytes = b"mix") -> np.ndarray:
    """Each id's rank bin in [0, BINS): a fixed function of the id and ``salt`` alone."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(d.encode("utf-8"), digest_size=8,
                                        person=salt).digest(), "big") >> (64 - BIN_BITS)
         for d in doc_ids), dtype=np.int64, count=len(doc_ids))


@dataclass
class Tally:
    """Characters per language and rank bin, added slice by slice."""

    bins: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, langs: list[str], bins: np.ndarray, chars: np.ndarray) -> None:
        for lang in set(langs):
            mine = np.asarray([x == lang for x in langs])
            hist = self.bins.setdefault(lang, np.zeros(BINS, dtype=np.int64))
            np.add.at(hist, bins[mine], chars[mine])

    def chars(self) -> dict[str, int]:
        return {lang: int(h.sum()) for lang, h in self.bins.items()}


@dataclass
class Plan:
    """Per language, the first rank bin not kept (``BINS``: keep all, 0: keep none)."""

    cut: dict[str, int]
    effective: dict[str, float]  # targets rescaled over the languages that have documents
    expected: dict[str, int]  # characters the cut keeps

    def keep(self, langs: list[str], bins: np.ndarray) -> np.ndarray:
        cuts = np.asarray([self.cut.get(lang, 0) for lang in langs], dtype=np.int64)
        return bins < cuts


def plan(tally: Tally, targets: Mapping[str, float]) -> Plan:
    """The cut per language that meets the (effective) targets by characters."""
    have = tally.chars()
    present = {lang: share for lang, share in targets.items()
               if share > 0 and have.get(lang, 0) > 0}
    scale = sum(present.values())
    effective = {lang: share / scale for lang, share in present.items()} if scale else {}
    # the largest kept total whose every share the data can fill
    total = min((have[lang] / share for lang, share in effective.items()), default=0.0)
    cut: dict[str, int] = {}
    expected: dict[str, int] = {}
    for lang, hist in tally.bins.items():
        quota = total * effective.get(lang, 0.0)
        filled = np.cumsum(hist)
        if filled[-1] <= quota * (1 + 1e-9):  # the binding language keeps everything
            cut[lang], expected[lang] = BINS, int(filled[-1])
            continue
        cut[lang] = int(np.searchsorted(filled, quota, side="right"))
        expected[lang] = int(filled[cut[lang] - 1]) if cut[lang] else 0
    return Plan(cut, effective, expected)


def report(targets: Mapping[str, float], effective: Mapping[str, float],
           kept_chars: Mapping[str, int]) -> dict[str, dict[str, float]]:
    """Per language: configured target, effective target, achieved share, gap to target."""
    total = sum(kept_chars.values())
    rows = {}
    for lang in sorted(set(targets) | set(kept_chars)):
        achieved = kept_chars.get(lang, 0) / total if total else 0.0
        target = float(targets.get(lang, 0.0))
        rows[lang] = {"target": target, "effective": round(effective.get(lang, 0.0), 6),
                      "achieved": round(achieved, 6), "gap": round(achieved - target, 6),
                      "chars": int(kept_chars.get(lang, 0))}
    return rows
