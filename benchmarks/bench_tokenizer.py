"""Tokenizer benchmark: training time, encoding throughput, compression. Prints JSON.

Text: ``data/text/documents-*.parquet`` if they exist, else the demo WARC files run through
the crawl and text stages into a temporary folder. The documents are split by site:
the smallest sites, up to a quarter of the text, are held out, so compression is
measured on sites the tokenizer never saw (on the demo: trained on docs.python.org,
measured on debian-handbook.info).

- training: our trainer (rustbpe, then the tiktoken encoder built from its ranks) vs the
  ``tokenizers`` BpeTrainer with the same pre-tokenizer, on the training text (each
  distinct document once), at the demo vocab and at GPT-2's 50,257. Each reports the
  vocabulary it actually reached: a small text runs out of pairs to merge first.
- compression (bytes per token on the held-out sites) at equal vocabulary: ours at the
  size it reached vs GPT-2's and cl100k's own merges cut to the same number of ordinary
  tokens (a BPE's first N merges are the tokenizer it would have been at N), and, for
  reference, GPT-2 and cl100k whole.
- encoding MB/s on all distinct documents (no copies), 1 and 2 threads: our encoder
  path (``Tokenizer.encode_batch``: tiktoken's BPE core with our ranks, plus our
  surrogate check and thread pool) vs tiktoken's GPT-2 encoding on the same input. Both
  run the same engine, so the ratio measures our wrapper plus the vocabulary and split
  pattern, not a different implementation; the exported ``tokenizer.json`` run by HF
  ``tokenizers`` (a different engine) is timed beside them.

Timings repeat in interleaved rounds (min/median/max).

    .venv/bin/python benchmarks/bench_tokenizer.py [--vocab 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import tiktoken
from _machine import machine, ratio, rounds, spread

from crawl2chat.text.shards import read_frame, shard_files
from crawl2chat.tokenizer import reference
from crawl2chat.tokenizer.special import SPECIAL_TOKENS
from crawl2chat.tokenizer.tokenizer import Tokenizer
from crawl2chat.tokenizer.train import SPLIT_PATTERN, hf_trainer, train_rustbpe

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT / "data" / "text"
GPT2_VOCAB = 50257
HELD_OUT_SHARE = 0.25


def load_texts(workdir: Path) -> tuple[list[str], list[str], dict[str, Any]]:
    """(train texts, held-out texts, which sites went where)."""
    source = TEXT
    if not shard_files(source):
        from crawl2chat.stages import crawl, text

        os.chdir(ROOT)  # crawl's default sources are relative to the repo root
        (workdir / "crawl").mkdir()
        (workdir / "text").mkdir()
        crawl.run(crawl.Cfg(), None, workdir / "crawl")
        text.run(text.Cfg(), workdir / "crawl", workdir / "text")
        source = workdir / "text"
    frame = read_frame(source, columns=["url", "text"]).dropna()
    frame = frame[frame["text"].str.len() > 0]
    frame["site"] = frame["url"].str.extract(r"^https?://([^/:]+)", expand=False)
    sizes = frame.groupby("site")["text"].apply(lambda t: t.str.len().sum()).sort_values()
    held: list[str] = []
    for site, chars in sizes.items():  # smallest first; at least one site left to train
        full = held and sizes[held].sum() + chars > HELD_OUT_SHARE * sizes.sum()
        if len(held) == len(sizes) - 1 or full:
            break
        held.append(str(site))
    is_held = frame["site"].isin(held)
    sites = {"source": str(source), "train_sites": sorted(set(frame["site"]) - set(held)),
             "held_out_sites": held}
    return frame.loc[~is_held, "text"].tolist(), frame.loc[is_held, "text"].tolist(), sites


def train_ours(texts: list[str], vocab: int) -> Tokenizer:
    return Tokenizer(train_rustbpe(texts, vocab), SPLIT_PATTERN)


def train_hf(texts: list[str], vocab: int) -> int:
    hf, trainer = hf_trainer(vocab, min_frequency=0)  # rustbpe merges any pair, too
    hf.train_from_iterator(texts, trainer=trainer)
    return hf.get_vocab_size()


def bench_training(train: list[str], vocab: int, repeats: int) -> tuple[dict, Tokenizer]:
    times, results = rounds({"ours": lambda: train_ours(train, vocab),
                             "hf_bpetrainer": lambda: train_hf(train, vocab)},
                            repeats, warmup=False)
    tok = results["ours"][-1]
    return {"vocab_requested": vocab, "ours_vocab_reached": tok.vocab_size,
            "hf_vocab_reached": results["hf_bpetrainer"][-1],
            "ours_s": spread(times["ours"]), "hf_bpetrainer_s": spread(times["hf_bpetrainer"]),
            "hf_s_over_ours_s": ratio(times["hf_bpetrainer"], times["ours"])}, tok


def cut(encoding: tiktoken.Encoding, ordinary: int, name: str) -> tiktoken.Encoding:
    """``encoding`` with its first ``ordinary`` tokens only (every single byte kept)."""
    ranks = {token: rank for token, rank in encoding._mergeable_ranks.items()
             if rank < ordinary or len(token) == 1}
    return tiktoken.Encoding(name=name, pat_str=encoding._pat_str, mergeable_ranks=ranks,
                             special_tokens={})


def bytes_per_token(texts: list[str], encode: Any) -> float:
    data = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    return round(data / sum(map(len, encode(texts))), 4)


def compression(tok: Tokenizer, small: Tokenizer, held: list[str]) -> dict[str, Any]:
    ordinary = len(tok.ranks)
    gpt2, cl100k = reference.gpt2(), reference.cl100k()
    return {
        "held_out_mb": round(sum(len(t.encode()) for t in held) / 1e6, 2),
        "equal_vocab": {
            "ordinary_tokens": ordinary,
            f"ours_{tok.vocab_size}": bytes_per_token(held, tok.encode_batch),
            f"gpt2_first_{ordinary}": bytes_per_token(
                held, cut(gpt2, ordinary, "gpt2_cut").encode_ordinary_batch),
            f"cl100k_first_{ordinary}": bytes_per_token(
                held, cut(cl100k, ordinary, "cl100k_cut").encode_ordinary_batch)},
        "own_vocab": {f"ours_{small.vocab_size}": bytes_per_token(held, small.encode_batch),
                      f"ours_{tok.vocab_size}": bytes_per_token(held, tok.encode_batch),
                      f"gpt2_{gpt2.n_vocab}": bytes_per_token(held, gpt2.encode_ordinary_batch),
                      f"cl100k_{cl100k.n_vocab}": bytes_per_token(
                          held, cl100k.encode_ordinary_batch)}}


def bench_encoding(tok: Tokenizer, texts: list[str], repeats: int) -> dict:
    mb = sum(len(t.encode()) for t in texts) / 1e6
    gpt2 = reference.gpt2()
    hf = tok.to_hf()
    hf.encode_special_tokens = True
    cases = {}
    for threads in (1, 2):
        cases[f"ours_{threads}_threads"] = lambda t=threads: tok.encode_batch(texts, threads=t)
        cases[f"tiktoken_gpt2_{threads}_threads"] = (
            lambda t=threads: gpt2.encode_ordinary_batch(texts, num_threads=t))
    # tokenizers picks its own thread count (TOKENIZERS_PARALLELISM): all cores
    cases["hf_tokenizer_json_all_threads"] = (
        lambda: hf.encode_batch_fast(texts, add_special_tokens=False))
    times, _ = rounds(cases, repeats)
    return {"text_mb": round(mb, 2), "documents": len(texts), "copies": 1,
            "mb_per_s": {name: spread([mb / s for s in t], 2) for name, t in times.items()},
            "tiktoken_gpt2_s_over_ours_s": {
                f"{n}_threads": ratio(times[f"tiktoken_gpt2_{n}_threads"],
                                      times[f"ours_{n}_threads"]) for n in (1, 2)},
            "note": "ours and tiktoken_gpt2 run the same BPE engine (tiktoken) with "
                    "different vocabularies and split patterns"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=4096, help="demo vocab size")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train, held, sites = load_texts(Path(tmp))
    training, small = bench_training(train, args.vocab, args.repeats)
    training_big, big = bench_training(train, GPT2_VOCAB, 1)
    result = {
        "machine": machine(),
        "text": {**sites, "train_documents": len(train), "held_out_documents": len(held),
                 "train_mb": round(sum(len(t.encode()) for t in train) / 1e6, 2),
                 "special_tokens": len(SPECIAL_TOKENS)},
        "training": training,
        "training_gpt2_vocab": training_big,
        "held_out_bytes_per_token": compression(big, small, held),
        "encoding": bench_encoding(small, train + held, args.repeats),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
