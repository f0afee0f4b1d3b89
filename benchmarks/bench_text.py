"""Text stage throughput on the bundled sample: ours with 1 and 2 workers, and datatrove's
LocalPipelineExecutor running the same FineWeb steps with 1 and 2 tasks, in one run.

Prints JSON: per run the wall time, documents/s per core, MB/s of HTML, pages kept, and
per-step seconds; then the two target ratios (ours vs datatrove at 1 worker, ours 2 vs 1
workers). Both sides use the published FineWeb/Gopher/C4 defaults and English only.

Compared part: URL filter -> decoding + trafilatura -> fastText lid.176 -> Gopher
repetition -> Gopher quality -> C4 -> FineWeb. MinHash is left out of the comparison
(datatrove runs it as four separate stages); our full stage (dedup, language mix, PII
included) is timed too, for the 1 -> 2 worker scaling. datatrove's URLFilter and
LanguageFilter need packages this project does not install (pyahocorasick, fasteners,
fasttext), so on its side those two steps are LambdaFilters calling the same blocklist
and the same fastText model file; extraction and the quality filters are datatrove's own.

    python benchmarks/bench_text.py [--records N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from crawl2chat import runtime

runtime.configure()

from crawl2chat.config import build  # noqa: E402
from crawl2chat.crawl.warc import iter_responses  # noqa: E402
from crawl2chat.stages import crawl, text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMPARED_SKIP = ["dedup", "mix", "pii"]


def crawl_sample(out: Path, records: int | None) -> tuple[Path, int, int]:
    """The bundled sample as the crawl stage writes it; (folder, pages, HTML bytes)."""
    out.mkdir()
    crawl.run(crawl.Cfg(sources=[str(ROOT / "data/demo/web/*.warc.gz")], max_records=records,
                        records_per_shard=200), None, out)
    import pandas as pd

    index = pd.read_parquet(out / crawl.INDEX)
    html = sum(len(r.payload) for name in index["warc_file"].unique()
               for r in iter_responses(out / name))
    return out, len(index), html


def _rates(seconds: float, pages: int, html: int, cores: int) -> dict[str, float]:
    return {"wall_s": round(seconds, 2), "docs_per_s_per_core": round(pages / seconds / cores, 2),
            "mb_per_s": round(html / seconds / 1e6, 3)}


def ours(crawl_dir: Path, work: Path, workers: int, skip: list[str], pages: int,
         html: int) -> dict[str, Any]:
    out = work / f"ours-{workers}-{len(skip)}"
    out.mkdir()
    cfg = build(text.Cfg, {"languages": {"en": 1.0}, "skip_steps": skip,
                           "runner": {"kind": "processes", "workers": workers}}, "text")
    start = time.perf_counter()
    text.run(cfg, crawl_dir, out)
    seconds = time.perf_counter() - start
    counts = json.loads((out / text.COUNTS).read_text())
    return {**_rates(seconds, pages, html, workers), "workers": workers, "kept": counts["kept"],
            "steps_s": {r["name"]: round(r["seconds"], 2) for r in counts["steps"]},
            "steps_ms_per_doc": {r["name"]: round(r["ms_per_doc"], 2) for r in counts["steps"]}}


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
                page, _ = decode_html(r.payload, r.header("Content-Type"))
                yield Document(text=page or "", id=r.record_id, metadata={"url": r.url})
    return read


def _url_keep(hosts: set[str]):
    from crawl2chat.crawl.urlfilter import UrlFilter, load_blocklist

    check = UrlFilter(load_blocklist(hosts)).check
    return lambda doc: check(doc.metadata["url"]) is None


def _lang_keep(doc: Any) -> bool:
    from crawl2chat.text.langid import language_model

    lang, score = language_model().predict(doc.text)
    doc.metadata.update(language=lang, language_score=score)
    return lang == "en" and score >= 0.65


def datatrove(crawl_dir: Path, work: Path, tasks: int, pages: int, html: int) -> dict[str, Any]:
    import pandas as pd
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LambdaFilter,
    )

    urls = pd.read_parquet(crawl_dir / crawl.INDEX)["url"]
    hosts = set(urls.str.extract(r"^https?://([^/:]+)", expand=False).dropna())
    logs = work / f"datatrove-{tasks}"
    pipeline = [_reader(str(crawl_dir)), LambdaFilter(_url_keep(hosts)),
                Trafilatura(favour_precision=True, timeout=30.0),
                LambdaFilter(_lang_keep), GopherRepetitionFilter(), GopherQualityFilter(),
                C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]
    executor = LocalPipelineExecutor(pipeline, tasks=tasks, workers=tasks,
                                     logging_dir=str(logs), skip_completed=False)
    start = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - start
    stats = json.loads((logs / "stats.json").read_text())
    steps = {s["name"]: s for s in stats}
    last = stats[-1].get("stats", {})
    return {**_rates(seconds, pages, html, tasks), "tasks": tasks,
            "kept": int(last.get("forwarded", 0)),
            "steps_s": {name: round(s.get("time_stats", {}).get("total", 0.0), 2)
                        for name, s in steps.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=None, help="first N pages only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-text-") as tmp:
        work = Path(tmp)
        crawl_dir, pages, html = crawl_sample(work / "crawl", args.records)
        # untimed: starts Prefect's ephemeral API and loads the models' files once
        (work / "warm").mkdir()
        ours(crawl_dir, work / "warm", 1, COMPARED_SKIP, pages, html)
        runs = {"ours_compared_1": ours(crawl_dir, work, 1, COMPARED_SKIP, pages, html),
                "ours_compared_2": ours(crawl_dir, work, 2, COMPARED_SKIP, pages, html),
                "datatrove_1": datatrove(crawl_dir, work, 1, pages, html),
                "datatrove_2": datatrove(crawl_dir, work, 2, pages, html),
                "ours_full_stage_1": ours(crawl_dir, work, 1, [], pages, html),
                "ours_full_stage_2": ours(crawl_dir, work, 2, [], pages, html)}
    c1, c2 = runs["ours_compared_1"]["wall_s"], runs["ours_compared_2"]["wall_s"]
    print(json.dumps({
        "input": {"pages": pages, "html_mb": round(html / 1e6, 2), "cpu_count": os.cpu_count()},
        "compared_steps": "url, decode+trafilatura, lid.176, gopher_rep, gopher_quality, c4, "
                          "fineweb (no MinHash on either side)",
        "runs": runs,
        "ours_1_vs_datatrove_1_speed": round(runs["datatrove_1"]["wall_s"] / c1, 2),
        "ours_2_vs_ours_1_speedup": round(c1 / c2, 2),
        "full_stage_2_vs_1_speedup": round(runs["ours_full_stage_1"]["wall_s"]
                                           / runs["ours_full_stage_2"]["wall_s"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
