"""Text stage vs datatrove on the bundled sample: the same pages, the same decisions?, speed.

Both sides run the FineWeb steps on the same crawl: URL filter -> size limit -> HTML
decoding + trafilatura main text (one function, :func:`crawl2chat.text.extract.main_text`,
called by our ``extract`` step and, on datatrove's side, by a datatrove extractor
running in datatrove's own sandbox process) -> the 300-character minimum -> fastText
lid.176 (English, >= 0.65) -> Gopher repetition -> Gopher quality -> C4 (no terminal
punctuation rule) -> FineWeb. The quality filters on datatrove's side are datatrove's
own classes with their defaults; the URL, size, length and language steps are
LambdaFilters calling our code (datatrove's URLFilter and LanguageFilter need packages
this project does not install). MinHash, the language mix and PII are left out of the
comparison (datatrove runs MinHash as four separate stages).

Method: ours with 1 worker (in this process, as datatrove runs one task), 1 worker
process and 2 worker processes, datatrove with 1 and 2 tasks, interleaved in rounds
whose order rotates; one untimed warm-up round for every run alike (it starts Prefect's
API for ours, loads spaCy and the models for both), then ``--repeats`` timed rounds,
reported as min/median/max. Agreement: the Jaccard index of the kept page sets and the
pages each step drops on each side. A speed ratio is printed only when the kept sets
agree (Jaccard >= 0.99); otherwise the sides do different work and it says so.

Scaling from one worker to two is measured between runs that both start fresh worker
processes (``ours_2_vs_1_process_speedup``): the in-process run is warm, so against it
two workers also pay the workers' start (imports, models). ``--scale K`` replicates the
sample K times (distinct URLs and texts, as ``bench_scale.py`` does), so that fixed start
weighs less; ``--no-datatrove`` times ours alone. ``cpu_s`` splits each of our runs' CPU
time by process: the stage's own (orchestrating) process, its worker processes and
Prefect's API server; on a machine with as many cores as workers, what the first and
the last use is taken from the workers.

    python benchmarks/bench_text.py [--records N] [--repeats 3] [--scale K] [--no-datatrove]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import tempfile
from pathlib import Path
from typing import Any

import psutil

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from crawl2chat import runtime

runtime.configure()

from _machine import machine, ratio, rounds, spread  # noqa: E402
from bench_scale import replicate  # noqa: E402

from crawl2chat.config import build  # noqa: E402
from crawl2chat.crawl.warc import iter_responses  # noqa: E402
from crawl2chat.stages import crawl, text  # noqa: E402
from crawl2chat.text.shards import read_frame  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMPARED_SKIP = ["dedup", "mix", "pii"]
MIN_AGREEMENT = 0.99
STEPS = ("url", "extract", "lang", "gopher_rep", "gopher_quality", "c4", "fineweb")
SETTINGS = {"languages": {"en": 1.0}, "skip_steps": COMPARED_SKIP}


def crawl_sample(out: Path, records: int | None, scale: int) -> tuple[Path, int, int]:
    """The bundled sample (``scale`` copies) as the crawl stage writes it; (folder, pages,
    HTML bytes)."""
    sources = ROOT / "data/demo/web/*.warc.gz"
    if scale > 1:
        replicate(scale, out.parent / "warc")
        sources = out.parent / "warc" / "*.warc.gz"
    out.mkdir()
    crawl.run(crawl.Cfg(sources=[str(sources)], max_records=records,
                        records_per_shard=200), None, out)
    import pandas as pd

    index = pd.read_parquet(out / crawl.INDEX)
    html = sum(len(r.payload) for name in index["warc_file"].unique()
               for r in iter_responses(out / name))
    return out, len(index), html


def _cpu_s(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _live_children_cpu_s() -> dict[int, float]:
    """CPU seconds so far of this process's running descendants (Prefect's API server)."""
    seconds = {}
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            seconds[child.pid] = times.user + times.system
    return seconds


def ours(crawl_dir: Path, out: Path, workers: int, kind: str) -> dict[str, Any]:
    """One run of our stage (``kind``: its runner): its kept page ids, per-step drops and
    where the CPU time went: this process (the stage's orchestration: planning, Prefect
    submitting the tasks, shards, report; and the steps themselves with threads), the
    worker processes (ended and waited for, so counted in RUSAGE_CHILDREN) and the other
    processes still running (Prefect's API server)."""
    cfg = build(text.Cfg, {**SETTINGS, "runner": {"kind": kind, "workers": workers}}, "text")
    out.mkdir(parents=True)
    self0, ended0 = (_cpu_s(resource.getrusage(who)) for who in (resource.RUSAGE_SELF,
                                                                 resource.RUSAGE_CHILDREN))
    live0 = _live_children_cpu_s()
    text.run(cfg, crawl_dir, out)
    live = sum(s - live0.get(pid, 0.0) for pid, s in _live_children_cpu_s().items())
    cpu = {"stage_process": _cpu_s(resource.getrusage(resource.RUSAGE_SELF)) - self0,
           "worker_processes": _cpu_s(resource.getrusage(resource.RUSAGE_CHILDREN)) - ended0,
           "prefect_api_server": live}
    counts = json.loads((out / text.COUNTS).read_text())
    kept = set(read_frame(out, columns=["doc_id"])["doc_id"])
    return {"kept": kept, "dropped": {r["name"]: r["docs_in"] - r["docs_out"]
                                      for r in counts["steps"] if r["name"] in STEPS},
            "steps_s": {r["name"]: round(r["seconds"], 2) for r in counts["steps"]
                        if r["name"] in STEPS},
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()}}


