"""Quality gate of the ``text`` stage.

In: the stage's output folder (``documents-*.parquet``, ``removed-*.parquet``,
``counts.json``) and the stage's ``Cfg``. Out: GX tables that must hold before the
documents are committed:

- ``documents_schema`` / ``removed_schema`` (one row per contract column): present,
  with the right kind (text or float).
- ``documents``: at least one; unique ``doc_id``; no exact duplicate texts (same
  normalised hash); no empty text; every language configured and
  every score in [0, 1] and at or above its language's minimum (``score_margin >= 0``).
- ``removed``: unique ids; every row names a known step (``url:``, ``extract:``,
  ``lang:`` ... ``mix:``) and why.
- ``pii``: no e-mail, public IP or phone number left in any kept text (unless the
  ``pii`` step is skipped).
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
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd

from crawl2chat.quality.suite import Table
from crawl2chat.stages.text import COUNTS, DOC_COLUMNS, REMOVED_COLUMNS
from crawl2chat.text.dedup import text_hash
from crawl2chat.text.pii import PATTERN_KINDS, PiiRedactor
from crawl2chat.text.recipe import ORDER, kwargs
from crawl2chat.text.shards import REMOVED, read_frame

E = gx.expectations
REASON = rf"^(?:{'|'.join(ORDER)}):[a-z0-9_-]+"  # a step's name, then why


def tables(out_dir: Path, cfg: Any) -> list[Table]:
    docs = read_frame(out_dir)
    gone = read_frame(out_dir, REMOVED)
    counts = json.loads((out_dir / COUNTS).read_text()) if (out_dir / COUNTS).is_file() else {}
    languages: dict[str, float] = dict(cfg.min_scores)

    checked = docs.copy()
    if {"text", "lang", "lang_score"} <= set(docs):
        checked["text_hash"] = docs["text"].fillna("").map(text_hash)
        checked["text_chars"] = docs["text"].fillna("").str.len()  # numbers read better
        checked["score_margin"] = docs["lang_score"] - docs["lang"].map(languages).fillna(2.0)
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
    kept_ids = set(docs.get("doc_id", []))
    accounting = pd.DataFrame([{
        "docs_in": int(counts.get("docs_in", -1)),
        "accounted": len(docs) + len(gone),
        "in_both": len(kept_ids & set(gone.get("doc_id", []))),
    }])
    accounting_checks = [
        E.ExpectColumnPairValuesToBeEqual(column_A="docs_in", column_B="accounted"),
        E.ExpectColumnValuesToBeInSet(column="in_both", value_set=[0]),
    ]
    tables_ = [
        Table("documents_schema", _schema(docs, DOC_COLUMNS), _schema_checks()),
        Table("removed_schema", _schema(gone, REMOVED_COLUMNS), _schema_checks()),
        Table("documents", checked, doc_checks),
        Table("removed", gone, removed_checks),
        Table("accounting", accounting, accounting_checks),
        Table("pii", _pii_left(docs, cfg),
              [E.ExpectColumnValuesToBeInSet(column="pii_left", value_set=[0])]),
    ]
    if cfg.balance_mix and "mix" not in cfg.skip_steps and "lang" in docs:
        tables_.append(Table("language_mix", language_gaps(docs, gone, cfg), [
            E.ExpectColumnValuesToBeBetween(column="unexplained_gap", min_value=0.0,
                                            max_value=cfg.mix_tolerance)]))
    return tables_


def language_gaps(docs: pd.DataFrame, gone: pd.DataFrame, cfg: Any) -> pd.DataFrame:
    """Per configured language: target, effective target, achieved share of the kept
    characters (the mix is a quota by characters), gap to the target, and whether the
    crawl was short of it; ``unexplained_gap`` is what the gate holds.

    A language is short when it has no kept documents, or when the mix dropped none of
    its pages but did drop others': it gave all it had and limited the mix, so its gap
    is reported, not failed. The other languages must then hold their effective targets
    (shares renormalised without the short ones), each within the tolerance.
    """
    chars = docs["text"].fillna("").str.len().groupby(docs["lang"]).sum()
    achieved = (chars / max(int(chars.sum()), 1)).to_dict()
    reasons = gone["reason"] if "reason" in gone else pd.Series([], dtype=str)
    mixed_out = set(reasons.str.extract(r"^mix:([^:]+)", expand=False).dropna())
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


def _schema(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    expected = {c: "float" if c == "lang_score" else "text" for c in columns}
    rows = [{"column": c, "kind": _kind(frame[c]) if c in frame else "missing",
             "expected": kind} for c, kind in expected.items()]
    rows += [{"column": c, "kind": "unexpected", "expected": "absent"}
             for c in frame.columns if c not in expected]
    return pd.DataFrame(rows, columns=["column", "kind", "expected"])


def _schema_checks() -> list[Any]:
    return [E.ExpectColumnPairValuesToBeEqual(column_A="kind", column_B="expected")]
