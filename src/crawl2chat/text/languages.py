"""What the text filters know about each language: its code, stop words and thresholds.

In: a language as a user writes it in ``text.languages`` (``ru``, ``rus``, ``rus_Cyrl``,
``zh-Hans``) or as fastText lid.176 reports it. Out:

- :func:`lid_code` maps it to the code lid.176 reports (``rus_Cyrl`` -> ``ru``), using
  datatrove's language table (ISO 639-3 code, ISO 639-1 code and script of ~2,000
  languages, the one FineWeb-2 assigns its word tokenisers with);
- :func:`stop_words`: Gopher's eight for English (datatrove's list), spaCy's stop-word
  list of the language otherwise (empty where spaCy has none);
- :func:`fineweb2` FineWeb-2's published thresholds for the language, from
  ``fineweb2_thresholds.tsv`` (see its header), or None;
- :data:`CC_LARGEST`: the 30 largest languages of Common Crawl (its published language
  statistics) as lid.176 codes -- the ones the filters are set up and tested for.
"""

from __future__ import annotations

import csv
import logging
import re
from functools import cache
from pathlib import Path

from crawl2chat.errors import ConfigError

CC_LARGEST = ("en", "ru", "de", "ja", "zh", "es", "fr", "it", "pt", "nl", "pl", "vi", "id",
              "tr", "cs", "ko", "fa", "sv", "uk", "hu", "ro", "el", "da", "fi", "th", "sk",
              "no", "bg", "ar", "hr")
# lid.176 reports Norwegian (Bokmål) as "no" where ISO 639-1 also has "nb"
LID_ALIASES = {"nb": "no"}
THRESHOLDS_FILE = Path(__file__).with_name("fineweb2_thresholds.tsv")
_WARNED: set[str] = set()
_LABEL = re.compile(r"^([A-Za-z]{2,3})(?:[_-]([A-Za-z]{4}))?$")


@cache
def _iso_table() -> dict[str, str]:
    """``rus`` / ``rus_Cyrl`` / ``ru_Cyrl`` -> ``ru``: datatrove's tokenizer assignment table."""
    from datatrove.utils._import_utils import ASSETS_PATH

    table: dict[str, str] = {}
    with open(Path(ASSETS_PATH) / "tokenizer_assignment.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            code_1 = row["code_1"]
            if not code_1:
                continue
            table.setdefault(f"{row['code_3']}_{row['script']}", code_1)
            table.setdefault(f"{code_1}_{row['script']}", code_1)
            if row["default_script"] == "TRUE":
                table.setdefault(row["code_3"], code_1)
    return table


def lid_code(label: str) -> str:
    """The lid.176 code of ``label``: ``ru``, ``rus``, ``rus_Cyrl``, ``ru-Cyrl`` -> ``ru``."""
    m = _LABEL.match(str(label).strip())
    if not m:
        raise ConfigError(f"text.languages: {label!r} is not a language code "
                          "(ISO 639-1 'ru', ISO 639-3 'rus' or FineWeb-2 style 'rus_Cyrl')")
    code, script = m.group(1).lower(), m.group(2)
    table = _iso_table()
    if script:
        key = f"{code}_{script.title()}"
        if key not in table:
            raise ConfigError(f"text.languages: unknown language/script {label!r}")
        code = table[key]
    elif len(code) == 3:
        if code not in table:
            raise ConfigError(f"text.languages: unknown ISO 639-3 code {label!r}")
        code = table[code]
    return LID_ALIASES.get(code, code)


def stop_words(lang: str) -> frozenset[str]:
    """Gopher's English stop words, or spaCy's list for ``lang`` (empty if it has none)."""
    return _stop_words(lang)


@cache
def _stop_words(lang: str) -> frozenset[str]:
    if lang == "en":
        from datatrove.pipeline.filters.gopher_quality_filter import STOP_WORDS

        return frozenset(STOP_WORDS)
    from spacy.util import get_lang_class

    try:
        return frozenset(get_lang_class(spacy_code(lang)).Defaults.stop_words)
    except ImportError:
        return frozenset()


def spacy_code(lang: str) -> str:
    """The spaCy language of a lid.176 code (spaCy names Norwegian Bokmål ``nb``)."""
    return {v: k for k, v in LID_ALIASES.items()}.get(lang, lang)


@cache
def _thresholds() -> dict[str, dict[str, str]]:
    lines = [line for line in THRESHOLDS_FILE.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    return {row["lang"]: row for row in csv.DictReader(lines, delimiter="\t")}


def fineweb2(lang: str) -> tuple[str, dict[str, dict[str, object]]] | None:
    """FineWeb-2's config name and thresholds for ``lang``, per config section, or None."""
    row = _thresholds().get(lang)
    if row is None:
        return None
    num = {k: float(v) for k, v in row.items() if k not in ("lang", "config")}
    return row["config"], {
        "lang": {"min_score": num["language_score"]},
        "gopher_rep": {"dup_line_frac": num["dup_line_frac"],
                       "top_n_grams": {n: num[f"top_{n}"] for n in (2, 3, 4)},
                       "dup_n_grams": {n: num[f"dup_{n}"] for n in range(5, 11)}},
        "gopher_quality": {k: num[k] for k in ("min_avg_word_length", "max_avg_word_length",
                                                "max_non_alpha_words_ratio")},
        "fineweb": {k: num[k] for k in ("line_punct_thr", "new_line_ratio")},
    }


def warn_unsupported(codes: list[str]) -> None:
    """One warning line (once per process) naming languages without stop words or a
    tokenizer: their pages skip the stop-word rule and are cut into words as English."""
    fresh = sorted(set(codes) - _WARNED)
    if fresh:
        _WARNED.update(fresh)
        logging.getLogger("crawl2chat.text").warning(
            "text.languages: no stop words or word tokenizer for %s: the stop-word rule "
            "is skipped for them and their words are cut as English", ", ".join(fresh))
