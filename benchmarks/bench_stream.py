"""Remote WARCs streamed over HTTP: records/s and MB/s, and memory that does not grow with
the file.

A WARC of Common Crawl-like records (one gzip member each, ~10 KB of HTML per page) is
served by a real HTTP server on 127.0.0.1; each size is read in a fresh child process by
the crawl stage's reader (HttpStream + StreamReader, retries as configured) and, for
reference, the same file from local disk by ``iter_responses``. Prints JSON: the machine,
and per size the file's MB, records, seconds, records/s, MB/s and the child's peak RSS
(MiB) for both readers. ``--quick``: two small sizes.

    PYTHONPATH=src python benchmarks/bench_stream.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _machine import machine

from crawl2chat.crawl.warc import ReadStats, WarcShardWriter, iter_responses


def _write(path: Path, records: int) -> None:
    words = " ".join(f"word{i % 997}" for i in range(1500))
    with WarcShardWriter(path) as writer:
        for i in range(records):
            body = f"<html><body><p>page {i} {words}</p></body></html>".encode()
            writer.write(f"https://bench.example/{i}", body,
                         record_id=f"<urn:uuid:00000000-0000-0000-0000-{i:012d}>")


def _child(kind: str, where: str) -> None:
    """Read every record once; print records, seconds and peak RSS as JSON."""
    from crawl2chat.crawl.http_stream import HttpStream
    from crawl2chat.crawl.warc_stream import iter_stream_responses

    stats, start, count = ReadStats(), time.perf_counter(), 0
    if kind == "http":
        with HttpStream(where) as stream:
            for _ in iter_stream_responses(stream, stats, name=where):
                count += 1
    else:
        for _ in iter_responses(Path(where), stats):
            count += 1
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": count, "seconds": seconds, "peak_rss_mib": peak}))


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _measure(kind: str, where: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, where],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small sizes")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    sizes = [1000, 4000] if args.quick else [1000, 4000, 16000]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        folder = Path(tmp)
        server, base = _serve(folder)
        try:
            for records in sizes:
                path = folder / f"bench-{records}.warc.gz"
                _write(path, records)
                mb = path.stat().st_size / 1e6
                row: dict = {"records": records, "file_mb": round(mb, 2)}
                for kind, where in (("http", f"{base}/{path.name}"), ("local", str(path))):
                    got = _measure(kind, where)
                    assert got["records"] == records, got
                    row[kind] = {"seconds": round(got["seconds"], 3),
                                 "records_per_s": round(records / got["seconds"]),
                                 "mb_per_s": round(mb / got["seconds"], 1),
                                 "peak_rss_mib": round(got["peak_rss_mib"], 1)}
                results.append(row)
                path.unlink()
        finally:
            server.shutdown()
            server.server_close()
    print(json.dumps({"machine": machine(), "sizes": results}, indent=2))


if __name__ == "__main__":
    main()
