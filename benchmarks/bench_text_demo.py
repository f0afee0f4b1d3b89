"""The text stage alone on the bundled sample, with the demo preset: time and language mix.

Crawls ``data/demo/web`` once (untimed), then runs the text stage's core
(``stages.text.run``) with ``text`` as ``conf/`` composes it (the demo preset, plus any
Hydra overrides given), ``--repeats`` times, each in a fresh child process so model and
segmenter loading count as they do in ``make demo``. Prints JSON: the machine, the
stage's seconds (min/median/max), kept pages and characters per language, target and
achieved shares, and the seconds of each step as the stage's counts report them.

    python benchmarks/bench_text_demo.py [--repeats 2] [override ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _machine import machine, spread  # noqa: E402


def _run_once(crawl_dir: Path, out_dir: Path, overrides: list[str]) -> None:
    """One text stage run (in this process), its seconds written to ``out_dir``."""
    from crawl2chat import config, runtime
    from crawl2chat.stages import text

    runtime.configure()
    cfg = config.build(text.Cfg, config.compose(ROOT, overrides)["text"], "text")
    started = time.perf_counter()
    text.run(cfg, crawl_dir, out_dir)
    (out_dir / "seconds").write_text(str(time.perf_counter() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--once", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.once:
        _run_once(*args.once, args.overrides)
        return

    from crawl2chat import config
    from crawl2chat.stages import crawl
    from crawl2chat.text.shards import read_frame

    with tempfile.TemporaryDirectory() as tmp:
        crawl_dir = Path(tmp) / "crawl"
        crawl_dir.mkdir()
        tree = config.compose(ROOT, args.overrides)
        crawl.run(config.build(crawl.Cfg, tree["crawl"], "crawl"), None, crawl_dir)
        seconds = []
        for i in range(args.repeats):
            out = Path(tmp) / f"text{i}"
            out.mkdir()
            subprocess.run([sys.executable, __file__, "--once", str(crawl_dir), str(out),
                            *args.overrides], check=True, cwd=ROOT)
            seconds.append(float((out / "seconds").read_text()))
        counts = json.loads((out / "counts.json").read_text())
        docs = read_frame(out, columns=["lang", "text"])
        chars = docs.assign(chars=docs["text"].str.len()).groupby("lang")["chars"].sum()
    print(json.dumps({
        "machine": machine(), "overrides": args.overrides, "stage_s": spread(seconds),
        "kept_pages": counts["kept"], "pages_per_language": docs["lang"].value_counts().to_dict(),
        "chars_per_language": {k: int(v) for k, v in chars.items()},
        "target": counts["languages_target"], "achieved": counts["languages_achieved"],
        "step_s": {r["name"]: round(r["seconds"], 2) for r in counts["steps"]}}, indent=2))


if __name__ == "__main__":
    main()
