"""Per-language quality filters: clean prose kept, boilerplate removed, in every language.

The clean articles are the demo sample's own (data/demo/articles: original text written
for this project, one or two per language); the boilerplate pages (tests/data/boilerplate:
a shop's category page with its menu, repeated buttons and cookie banner) are written
in the same languages. Both go through the real steps (fastText lid.176, FineWeb-2's
word tokenizers and thresholds) with all the languages configured.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crawl2chat.errors import ConfigError
from crawl2chat.text.c4 import C4
from crawl2chat.text.fineweb import FineWebRules
from crawl2chat.text.gopher import GopherQuality, GopherRepetition
from crawl2chat.text.langid import Language
from crawl2chat.text.languages import CC_LARGEST, fineweb2, lid_code, stop_words
from crawl2chat.text.recipe import Cfg, kwargs
from crawl2chat.text.steps import Doc, Step
from crawl2chat.text.words import APPROXIMATE, sentences, tokenizer_name, words

REPO = Path(__file__).resolve().parents[1]
ARTICLES = REPO / "data/demo/articles"
BOILERPLATE = REPO / "tests/data/boilerplate"
LANGS = ("es", "ru", "fr", "de", "pt", "zh", "ja")


def _cfg(**extra: object) -> Cfg:
    return Cfg(languages={lang: 1 / len(LANGS) for lang in LANGS}, **extra)  # type: ignore[arg-type]


def _steps(cfg: Cfg, min_scores: dict[str, float] | None = None) -> list[Step]:
    return [Language(min_scores or cfg.min_scores),
            GopherRepetition(**kwargs(cfg.gopher_rep)),
            GopherQuality(**kwargs(cfg.gopher_quality)), C4(**kwargs(cfg.c4)),
            FineWebRules(**kwargs(cfg.fineweb))]


def _verdict(path: Path, steps: list[Step]) -> tuple[str, str | None]:
    doc = Doc(path.stem, "https://example.org/", "", text=path.read_text(encoding="utf-8"))
    for step in steps:
        why = step(doc)
        if why is not None:
            return doc.lang, f"{step.name}:{why}"
    return doc.lang, None


@pytest.mark.parametrize("lang", LANGS)
def test_clean_articles_are_kept_in_every_language(lang: str) -> None:
    cfg = _cfg()
    paths = sorted(ARTICLES.glob(f"{lang}-*.txt"))
    assert paths, f"no {lang} article in {ARTICLES}"
    for path in paths:
        assert _verdict(path, _steps(cfg)) == (lang, None), path.name


@pytest.mark.parametrize("lang", LANGS)
def test_boilerplate_is_removed_by_a_quality_rule(lang: str) -> None:
    cfg = _cfg()
    # any score: the quality rules must remove it, not the language filter
    seen, why = _verdict(BOILERPLATE / f"{lang}.txt",
                         _steps(cfg, {code: 0.0 for code in cfg.min_scores}))
    assert seen == lang
    assert why is not None and why.split(":")[0] in {"gopher_rep", "gopher_quality", "c4",
                                                      "fineweb"}, why


def test_english_rules_alone_drop_the_clean_articles() -> None:
    """Why the thresholds and stop words are per language: with English's, most go."""
    cfg = _cfg(thresholds="english")
    dropped = [p.name for p in sorted(ARTICLES.glob("*.txt"))
               if _verdict(p, _steps(cfg))[1] is not None]
    assert cfg.threshold_source["ru"] == "English (FineWeb)"
    # the stop words stay per language, so the spaced languages pass; the word-length
    # and n-gram limits of English drop Chinese and Japanese prose
    assert {name[:2] for name in dropped} == {"zh", "ja"}, dropped


@pytest.mark.parametrize(("label", "code"), [
    ("ru", "ru"), ("rus", "ru"), ("rus_Cyrl", "ru"), ("ru-Cyrl", "ru"), ("cmn_Hani", "zh"),
    ("zho_Hani", "zh"), ("jpn_Jpan", "ja"), ("nob_Latn", "no"), ("nb", "no"), ("arb_Arab", "ar"),
    ("fas_Arab", "fa"), ("EN", "en")])
