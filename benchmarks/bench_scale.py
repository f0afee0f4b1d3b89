"""Do the data stages stream? docs/s and peak memory of crawl+text and tokens at 1x, 4x, 16x.

Input: the bundled demo WARCs (data/demo/web) replicated ``scale`` times. Copy 0 is the
sample as it is; copy k > 0 gets new record ids, ``?copy=k`` on every URL, and the
words of every HTML text node shuffled in windows of four by a generator seeded with
(k, node) (the node's last word stays last, so line-end punctuation stays), so no
copy is an exact or MinHash duplicate of another and the filters see pages of the
same shape. Each stage runs in a child process with the demo's text settings
(``params.yaml``; 2 worker processes unless ``--workers``), while this process
samples the child's process tree every 50 ms: ``peak_rss_mib`` is the largest sum of
resident memory over the stage process and all its descendants (its worker
processes), ``stage_process_peak_mib`` the stage process alone. One Prefect API
server, started here before the first size, serves every stage run (as a
pipeline's server would), so its start and memory are in no stage's figures.

The crawl+text child then runs the text stage's quality gate on the output, as the
pipeline does after every stage: ``text_gate_s`` is its time (in ``wall_s``, not in
``processing_s``), and its memory counts in that child's peak.

``cpu_s`` is the CPU time of a stage's process tree (user + system): with
``bench_wall_s`` and the load average it tells a slow run on a shared machine from a
slow stage (``stages_cpu_s`` / cores is about the wall time on free cores).

Speeds, all from the same runs (``docs`` counts crawled pages for crawl+text and
kept documents for tokens; ``_per_core`` divides by the workers):

- ``docs_per_s``: docs over the child's whole wall time (process start, imports,
  worker start-up included): the raw figure.
- ``processing_docs_per_s``: docs over ``processing_s``, the time inside the stage
  functions (the child's start and imports left out; its workers' start-up is in).
- ``steady_docs_per_s``: the marginal rate from the previous size, extra docs over
  extra ``processing_s``: every fixed cost (worker start-up, model loading) cancels,
  so this is the rate the stage settles at; none for the first size.
- ``docs_per_cpu_s`` and ``steady_docs_per_cpu_s``: the same over CPU seconds
  (``cpu_s``), the per-core rate that other load on a shared machine does not change.

The text stage writes shards of ``--shard-rows`` documents (100: smaller than the 1x
output, so the bound is the setting, not the input); the tokens stage trains its
tokenizer on a fixed sample (:data:`TOKENS_SETTINGS`).

    python benchmarks/bench_scale.py [--quick] [--workers 2] [--scales 1 4 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from _machine import machine

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "web"
NODE = re.compile(rb">([^<]+)<")
NAMESPACE = uuid.UUID("5b1d3c9e-4f7a-4c1e-9a53-0d6f4f8f2a10")
# the demo's tokens settings but a fixed tokenizer sample (the 1x train split is 1.9 MB):
# without the cap, training reads every train document and memory grows with the input
TOKENS_SETTINGS = {"max_train_bytes": 2_000_000}


def _shuffle(html: bytes, copy: int) -> bytes:
    """Every text node's words shuffled in windows of four, the last word kept last."""
    count = iter(range(1 << 30))

    def node(match: re.Match[bytes]) -> bytes:
        words = match.group(1).split()
        if len(words) < 3:
            return match.group(0)
        rng = random.Random(copy * 1_000_003 + next(count))
        body, last = words[:-1], words[-1]
        out: list[bytes] = []
        for i in range(0, len(body), 4):
            window = body[i:i + 4]
            rng.shuffle(window)
            out += window
        return b">" + b" ".join([*out, last]) + b"<"

    return NODE.sub(node, html)


def replicate(scale: int, folder: Path) -> int:
    """``scale`` copies of the demo WARCs in ``folder``; the number of records."""
    from crawl2chat.crawl.warc import WarcShardWriter, iter_responses

    folder.mkdir(parents=True)
    records = 0
    for copy in range(scale):
        for source in sorted(DEMO.glob("*.warc.gz")):
            with WarcShardWriter(folder / f"copy{copy:02d}-{source.name}") as writer:
                for r in iter_responses(source):
                    url, payload, record_id = r.url, r.payload, r.record_id
                    if copy:
                        url += ("&" if "?" in url else "?") + f"copy={copy}"
                        payload = _shuffle(payload, copy)
                        record_id = f"<urn:uuid:{uuid.uuid5(NAMESPACE, f'{copy}:{record_id}')}>"
                    writer.write(url, payload, status=r.status, headers=r.headers,
                                 record_id=record_id, date=r.date)
                    records += 1
    return records


