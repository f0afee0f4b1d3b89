"""Tokenizer benchmark: training time, encoding throughput, compression. Prints JSON.

Measured in one run on the same text (the demo's filtered documents):

- training: our trainer (rustbpe, then the tiktoken encoder built from its ranks) vs the
  ``tokenizers`` BpeTrainer with the same pre-tokenizer, at the same vocab size;
- encoding MB/s: our encoder vs tiktoken's GPT-2 encoding (from offline files) on 1 and
  2 threads, plus the exported ``tokenizer.json`` run by ``tokenizers`` for reference;
- bytes per token on the held-out documents: ours at the demo vocab and at GPT-2's
  vocab size (50,257; the demo text may run out of pairs first: the key names the
  size reached) vs GPT-2 and cl100k.

Text: ``data/text/documents.parquet`` if it exists, else the demo WARC files run through
the crawl and text stages into a temporary folder.

    .venv/bin/python benchmarks/bench_tokenizer.py [--vocab 4096] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crawl2chat.tokenizer import reference
from crawl2chat.tokenizer.shards import assign_val, split_hash
from crawl2chat.tokenizer.special import SPECIAL_TOKENS
from crawl2chat.tokenizer.tokenizer import Tokenizer
from crawl2chat.tokenizer.train import SPLIT_PATTERN, hf_trainer, train_rustbpe

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ROOT / "data" / "text" / "documents.parquet"


def load_texts(workdir: Path) -> tuple[list[str], list[str], str]:
    """(train texts, val texts, where they came from), split as the tokens stage does."""
    source = DOCUMENTS
    if not source.is_file():
        from crawl2chat.stages import crawl, text

        os.chdir(ROOT)  # crawl's default sources are relative to the repo root
        (workdir / "crawl").mkdir()
        (workdir / "text").mkdir()
        crawl.run(crawl.Cfg(), None, workdir / "crawl")
        text.run(text.Cfg(), workdir / "crawl", workdir / "text")
        source = workdir / "text" / "documents.parquet"
    frame = pd.read_parquet(source, columns=["doc_id", "text"]).dropna()
    frame = frame[frame["text"].str.len() > 0]
    is_val = assign_val(np.array([split_hash(str(i), 0) for i in frame["doc_id"]]), 0.1)
    texts = frame["text"].tolist()
    return ([t for t, v in zip(texts, is_val, strict=True) if not v],
            [t for t, v in zip(texts, is_val, strict=True) if v], str(source))


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Shortest wall time of ``repeat`` calls (least disturbed by other work) and a result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def train_ours(texts: list[str], vocab: int) -> Tokenizer:
    return Tokenizer(train_rustbpe(texts, vocab), SPLIT_PATTERN)


def train_hf(texts: list[str], vocab: int) -> int:
    hf, trainer = hf_trainer(vocab, min_frequency=0)  # rustbpe merges any pair, too
    hf.train_from_iterator(texts, trainer=trainer)
    return hf.get_vocab_size()


def bench_training(train: list[str], vocab: int, repeat: int) -> tuple[dict, Tokenizer]:
    ours_s, tok = best_of(repeat, lambda: train_ours(train, vocab))
    hf_s, hf_vocab = best_of(repeat, lambda: train_hf(train, vocab))
    return {"vocab_size": vocab, "ours_vocab": tok.vocab_size, "hf_vocab": hf_vocab,
            "ours_s": round(ours_s, 3), "hf_bpetrainer_s": round(hf_s, 3),
            "speedup": round(hf_s / ours_s, 2)}, tok


def bench_encoding(tok: Tokenizer, texts: list[str], repeat: int) -> dict:
    mb = sum(len(t.encode()) for t in texts) / 1e6
    gpt2 = reference.gpt2()
    hf = tok.to_hf()
    hf.encode_special_tokens = True
    out: dict[str, Any] = {"text_mb": round(mb, 2)}
    for threads in (1, 2):
        ours_s, _ = best_of(repeat, lambda t=threads: tok.encode_batch(texts, threads=t))
        ref_s, _ = best_of(repeat, lambda t=threads: gpt2.encode_ordinary_batch(
            texts, num_threads=t))
        out[f"threads_{threads}"] = {
            "ours_mb_s": round(mb / ours_s, 2), "tiktoken_gpt2_mb_s": round(mb / ref_s, 2),
            "ours_vs_tiktoken": round(ref_s / ours_s, 3)}
    # tokenizers picks its own thread count (TOKENIZERS_PARALLELISM): all cores
    hf_s, _ = best_of(repeat, lambda: hf.encode_batch_fast(texts, add_special_tokens=False))
    out["hf_tokenizer_json_all_threads_mb_s"] = round(mb / hf_s, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=4096, help="demo vocab size")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; best is kept")
    parser.add_argument("--scale", type=int, default=20,
                        help="the demo text is small: time training and encoding on this "
                        "many copies of it (compression uses one copy)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train, val, source = load_texts(Path(tmp))
    timed = train * args.scale
    training, tok = bench_training(timed, args.vocab, args.repeat)
    big_s, big = best_of(1, lambda: train_ours(timed, 50257))
    hf_big_s, _ = best_of(1, lambda: train_hf(timed, 50257))
    compression = {
        f"ours_{tok.vocab_size}": reference.bytes_per_token(val, tok, 10**12)["ours"],
        f"ours_{big.vocab_size}": reference.bytes_per_token(val, big, 10**12)["ours"],
        **{k: v for k, v in reference.bytes_per_token(val, tok, 10**12).items()
           if k != "ours"}}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "text": {"source": source, "train_documents": len(train), "val_documents": len(val),
                 "train_mb": round(sum(len(t.encode()) for t in train) / 1e6, 2),
                 "special_tokens": len(SPECIAL_TOKENS), "timed_copies": args.scale},
        "training": training,
        "training_gpt2_vocab": {"vocab_size": 50257, "ours_s": round(big_s, 3),
                                "hf_bpetrainer_s": round(hf_big_s, 3),
                                "speedup": round(hf_big_s / big_s, 2)},
        "encoding": bench_encoding(tok, (train + val) * args.scale, args.repeat),
        "val_bytes_per_token": compression,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
