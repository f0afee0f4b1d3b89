"""The server under load: many concurrent clients against ``--max-concurrency 2``.

A tiny random model (1 layer x 32, context 64; what it says does not matter) is saved and
served by a real ``crawl2chat serve`` process on 127.0.0.1. ``--clients`` asyncio clients
send ``--requests`` chat requests in all, every other one streamed, and every tenth streamed
one hangs up after its first chunk (the server must give that slot back). Meanwhile a
prober hits ``GET /health`` every 50 ms, and the server's resident memory (VmRSS) is read
every 50 requests. Afterwards ``--max-concurrency`` requests at once must all get 200: no
slot leaked. Prints JSON: the machine; counts per status (only 200 and 429 are allowed;
anything else, or a transport error, is an error); latency p50/p95/max of the 200s, of the
429s and of ``/health`` (its own thread and connection); RSS at the first and last
sample, its growth, and its growth after the first quarter of the requests (warm-up).

    .venv/bin/python benchmarks/bench_serve.py [--clients 32] [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import torch
from _machine import machine

from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.tokenizer.train import train_bpe

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "tiny", "messages": [{"role": "user", "content": "Tell me about cats."}],
        "max_tokens": 8, "temperature": 0.8}


def _model(folder: Path) -> None:
    tok = train_bpe(["the cat sat on the mat. a dog ran in the park. " * 30], vocab_size=300,
                    min_frequency=1)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, block_size=64, n_layer=1, n_head=2, n_embd=32))
    save_model(model.eval(), tok, folder)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _pct(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(values), "p50_ms": round(1000 * statistics.median(ordered), 2),
            "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "max_ms": round(1000 * ordered[-1], 2)}


async def _one(client: httpx.AsyncClient, i: int, out: dict[str, Any]) -> None:
    stream, hang_up = i % 2 == 1, i % 20 == 1
    started = time.perf_counter()
    try:
        if stream:
            async with client.stream("POST", "/v1/chat/completions",
                                     json={**BODY, "stream": True}) as r:
                status = r.status_code
                async for line in r.aiter_lines():
                    if hang_up and line.startswith("data:"):
                        break  # close the connection mid-stream
                    if status == 200 and line == "data: [DONE]":
                        break
                else:
                    if status == 200 and not hang_up:
                        raise RuntimeError("stream ended without [DONE]")
        else:
            r = await client.post("/v1/chat/completions", json=BODY)
            status = r.status_code
            if status == 200 and not r.json()["choices"]:
                raise RuntimeError("a 200 without choices")
    except Exception as err:  # transport errors included: every one is counted
        out["errors"].append(f"{type(err).__name__}: {err}")
        return
    out["status"][status] = out["status"].get(status, 0) + 1
    out["latency"].setdefault(status, []).append(time.perf_counter() - started)


async def _load(url: str, pid: int, clients: int, requests: int, slots: int) -> dict[str, Any]:
    out: dict[str, Any] = {"status": {}, "latency": {}, "errors": [], "rss_kib": []}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    done = threading.Event()
    health: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await _one(client, i, out)
            if i % 50 == 0:
                out["rss_kib"].append(_rss_kib(pid))

    def prober() -> None:
        # its own thread and connection: the 32 clients' event loop must not delay it
        with httpx.Client(base_url=url, timeout=120) as client:
            while not done.is_set():
                started = time.perf_counter()
                r = client.get("/health")
                if r.status_code != 200:
                    out["errors"].append(f"/health answered {r.status_code}")
                health.append(time.perf_counter() - started)
                time.sleep(0.05)

    limits = httpx.Limits(max_connections=clients + 1)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        probe = threading.Thread(target=prober)
        probe.start()
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - started
        done.set()
        probe.join()
        await asyncio.sleep(0.5)  # hung-up streams finish their last token
        after = await asyncio.gather(*(client.post("/v1/chat/completions", json=BODY)
                                       for _ in range(slots)))
    return {**out, "wall_s": wall, "health": health,
            "slots_released": all(r.status_code == 200 for r in after)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(folder: Path, port: int, slots: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, "-m", "crawl2chat.cli", "serve", str(folder),
                             "--port", str(port), "--max-concurrency", str(slots),
                             "--max-tokens", "8"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError("crawl2chat serve exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("crawl2chat serve did not come up")
        time.sleep(0.2)


def run(clients: int, requests: int, slots: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp) / "tiny"
        _model(folder)
        port = _free_port()
        proc = _serve(folder, port, slots)
        try:
            found = asyncio.run(_load(f"http://127.0.0.1:{port}", proc.pid, clients,
                                      requests, slots))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    rss = found["rss_kib"]
    return {
        "machine": machine(), "clients": clients, "requests": requests,
        "max_concurrency": slots, "wall_s": round(found["wall_s"], 2),
        "status": {str(k): v for k, v in sorted(found["status"].items())},
        "errors": len(found["errors"]), "error_examples": found["errors"][:5],
        "latency_200": _pct(found["latency"].get(200, [])),
        "latency_429": _pct(found["latency"].get(429, [])),
        "health": _pct(found["health"]),
        "slots_released": found["slots_released"],
        "rss_kib": {"first": rss[0], "last": rss[-1], "max": max(rss), "samples": len(rss),
                    "growth_kib": rss[-1] - rss[0],
                    # from the first quarter on: allocator and caches have warmed up
                    "growth_after_warmup_kib": rss[-1] - rss[len(rss) // 4]} if rss else {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--max-concurrency", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(run(args.clients, args.requests, args.max_concurrency), indent=2))


if __name__ == "__main__":
    main()