def stage(kind: str, source: Path, out: Path, workers: int, shard_rows: int) -> None:
    """Run in the child process: crawl+text (``kind`` "text") or tokens."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from crawl2chat import runtime

    runtime.configure()
    from crawl2chat.config import build, load_params
    from crawl2chat.stages import crawl, text, tokens

    params = load_params(ROOT)
    started = time.perf_counter()
    if kind == "text":
        (out / "crawl").mkdir(parents=True)
        (out / "text").mkdir()
        crawl.run(crawl.Cfg(sources=[str(source / "*.warc.gz")], records_per_shard=200),
                  None, out / "crawl")
        section = {**params["text"], "shard_rows": shard_rows,
                   "runner": {"kind": "processes", "workers": workers}}
        cfg = build(text.Cfg, section, "text")
        text.run(cfg, out / "crawl", out / "text")
    else:
        (out / "tokens").mkdir()
        section = {**params["tokens"], **TOKENS_SETTINGS,
                   "runner": {"kind": "processes", "workers": workers}}
        tokens.run(build(tokens.Cfg, section, "tokens"), out / "text", out / "tokens")
    (out / f"processing-{kind}.json").write_text(json.dumps(
        {"processing_s": time.perf_counter() - started}))
    if kind == "text":  # its quality gate, in the same process (its memory in the peak)
        from crawl2chat.quality import gate

        started = time.perf_counter()
        gate("text", out / "text", cfg)
        (out / "gate-text.json").write_text(json.dumps(
            {"text_gate_s": time.perf_counter() - started}))


def measure(kind: str, source: Path, out: Path, workers: int, shard_rows: int,
            ) -> dict[str, float]:
    """Wall time and peak memory of one stage run in a child process tree."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                                        str(ROOT / "benchmarks")])}
    started, cpu = time.perf_counter(), _children_cpu_s()
    child = subprocess.Popen(
        [sys.executable, __file__, "--stage", kind, "--source", str(source), "--out", str(out),
         "--workers", str(workers), "--shard-rows", str(shard_rows)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    me = psutil.Process(child.pid)
    peak = own = 0
    while child.poll() is None:
        try:
            own_now = me.memory_info().rss
            tree = own_now + sum(_rss(p) for p in me.children(recursive=True))
        except psutil.Error:
            break
        peak, own = max(peak, tree), max(own, own_now)
        time.sleep(0.05)
    _, err = child.communicate()
    if child.returncode:
        raise SystemExit(f"stage {kind} failed:\n{err.decode()[-3000:]}")
    processing = json.loads((out / f"processing-{kind}.json").read_text())["processing_s"]
    gate = out / f"gate-{kind}.json"
    return {"wall_s": round(time.perf_counter() - started, 2),
            "processing_s": round(processing, 2),
            **({"text_gate_s": round(json.loads(gate.read_text())["text_gate_s"], 2)}
               if gate.is_file() else {}),
            "cpu_s": round(_children_cpu_s() - cpu, 2),
            "peak_rss_mib": round(peak / 2**20, 1),
            "stage_process_peak_mib": round(own / 2**20, 1)}


def _children_cpu_s() -> float:
    """User + system CPU seconds of every finished descendant (workers included: each
    process waits for its own children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1x and 4x only")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-rows", type=int, default=100)
    parser.add_argument("--stage", choices=["text", "tokens"], help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        stage(args.stage, args.source, args.out, args.workers, args.shard_rows)
        return
    scales = [1, 4] if args.quick else args.scales
    rows: dict[str, list[dict[str, Any]]] = {"crawl_text": [], "tokens": []}
    from prefect.server.api.server import SubprocessASGIServer

    bench_started = time.perf_counter()
    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url  # the children's API
    try:
        _sizes(scales, args, rows)
    finally:
        server.stop()
    bench_wall = time.perf_counter() - bench_started
    load = os.getloadavg()
    for runs in rows.values():
        previous = None
        for row in runs:
            row["docs_per_s"] = round(row["docs"] / row["wall_s"], 2)
            row["docs_per_s_per_core"] = round(row["docs_per_s"] / args.workers, 2)
            row["docs_per_cpu_s"] = round(row["docs"] / row["cpu_s"], 2)
            row["processing_docs_per_s"] = round(row["docs"] / row["processing_s"], 2)
            row["processing_docs_per_s_per_core"] = round(
                row["processing_docs_per_s"] / args.workers, 2)
            if previous is not None:
                extra = row["processing_s"] - previous["processing_s"]
                steady = (row["docs"] - previous["docs"]) / extra if extra > 0 else None
                row["steady_docs_per_s"] = steady and round(steady, 2)
                row["steady_docs_per_s_per_core"] = steady and round(steady / args.workers, 2)
                cpu = row["cpu_s"] - previous["cpu_s"]
                row["steady_docs_per_cpu_s"] = (
                    round((row["docs"] - previous["docs"]) / cpu, 2) if cpu > 0 else None)
            previous = row
    sizes = [{"scale": t["scale"], "docs_per_s": t["docs_per_s"],
              "processing_docs_per_s": t["processing_docs_per_s"],
              "steady_docs_per_s": t.get("steady_docs_per_s"),
              "peak_rss_mib": t["peak_rss_mib"], "tokens_docs_per_s": k["docs_per_s"],
              "tokens_steady_docs_per_s": k.get("steady_docs_per_s"),
              "tokens_peak_rss_mib": k["peak_rss_mib"]}
             for t, k in zip(rows["crawl_text"], rows["tokens"], strict=True)]
    first, last = rows["crawl_text"][0], rows["crawl_text"][-1]
    steady = [r["steady_docs_per_s"] for r in rows["crawl_text"][1:] if r["steady_docs_per_s"]]
    print(json.dumps({
        "machine": machine(), "workers": args.workers, "shard_rows": args.shard_rows,
        "bench_wall_s": round(bench_wall, 1),
        "stages_cpu_s": round(sum(r["cpu_s"] for runs in rows.values() for r in runs), 1),
        "load_average_1_5_15_at_end": [round(x, 2) for x in load],
        "tokens_settings": TOKENS_SETTINGS,
        "speeds": "docs_per_s: whole child process wall time (raw); processing_docs_per_s: "
                  "time inside the stage functions; steady_docs_per_s: extra docs over "
                  "extra processing time from the previous size (fixed costs cancel)",
        "sizes": sizes, "crawl_text": rows["crawl_text"], "tokens": rows["tokens"],
        "peak_rss_ratio_largest_over_1x": {
            "crawl_text": round(last["peak_rss_mib"] / first["peak_rss_mib"], 3),
            "tokens": round(rows["tokens"][-1]["peak_rss_mib"]
                            / rows["tokens"][0]["peak_rss_mib"], 3)},
        "docs_per_s_ratio_largest_over_1x": {
            "crawl_text": round(last["docs_per_s"] / first["docs_per_s"], 3),
            "tokens": round(rows["tokens"][-1]["docs_per_s"] / rows["tokens"][0]["docs_per_s"],
                            3)},
        "processing_docs_per_s_ratio_largest_over_1x": {
            "crawl_text": round(last["processing_docs_per_s"]
                                / first["processing_docs_per_s"], 3)},
        "steady_docs_per_cpu_s": {
            name: [r.get("steady_docs_per_cpu_s") for r in runs] for name, runs in rows.items()},
        "steady_docs_per_s_ratio_last_over_first": {
            "crawl_text": round(steady[-1] / steady[0], 3) if len(steady) > 1 else None},
    }, indent=2))


def _sizes(scales: list[int], args: argparse.Namespace,
           rows: dict[str, list[dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for scale in scales:
            work = Path(tmp) / f"x{scale}"
            pages = replicate(scale, work / "warc")
            text_run = measure("text", work / "warc", work, args.workers, args.shard_rows)
            counts = json.loads((work / "text" / "counts.json").read_text())
            rows["crawl_text"].append({"scale": scale, "docs": pages, **text_run})
            token_run = measure("tokens", work / "warc", work, args.workers, args.shard_rows)
            rows["tokens"].append({"scale": scale, "docs": counts["kept"], **token_run})
            print(json.dumps({"done": scale, "crawl_text": rows["crawl_text"][-1],
                              "tokens": rows["tokens"][-1]}), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
