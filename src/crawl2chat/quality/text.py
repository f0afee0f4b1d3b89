"""Quality gate of the ``text`` stage.

In: the stage's output folder (``documents-*.parquet``, ``removed-*.parquet``,
``counts.json``) and the stage's ``Cfg``. Out: GX tables that must hold before the
documents are committed:

Each shard is read and validated on its own (memory for one shard, whatever the
output's size); what spans shards is counted in one streaming pass first (characters
per language, mix drops, and repeated keys on disk, :mod:`crawl2chat.quality.repeats`).

- ``documents_schema`` / ``removed_schema`` (per shard, one row per contract column):
  present, with the right kind (text or float).
- ``documents`` (per shard): at least one; unique ``doc_id``; no exact duplicate texts
  (same normalised hash); no empty text; every language configured and
  every score in [0, 1] and at or above its language's minimum (``score_margin >= 0``).
- ``removed`` (per shard): unique ids; every row names a known step (``url:``,
  ``extract:``, ``lang:`` ... ``mix:``) and why.
- ``repeats`` (one row): no ``doc_id`` or text hash of a kept document, nor ``doc_id``
  of a removed one, repeats one in another shard.
- ``pii`` (per shard): no e-mail, public IP or phone number left in any kept text
  (unless the ``pii`` step is skipped).
- ``language_mix`` (one row per configured language, when ``balance_mix``): target,
  effective target, achieved share of the kept characters, gap; each is within
  ``mix_tolerance`` of its effective target (the target rescaled over the languages
  that are not short) unless the crawl was short of that language (it has no documents,
  or it gave all it had while others were trimmed), which is reported with its gap
  (:func:`language_gaps`).
- ``accounting`` (one row): kept + removed equals the pages read, and no page is both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2chat.errors import InputError
from crawl2chat.quality.repeats import digests, repeated
from crawl2chat.quality.suite import Parts, Table
from crawl2chat.stages.text import COUNTS, DOC_COLUMNS, REMOVED_COLUMNS
from crawl2chat.text.dedup import text_hash
from crawl2chat.text.pii import PATTERN_KINDS, PiiRedactor
from crawl2chat.text.recipe import ORDER, kwargs
from crawl2chat.text.shards import REMOVED, read_shard, require_shards

E = gx.expectations
REASON = rf"^(?:{'|'.join(ORDER)}):[a-z0-9_-]+"  # a step's name, then why


def tables(out_dir: Path, cfg: Any) -> list[Table]:
    kept, gone = require_shards(out_dir), require_shards(out_dir, REMOVED)
    counts = json.loads((out_dir / COUNTS).read_text()) if (out_dir / COUNTS).is_file() else {}
    languages: dict[str, float] = dict(cfg.min_scores)
    totals = _Totals.of(kept, gone)

    doc_checks = [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        *[E.ExpectColumnValuesToNotBeNull(column=c) for c in DOC_COLUMNS],
        E.ExpectColumnValuesToBeUnique(column="doc_id"),
        E.ExpectColumnValuesToBeUnique(column="text_hash"),
        E.ExpectColumnValuesToBeBetween(column="text_chars", min_value=1),
        E.ExpectColumnValuesToBeInSet(column="lang", value_set=sorted(languages)),
        E.ExpectColumnValuesToBeBetween(column="lang_score", min_value=0.0, max_value=1.0),
        E.ExpectColumnValuesToBeBetween(column="score_margin", min_value=0.0),
        E.ExpectColumnValuesToMatchRegex(column="url", regex=r"^https?://"),
    ]
    removed_checks = [
        *[E.ExpectColumnValuesToNotBeNull(column=c) for c in ("doc_id", "reason")],
        E.ExpectColumnValuesToBeUnique(column="doc_id"),
        E.ExpectColumnValuesToMatchRegex(column="reason", regex=REASON),
    ]
    accounting = pd.DataFrame([{
        "docs_in": int(counts.get("docs_in", -1)),
        "accounted": totals.kept + totals.removed,
        "in_both": totals.in_both,
    }])
    accounting_checks = [
        E.ExpectColumnPairValuesToBeEqual(column_A="docs_in", column_B="accounted"),
        E.ExpectColumnValuesToBeInSet(column="in_both", value_set=[0]),
    ]
    repeats = pd.DataFrame([{"doc_id_repeats": totals.doc_id_repeats,
                             "text_hash_repeats": totals.text_hash_repeats,
                             "removed_doc_id_repeats": totals.removed_doc_id_repeats}])
    tables_ = [
        Table("documents_schema", _schemas(kept, DOC_COLUMNS), _schema_checks()),
        Table("removed_schema", _schemas(gone, REMOVED_COLUMNS), _schema_checks()),
        Table("documents", _checked(kept, languages), doc_checks),
        Table("removed", ((f.name, read_shard(f)) for f in gone), removed_checks),
        Table("repeats", repeats, [E.ExpectColumnValuesToBeInSet(column=c, value_set=[0])
                                   for c in repeats.columns]),
        Table("accounting", accounting, accounting_checks),
        Table("pii", ((f.name, _pii_left(read_shard(f, ["text"]), cfg)) for f in kept),
              [E.ExpectColumnValuesToBeInSet(column="pii_left", value_set=[0])]),
    ]
    if cfg.balance_mix and "mix" not in cfg.skip_steps and totals.has_lang:
        tables_.append(Table("language_mix",
                             language_gaps(totals.chars, totals.mixed_out, cfg), [
            E.ExpectColumnValuesToBeBetween(column="unexplained_gap", min_value=0.0,
                                            max_value=cfg.mix_tolerance)]))
    return tables_


@dataclass
class _Totals:
    """What spans the shards, from one streaming pass over their key columns."""

    kept: int = 0
    removed: int = 0
    chars: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    mixed_out: set[str] = field(default_factory=set)
    has_lang: bool = False
    doc_id_repeats: int = 0
    text_hash_repeats: int = 0
    removed_doc_id_repeats: int = 0
    in_both: int = 0

    @classmethod
    def of(cls, kept: list[Path], gone: list[Path]) -> _Totals:
        totals = cls(kept=sum(_rows(f) for f in kept), removed=sum(_rows(f) for f in gone))
        for file in kept:
            docs = read_shard(file, ["lang", "text"])
            if {"lang", "text"} <= set(docs):
                totals.has_lang = True
                totals.chars = totals.chars.add(chars_per_language(docs), fill_value=0)
        for file in gone:
            totals.mixed_out |= mixed_languages(read_shard(file, ["reason"]))

        def ids(file: Path) -> list[str]:
            return digests(read_shard(file, ["doc_id"]).get("doc_id", []))

        def hashes(file: Path) -> list[str]:
            texts = read_shard(file, ["text"]).get("text", pd.Series([], dtype=str))
            return [text_hash(t) for t in texts.fillna("")]

        totals.doc_id_repeats = repeated(kept, ids, totals.kept)
        totals.text_hash_repeats = repeated(kept, hashes, totals.kept)
        totals.removed_doc_id_repeats = repeated(gone, ids, totals.removed)
        # distinct ids in both = repeats of the union less those inside each side
        both = repeated(kept + gone, ids, totals.kept + totals.removed)
        totals.in_both = both - totals.doc_id_repeats - totals.removed_doc_id_repeats
        return totals


def _rows(file: Path) -> int:
    try:
        return pq.ParquetFile(file).metadata.num_rows
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{file}: cannot read it as parquet ({err})") from err


def _checked(files: list[Path], languages: dict[str, float]) -> Parts:
    """Per shard, its documents with the derived columns the checks read."""
    for file in files:
        docs = read_shard(file)
        if {"text", "lang", "lang_score"} <= set(docs):
            docs["text_hash"] = docs["text"].fillna("").map(text_hash)
            docs["text_chars"] = docs["text"].fillna("").str.len()  # numbers read better
            docs["score_margin"] = docs["lang_score"] - docs["lang"].map(languages).fillna(2.0)
        yield file.name, docs


def chars_per_language(docs: pd.DataFrame) -> pd.Series:
    """Characters of the kept texts per language."""
    return docs["text"].fillna("").str.len().groupby(docs["lang"]).sum()


def mixed_languages(gone: pd.DataFrame) -> set[str]:
    """The languages the mix dropped pages of (``mix:<lang>`` reasons)."""
    reasons = gone["reason"] if "reason" in gone else pd.Series([], dtype=str)
    return set(reasons.str.extract(r"^mix:([^:]+)", expand=False).dropna())


def language_gaps(chars: pd.Series, mixed_out: set[str], cfg: Any) -> pd.DataFrame:
    """Per configured language: target, effective target, achieved share of the kept
    characters (``chars`` per language: the mix is a quota by characters; ``mixed_out``:
    the languages the mix dropped pages of), gap to the target, and whether the
    crawl was short of it; ``unexplained_gap`` is what the gate holds.

    A language is short when it has no kept documents, or when the mix dropped none of
    its pages but did drop others': it gave all it had and limited the mix, so its gap
    is reported, not failed. The other languages must then hold their effective targets
    (shares renormalised without the short ones), each within the tolerance.
    """
    achieved = (chars / max(int(chars.sum()), 1)).to_dict()
    short = {lang for lang, share in cfg.shares.items()
             if not chars.get(lang, 0)
             or (achieved.get(lang, 0.0) < share - cfg.mix_tolerance
                 and lang not in mixed_out and mixed_out - {lang})}
    # what the short languages leave to the others (characters of any other language
    # count against the others, so an unconfigured language cannot hide)
    rest_target = (1.0 - sum(cfg.shares[k] for k in short)) or 1.0
    rest_achieved = (1.0 - sum(achieved.get(k, 0.0) for k in short)) or 1.0
    rows = []
    for lang, share in cfg.shares.items():
        got = float(achieved.get(lang, 0.0))
        effective = 0.0 if lang in short else share / rest_target
        held = abs(got / rest_achieved - effective)
        rows.append({"lang": lang, "target": share, "effective": effective,
                     "achieved": got, "gap": got - share, "short": lang in short,
                     "unexplained_gap": 0.0 if lang in short else held})
    return pd.DataFrame(rows)


def _pii_left(docs: pd.DataFrame, cfg: Any) -> pd.DataFrame:
    """Per kept document, how many e-mails, public IPs and phone numbers remain.

    Only the pattern kinds: they are exact, so any left is a bug. Names and addresses
    come from statistical models that may read a replaced text differently.
    """
    texts = docs["text"].fillna("") if "text" in docs else pd.Series([], dtype=str)
    if "pii" in cfg.skip_steps:
        texts = texts[:0]  # switched off on purpose: nothing to hold it to
    redactor = PiiRedactor(**kwargs(cfg.pii))
    left = [len(redactor.find(t, kinds=PATTERN_KINDS)) for t in texts]
    return pd.DataFrame({"pii_left": left or [0]})


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series):
        return "text"
    return str(series.dtype)


def _schemas(files: list[Path], columns: tuple[str, ...]) -> Parts:
    """Per shard, its columns' kinds against the contract's (from the file's schema)."""
    for file in files:
        try:
            empty = pq.read_schema(file).empty_table().to_pandas()
        except (pa.ArrowException, OSError) as err:
            raise InputError(f"{file}: cannot read it as parquet ({err})") from err
        yield file.name, _schema(empty, columns)


def _schema(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    expected = {c: "float" if c == "lang_score" else "text" for c in columns}
    rows = [{"column": c, "kind": _kind(frame[c]) if c in frame else "missing",
             "expected": kind} for c, kind in expected.items()]
    rows += [{"column": c, "kind": "unexpected", "expected": "absent"}
             for c in frame.columns if c not in expected]
    return pd.DataFrame(rows, columns=["column", "kind", "expected"])


def _schema_checks() -> list[Any]:
    return [E.ExpectColumnPairValuesToBeEqual(column_A="kind", column_B="expected")]
