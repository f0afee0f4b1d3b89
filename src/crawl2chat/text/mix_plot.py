"""The text report's language part: target vs achieved shares as a plot, and each
language's filters.

In: the output folder, the stage ``Cfg`` (targets, tolerance, where each language's
thresholds come from) and the achieved shares. Out: :func:`plot_mix` writes
``mix.png`` (per language, the target and achieved share side by side, the tolerance
band around the target, a language short of its target marked with its gap);
:func:`filter_lines` gives the report's markdown table of which thresholds, stop words
and word tokenizer each configured language used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

MIX_PNG = "mix.png"


def plot_mix(out_dir: Path, target: Mapping[str, float], achieved: Mapping[str, float],
             tolerance: float) -> Path:
    """Write ``mix.png``: grouped bars of target and achieved share per language."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    langs = sorted(set(target) | set(achieved), key=lambda k: -target.get(k, 0.0))
    xs = range(len(langs))
    fig = Figure(figsize=(max(4.0, 1.1 * len(langs) + 1.5), 3.6))
    ax = fig.add_subplot()
    want = [target.get(k, 0.0) for k in langs]
    got = [achieved.get(k, 0.0) for k in langs]
    ax.bar([x - 0.2 for x in xs], want, width=0.4, color="#a1c9f4", label="target",
           yerr=[tolerance] * len(langs), capsize=3, ecolor="#555555")
    ax.bar([x + 0.2 for x in xs], got, width=0.4, color="#4c72b0", label="achieved")
    for x, t, a in zip(xs, want, got, strict=True):
        gap = a - t
        ax.text(x + 0.2, a, f"{a:.1%}" + (f"\n({gap:+.1%})" if abs(gap) > tolerance else ""),
                ha="center", va="bottom", fontsize=8,
                color="#c44e52" if abs(gap) > tolerance else "black")
    ax.set_xticks(list(xs), langs)
    ax.set_yscale("symlog", linthresh=0.05)  # a 3% language stays visible beside 85%
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("share of the kept text")
    ax.set_title(f"language mix: target (± {tolerance:.0%}) vs achieved")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = out_dir / MIX_PNG
    fig.savefig(path, dpi=100)
    return path


def filter_lines(cfg: Any) -> list[str]:
    """Markdown: per configured language, its thresholds, stop words, tokenizer and the
    NER model that finds person names in it."""
    from crawl2chat.text.languages import stop_words
    from crawl2chat.text.words import tokenizer_name

    lines = ["| language | thresholds | stop words | words cut by | person names |",
             "|---|---|---|---|---|"]
    for lang in cfg.shares:
        ner = cfg.pii.ner_models.get(lang)
        names = (f"spaCy {ner}" if ner else "not looked for (no model)") \
            if cfg.pii.persons else "off"
        own = cfg.gopher_quality.stop_words.get(lang)
        stops = (f"{len(own)} (config)" if own else
                 f"{len(stop_words(lang))} ({'Gopher' if lang == 'en' else 'spaCy'})"
                 if stop_words(lang) else "none: rule skipped")
        lines.append(f"| {lang} | {cfg.threshold_source[lang]} | {stops} | "
                     f"{tokenizer_name(lang)} | {names} |")
    return lines