def _reader(crawl_dir: str):
    def read(data: Any, rank: int = 0, world_size: int = 1) -> Any:
        import pandas as pd
        from datatrove.data import Document

        from crawl2chat.text.extract import decode_html

        index = pd.read_parquet(Path(crawl_dir) / crawl.INDEX)
        number = 0
        for name in index["warc_file"].unique():
            for r in iter_responses(Path(crawl_dir) / name):
                number += 1
                if number % world_size != rank:
                    continue
                # the size limit is checked before decoding, as our extract step does
                page, _ = decode_html(r.payload, r.header("Content-Type")) if (
                    len(r.payload) <= SIZE_LIMIT) else ("", "")
                yield Document(text=page or "", id=r.record_id.strip("<>"),
                               metadata={"url": r.url, "html_bytes": len(r.payload)})
    return read


SIZE_LIMIT = text.Cfg().max_html_bytes
MIN_CHARS = text.Cfg().min_chars


def _url_keep(hosts: set[str]):
    from crawl2chat.crawl.urlfilter import UrlFilter, load_blocklist

    check = UrlFilter(load_blocklist(hosts)).check
    return lambda doc: check(doc.metadata["url"]) is None


def _lang_keep(doc: Any) -> bool:
    from crawl2chat.text.langid import Language
    from crawl2chat.text.steps import Doc

    ours_doc = Doc(doc.id, doc.metadata["url"], "", text=doc.text)
    keep = Language({"en": text.Cfg().min_lang_score})(ours_doc) is None
    doc.metadata.update(language=ours_doc.lang, language_score=ours_doc.lang_score)
    return keep


def _named(step: Any, name: str) -> Any:
    """A datatrove step under our step's name (its stats are keyed by the name)."""
    from datatrove.utils.stats import Stats

    step.name = name
    step.stats = Stats(str(step))
    return step


def datatrove(crawl_dir: Path, work: Path, tasks: int) -> dict[str, Any]:
    """One run of datatrove's executor; its kept page ids and per-step drops."""
    import pandas as pd
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors.base import BaseExtractor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LambdaFilter,
    )
    from datatrove.pipeline.writers import JsonlWriter

    class MainText(BaseExtractor):
        """datatrove's extractor machinery around the same trafilatura call as ours."""

        name = "extract"

        def __init__(self, timeout: float) -> None:
            super().__init__(timeout)

        def extract(self, html: str) -> str:
            from crawl2chat.text.extract import main_text

            return main_text(html)

    urls = pd.read_parquet(crawl_dir / crawl.INDEX)["url"]
    hosts = set(urls.str.extract(r"^https?://([^/:]+)", expand=False).dropna())
    work.mkdir(parents=True)
    pipeline = [_reader(str(crawl_dir)), _named(LambdaFilter(_url_keep(hosts)), "url"),
                _named(LambdaFilter(lambda d: d.metadata["html_bytes"] <= SIZE_LIMIT),
                       "size"),
                MainText(timeout=30.0),
                _named(LambdaFilter(lambda d: len(d.text) >= MIN_CHARS), "min_chars"),
                _named(LambdaFilter(_lang_keep), "lang"),
                _named(GopherRepetitionFilter(), "gopher_rep"),
                _named(GopherQualityFilter(), "gopher_quality"),
                _named(C4QualityFilter(filter_no_terminal_punct=False), "c4"),
                _named(FineWebQualityFilter(), "fineweb"),
                JsonlWriter(str(work / "kept"), compression=None)]
    LocalPipelineExecutor(pipeline, tasks=tasks, workers=tasks, logging_dir=str(work / "logs"),
                          skip_completed=False).run()
    blocks = json.loads((work / "logs" / "stats.json").read_text())
    stats = {s["name"].split(": ", 1)[-1]: s.get("stats", {}) for s in blocks}
    steps_s = {s["name"].split(": ", 1)[-1]: round(s.get("time_stats", {}).get("total", 0.0), 2)
               for s in blocks}
    kept = {json.loads(line)["id"] for f in (work / "kept").glob("*.jsonl")
            for line in f.read_text().splitlines()}
    dropped = {name: int(s.get("dropped", 0)) for name, s in stats.items() if name in STEPS}
    # our extract step drops for size, emptiness and length; datatrove's three steps do
    dropped["extract"] = sum(int(stats.get(n, {}).get(k, 0)) for n, k in (
        ("size", "dropped"), ("min_chars", "dropped"), ("extract", "dropped"),
        ("extract", "timeout"), ("extract", "broken_process")))
    return {"kept": kept, "dropped": dropped, "steps_s": steps_s}