def test_labels_map_to_lid176_codes(label: str, code: str) -> None:
    assert lid_code(label) == code


@pytest.mark.parametrize("label", ["russian", "xyz_Latn", "qqq", "ru_Klng"])
def test_unknown_labels_are_config_errors(label: str) -> None:
    with pytest.raises(ConfigError, match=r"text\.languages"):
        lid_code(label)


def test_config_keys_are_normalised_and_take_fineweb2_thresholds() -> None:
    cfg = Cfg(languages={"eng_Latn": 0.5, "rus_Cyrl": 0.3, "cmn_Hani": 0.2})
    assert cfg.shares == {"en": 0.5, "ru": 0.3, "zh": 0.2}
    assert cfg.min_scores == {"en": 0.65, "ru": 0.9, "zh": 0.692}  # FineWeb-2's
    assert cfg.threshold_source == {"en": "English (FineWeb)", "ru": "FineWeb-2 rus_Cyrl",
                                    "zh": "FineWeb-2 cmn_Hani"}
    assert cfg.gopher_quality.for_language("zh").max_avg_word_length == 5
    assert cfg.gopher_quality.for_language("en").max_avg_word_length == 10
    assert cfg.fineweb.for_language("ru").line_punct_thr == pytest.approx(0.231)


def test_per_language_overrides_and_their_errors() -> None:
    cfg = Cfg(languages={"en": 0.5, "es": {"share": 0.5, "min_score": 0.7}},
              per_language={"spa_Latn": {"fineweb": {"line_punct_thr": 0.05},
                                         "lang": {"min_score": 0.1}}})
    assert cfg.fineweb.for_language("es").line_punct_thr == 0.05
    assert cfg.fineweb.for_language("es").new_line_ratio == pytest.approx(0.171)
    assert cfg.min_scores["es"] == 0.7  # the explicit min_score in languages wins
    assert cfg.threshold_source["es"] == "FineWeb-2 spa_Latn + per_language"
    with pytest.raises(ConfigError, match="unknown 'c4'"):
        Cfg(languages={"es": 1.0}, per_language={"es": {"c4": {"min_words_per_line": 1}}})
    with pytest.raises(ConfigError, match=r"per_language\.es\.fineweb: unknown"):
        Cfg(languages={"es": 1.0}, per_language={"es": {"fineweb": {"line_thr": 1}}})
    with pytest.raises(ConfigError, match=r"not in text\.languages"):
        Cfg(languages={"es": 1.0}, per_language={"de": {"fineweb": {"line_punct_thr": 0}}})
    with pytest.raises(ConfigError, match="names 'ru' a second time"):
        Cfg(languages={"ru": 0.5, "rus_Cyrl": 0.5})


def test_unsupported_language_is_named_in_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crawl2chat.text"):
        cfg = Cfg(languages={"en": 0.4, "sw": 0.3, "eo": 0.3})
    lines = [r.getMessage() for r in caplog.records if "no stop words" in r.getMessage()]
    assert len(lines) == 1 and "eo, sw" in lines[0], lines
    assert cfg.threshold_source["sw"] == "English (FineWeb)"


def test_every_large_common_crawl_language_has_words_stop_words_and_thresholds() -> None:
    for lang in CC_LARGEST:
        assert stop_words(lang), lang
        name = tokenizer_name(lang)
        assert "no tokenizer" not in name, (lang, name)
        assert (lang in APPROXIMATE) == ("approximation" in name), (lang, name)
        assert (fineweb2(lang) is None) == (lang in ("en", "fa")), lang


def test_languages_without_spaces_are_segmented() -> None:
    assert words("我们今天去北京大学参观。", "zh") == ("我们", "今天", "去", "北京大学", "参观",
                                                     "。")
    assert words("東京都に住んでいます。", "ja")[:2] == ("東京", "都")
    assert len(words("สวัสดีครับ ผมชื่อสมชาย", "th")) >= 4
    assert sentences("我们今天去。他们明天来！好吗？") == ["我们今天去。", "他们明天来！", "好吗？"]
    assert sentences("One. Two? Three") == ["One.", "Two?", "Three"]
