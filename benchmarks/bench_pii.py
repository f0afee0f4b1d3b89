"""PII redaction cost per document on the demo text, each added kind measured side by side.

Builds the demo preset's ``text`` output with the ``pii`` step skipped (the documents
as PII redaction receives them; or pass ``--docs`` one Parquet file of such documents),
then redacts every document one by one, as the stage does, with: the e-mail/IP/phone
patterns only (the redactor before names and addresses: the baseline), + addresses,
+ names (the default), and the default with the NER reading whole texts instead of
the hint windows (the patched-in ablation shows what the windows save and that they
find the same names). The variants run in rounds whose order rotates, after an
untimed warm-up round; each is reported as min/median/max over ``--repeats`` rounds.
Importing spaCy and loading the NER model, paid once per process, is timed in a fresh
process. ``--stage`` also times the whole text stage (demo preset) with patterns only
and with the defaults, each run in a fresh process (so the default pays that load, as a
real run does), in rotating rounds. Prints JSON with the machine it ran on.

    .venv/bin/python benchmarks/bench_pii.py [--docs PATH] [--repeats 3] [--stage]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from _machine import machine, rounds, spread

from crawl2chat import config
from crawl2chat.text import pii_names
from crawl2chat.text.pii import PiiRedactor
from crawl2chat.text.shards import read_frame

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = {"persons": False, "addresses": False}


def _demo_text(work: Path, pii: dict[str, Any] | None) -> tuple[Path, float]:
    """Run crawl (once) and text on the demo preset; ``pii`` None skips the pii step."""
    from crawl2chat.stages import crawl, text

    tree = config.compose(ROOT, ["experiment=demo"])
    crawl_dir = work / "crawl"
    if not crawl_dir.exists():
        crawl_dir.mkdir()
        crawl.run(crawl.resolve(config.build(crawl.Cfg, tree["crawl"], "crawl"), ROOT), None,
                  crawl_dir)
    section = dict(tree["text"])
    if pii is None:
        section["skip_steps"] = [*section.get("skip_steps", []), "pii"]
    else:
        section["pii"] = {**section.get("pii", {}), **pii}
    out = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    text.run(config.build(text.Cfg, section, "text"), crawl_dir, out)
    return out, time.perf_counter() - started


def _redact_all(redactor: PiiRedactor, docs: pd.DataFrame) -> tuple[float, Counter[str]]:
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    for text, lang in zip(docs["text"], docs["lang"], strict=True):
        counts.update(redactor.redact(text, lang)[1])
    return time.perf_counter() - started, counts


def _whole_text_windows(text: str, min_words: int, chunk_chars: int,
                        common: set[str] | None = None) -> list[tuple[int, int]]:
    return list(pii_names._cut(text, 0, len(text), chunk_chars))


def _whole_texts(redactor: PiiRedactor, docs: pd.DataFrame) -> Counter[str]:
    """The default redactor with the NER reading whole texts (the ablation, this run only)."""
    windows = pii_names.windows
    pii_names.windows = _whole_text_windows
    try:
        return _redact_all(redactor, docs)[1]
    finally:
        pii_names.windows = windows


def _fresh(work: Path, what: str) -> float:
    """Seconds of one timing (a stage run, or the model load) in a new Python process."""
    out = subprocess.run([sys.executable, __file__, "--time", what, "--work", str(work)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def _time(what: str, work: Path) -> float:
    if what == "load":
        started = time.perf_counter()
        pii_names.model(PiiRedactor().ner_models["en"])
        return time.perf_counter() - started
    return _demo_text(work, PATTERNS if what.startswith("patterns") else {})[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", help=argparse.SUPPRESS)  # one timing, in a child process
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=Path,
                        help="a Parquet file of documents (text, lang) of a run without pii")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--stage", action="store_true", help="also time the whole text stage")
    args = parser.parse_args()
    if args.time:
        print(_time(args.time, args.work))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        docs = (pd.read_parquet(args.docs, columns=["text", "lang"]) if args.docs else
                read_frame(_demo_text(work, None)[0], columns=["text", "lang"]))
        stage_names = ("patterns (baseline)", "all (default)")
        # each child reports the stage's own seconds (its start-up left out)
        _, stage = rounds({name: (lambda n=name: _fresh(work, n)) for name in stage_names},
                          args.repeats, warmup=False) if args.stage else ({}, {})
        default = PiiRedactor()
        load_s = _fresh(work, "load")
        pii_names.model(default.ner_models["en"])
        variants = {"patterns (baseline)": PiiRedactor(**PATTERNS),
                    "patterns + addresses": PiiRedactor(persons=False),
                    "all (default)": default}
        cases = {name: (lambda r=redactor: _redact_all(r, docs)[1])
                 for name, redactor in variants.items()}
        cases["all, NER on whole texts"] = lambda: _whole_texts(default, docs)
        times, counts = rounds(cases, args.repeats)
        english = docs[docs["lang"] == "en"]["text"]
        read = sum(b - a for t in english for a, b in pii_names.windows(t, 2, 10_000))
        base = statistics.median(times["patterns (baseline)"])
        result: dict[str, Any] = {
            "machine": machine(),
            "docs": len(docs), "chars": int(docs["text"].str.len().sum()),
            "ner_models": default.ner_models, "spacy_import_and_model_load_s": round(load_s, 2),
            "ner_share_of_english_text_read": round(read / max(1, english.str.len().sum()), 3),
            "variants": {name: {"s": spread(t),
                                "ms_per_doc": spread([1000 * s / len(docs) for s in t], 2),
                                "x_baseline_of_medians": round(statistics.median(t) / base, 2),
                                "replaced": dict(counts[name][-1])}
                         for name, t in times.items()},
        }
        if args.stage:
            result["stage_s"] = {name: spread(v, 2) for name, v in stage.items()}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