def agreement(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Kept-set Jaccard index and per-step drops of two runs."""
    union = a["kept"] | b["kept"]
    jaccard = len(a["kept"] & b["kept"]) / len(union) if union else 1.0
    return {"kept": [len(a["kept"]), len(b["kept"])], "jaccard": round(jaccard, 4),
            "dropped_per_step": {s: [a["dropped"].get(s, 0), b["dropped"].get(s, 0)]
                                 for s in STEPS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=None, help="first N pages only")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--scale", type=int, default=1,
                        help="copies of the sample to filter (default: %(default)s)")
    parser.add_argument("--no-datatrove", action="store_true",
                        help="time ours only (the scaling from one worker process to two)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-text-") as tmp:
        work = Path(tmp)
        crawl_dir, pages, html = crawl_sample(work / "crawl", args.records, args.scale)
        serial = iter(range(10**6))  # a fresh output folder per run

        def out(name: str) -> Path:
            return work / f"{name}-{next(serial)}"

        # ours_1 runs in this process (warm after the first round), as datatrove's
        # executor runs a single task; ours_1p and ours_2 start fresh worker processes
        cases = {"ours_1": lambda: ours(crawl_dir, out("ours_1"), 1, "threads"),
                 "ours_1p": lambda: ours(crawl_dir, out("ours_1p"), 1, "processes"),
                 "ours_2": lambda: ours(crawl_dir, out("ours_2"), 2, "processes")}
        if not args.no_datatrove:
            cases |= {f"datatrove_{n}": (lambda k=n: datatrove(crawl_dir, out("dt"), k))
                      for n in (1, 2)}
        times, results = rounds(cases, args.repeats)
    last = {name: runs[-1] for name, runs in results.items()}
    agree = {"ours_2_vs_ours_1": agreement(last["ours_2"], last["ours_1"]),
             "ours_1p_vs_ours_1": agreement(last["ours_1p"], last["ours_1"])}
    if args.no_datatrove:
        print(json.dumps({
            "machine": machine(), "input": {"pages": pages, "html_mb": round(html / 1e6, 2),
                                            "scale": args.scale},
            "agreement": agree, "wall_s": {name: spread(t, 2) for name, t in times.items()},
            "cpu_s": {name: last[name]["cpu_s"] for name in ("ours_1", "ours_1p", "ours_2")},
            "ours_2_vs_1_process_speedup": ratio(times["ours_1p"], times["ours_2"]),
            "ours_2_vs_1_in_process_speedup": ratio(times["ours_1"], times["ours_2"]),
        }, indent=2))
        return
    agree |= {"ours_1_vs_datatrove_1": agreement(last["ours_1"], last["datatrove_1"]),
              "datatrove_2_vs_datatrove_1": agreement(last["datatrove_2"],
                                                      last["datatrove_1"])}
    same_work = agree["ours_1_vs_datatrove_1"]["jaccard"] >= MIN_AGREEMENT
    speed: dict[str, Any] = (
        {"datatrove_1_s_over_ours_1_s": ratio(times["datatrove_1"], times["ours_1"]),
         "datatrove_2_s_over_ours_2_s": ratio(times["datatrove_2"], times["ours_2"])}
        if same_work else {"withheld": f"kept sets differ (Jaccard < {MIN_AGREEMENT}): the "
                                       "sides do different work, so no speed ratio"})
    print(json.dumps({
        "machine": machine(),
        "input": {"pages": pages, "html_mb": round(html / 1e6, 2), "scale": args.scale},
        "compared_steps": "url, size, decode + trafilatura (same call), min 300 chars, "
                          "lid.176 en >= 0.65, gopher_rep, gopher_quality, c4, fineweb",
        "agreement": agree,
        "wall_s": {name: spread(t, 2) for name, t in times.items()},
        "pages_per_s_per_core_median": {
            name: round(pages / spread(t)["median"] / int(name[-1]), 2)
            for name, t in times.items()},
        "speed": speed,
        # seconds inside each step, summed over workers (last round; the rest of the wall
        # time is reading, writing, the executor and, for ours, Prefect and the report)
        "steps_s": {name: last[name]["steps_s"] for name in ("ours_1", "datatrove_1")},
        # CPU seconds of our runs (last round) by process: the stage's own process, its
        # worker processes, Prefect's API server
        "cpu_s": {name: last[name]["cpu_s"] for name in ("ours_1", "ours_1p", "ours_2")},
        "ours_2_vs_1_process_speedup": ratio(times["ours_1p"], times["ours_2"]),
        "ours_2_vs_1_in_process_speedup": ratio(times["ours_1"], times["ours_2"]),
    }, indent=2))


if __name__ == "__main__":
    main()
