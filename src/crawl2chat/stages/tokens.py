"""Stage ``tokens``: filtered text -> a BPE tokenizer and token shards.

In: ``data/text/documents-*.parquet`` (columns ``doc_id``, ``text``; other columns
are ignored), read shard by shard through :mod:`crawl2chat.text.shards`.
Out (``data/tokens/``): ``tokenizer/tokenizer.json``, ``train.bin`` and
``val.bin`` (see :mod:`crawl2chat.tokenizer.shards`), ``meta.json`` and ``report.md``.

Documents are split into train and val by a salted hash of their id. The tokenizer
is trained on train documents only (optionally a hashed sample of them), so the
bytes-per-token figure reported on val is measured on text the tokenizer never saw.
Rows without a ``doc_id`` or with empty text are skipped and counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawl2chat import paths
from crawl2chat.errors import ConfigError, InputError
from crawl2chat.text.shards import iter_batches
from crawl2chat.tokenizer.reference import bytes_per_token
from crawl2chat.tokenizer.shards import SplitStats, assign_val, split_hash, write_shards
from crawl2chat.tokenizer.special import BOS
from crawl2chat.tokenizer.tokenizer import Tokenizer
from crawl2chat.tokenizer.train import MIN_VOCAB_SIZE, train_bpe

TOKENIZER_DIR = "tokenizer"
BATCH_DOCS = 1024  # documents per parquet batch and per encode_batch call
REPORT_EXAMPLES = ("Hello world! It's 2024, and the café opened at 9:30.",
                   "A user who types <|bos|> or <|assistant_end|> gets plain text tokens.")
# held-out text compared with GPT-2 / cl100k: enough for a stable figure, bounded time
COMPARE_MAX_BYTES = 20_000_000


@dataclass
class Cfg:
    """Params of the ``tokens`` stage (``params.yaml`` section ``tokens``)."""

    vocab_size: int = 4096
    """Ids in the vocabulary, the 8 special tokens and 256 byte tokens included."""
    val_fraction: float = 0.05
    """Share of documents held out for validation (split by document id)."""
    max_train_docs: int | None = None
    """Train documents sampled (by hash) to learn the merges; None: all of them."""
    min_frequency: int = 1
    """A byte pair must occur this often to become a merge; 1 uses the faster rustbpe
    trainer, more uses the ``tokenizers`` BpeTrainer (see tokenizer/train.py)."""
    seed: int = 0
    """Salts the document hash: another seed gives another split and sample."""


@dataclass
class _Plan:
    """Which parquet rows are used, and how: decided before any text is encoded."""

    valid: np.ndarray  # per parquet row: has a doc_id and non-empty text
    is_val: np.ndarray  # per valid row
    train_sample: np.ndarray  # per valid row: used to train the tokenizer

    @property
    def skipped(self) -> int:
        return int((~self.valid).sum())


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, float]:
    _check(cfg)
    if in_dir is None:
        raise InputError("the tokens stage needs the text stage's output folder")
    source = Path(in_dir)
    plan = _plan(source, cfg)
    tokenizer = train_bpe(_training_texts(source, plan), cfg.vocab_size, cfg.min_frequency,
                          show_progress=True)
    tokenizer.save(out_dir / TOKENIZER_DIR)
    stats = write_shards(tokenizer, _encode_batches(source, plan), out_dir,
                         total_documents=int(plan.valid.sum()))
    compare = bytes_per_token(_val_texts(source, plan), tokenizer, COMPARE_MAX_BYTES)
    _write_report(out_dir, cfg, tokenizer, stats, plan, source, compare)
    train, val = stats["train"], stats["val"]
    return {
        **{f"val_bytes_per_token_{name}": value for name, value in compare.items()},
        "records": train.documents + val.documents,
        "tokens": train.tokens + val.tokens,
        "train_tokens": train.tokens,
        "val_tokens": val.tokens,
        "train_documents": train.documents,
        "val_documents": val.documents,
        "skipped": plan.skipped,
        "bytes_per_token": round(val.bytes_per_token, 4),
        "train_bytes_per_token": round(train.bytes_per_token, 4),
        "vocab_size": tokenizer.vocab_size,
    }


def _check(cfg: Cfg) -> None:
    if cfg.vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(f"tokens.vocab_size: {cfg.vocab_size} is below the minimum "
                          f"{MIN_VOCAB_SIZE} (8 special tokens + 256 bytes)")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(f"tokens.val_fraction: {cfg.val_fraction} is not in (0, 1)")
    if cfg.max_train_docs is not None and cfg.max_train_docs < 1:
        raise ConfigError(f"tokens.max_train_docs: {cfg.max_train_docs} must be >= 1 or null")
    if cfg.min_frequency < 1:
        raise ConfigError(f"tokens.min_frequency: {cfg.min_frequency} must be >= 1")


def _batches(source: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    yield from iter_batches(source, columns=columns, batch_rows=BATCH_DOCS)


def _plan(source: Path, cfg: Cfg) -> _Plan:
    valid_parts: list[np.ndarray] = []
    hashes: list[float] = []
    for batch in _batches(source, ["doc_id", "text"]):
        doc_id, text = batch.column(0), batch.column(1)
        ok = pc.and_(pc.is_valid(doc_id),
                     pc.greater(pc.utf8_length(pc.fill_null(text, "")), 0))
        ok_np = ok.to_numpy(zero_copy_only=False).astype(bool)
        valid_parts.append(ok_np)
        hashes.extend(split_hash(str(i), cfg.seed) for i in doc_id.filter(ok).to_pylist())
    valid = np.concatenate(valid_parts) if valid_parts else np.zeros(0, dtype=bool)
    if len(hashes) < 2:
        raise InputError(f"{source}: {len(hashes)} document(s) with a doc_id and text; "
                         f"a train and a val split need at least 2")
    h = np.asarray(hashes)
    is_val = assign_val(h, cfg.val_fraction)
    train_sample = ~is_val
    train_rows = np.flatnonzero(train_sample)
    if cfg.max_train_docs is not None and len(train_rows) > cfg.max_train_docs:
        # the lowest hashes among train documents: a uniform sample, fixed by the seed
        keep = train_rows[np.argsort(h[train_rows], kind="stable")[:cfg.max_train_docs]]
        train_sample = np.zeros_like(is_val)
        train_sample[keep] = True
    return _Plan(valid=valid, is_val=is_val, train_sample=train_sample)


def _valid_texts(source: Path, valid: np.ndarray) -> Iterator[list[str]]:
    """The texts of the valid rows, batch by batch, in file order."""
    start = 0
    for batch in _batches(source, ["text"]):
        mask = pa.array(valid[start:start + batch.num_rows])
        start += batch.num_rows
        texts = batch.column(0).filter(mask).to_pylist()
        if texts:
            yield texts


def _training_texts(source: Path, plan: _Plan) -> Iterator[str]:
    pos = 0
    for texts in _valid_texts(source, plan.valid):
        chosen = plan.train_sample[pos:pos + len(texts)]
        pos += len(texts)
        yield from (text for text, use in zip(texts, chosen, strict=True) if use)


def _encode_batches(source: Path, plan: _Plan) -> Iterator[tuple[list[str], np.ndarray]]:
    pos = 0
    for texts in _valid_texts(source, plan.valid):
        yield texts, plan.is_val[pos:pos + len(texts)]
        pos += len(texts)


def _val_texts(source: Path, plan: _Plan) -> Iterator[str]:
    for texts, is_val in _encode_batches(source, plan):
        yield from (text for text, val in zip(texts, is_val, strict=True) if val)


def _pieces(tokenizer: Tokenizer, text: str, limit: int = 40) -> str:
    ids = tokenizer.encode(text)[:limit]
    shown = "·".join(p.replace("\n", "\\n") for p in tokenizer.token_pieces(ids))
    return f"{len(ids)} tokens: {shown}"


def _write_report(out_dir: Path, cfg: Cfg, tokenizer: Tokenizer,
                  stats: dict[str, SplitStats], plan: _Plan, source: Path,
                  compare: dict[str, float]) -> None:
    vocab = tokenizer.vocab_size
    merges = vocab - MIN_VOCAB_SIZE
    lines = [
        "# tokens: byte-level BPE",
        "",
        f"- Vocabulary: {vocab} ids (asked for {cfg.vocab_size}): 8 special tokens "
        f"(ids 0..7, `{BOS}` = {tokenizer.special_id(BOS)}), 256 byte tokens, {merges} merges.",
        f"- Trained on {int(plan.train_sample.sum())} train documents; val documents are "
        "never seen by the tokenizer, so val bytes/token measures held-out compression.",
        f"- Split by document id hash: val_fraction={cfg.val_fraction}, seed={cfg.seed}.",
        f"- Skipped rows (no doc_id or empty text): {plan.skipped}.",
        "",
        "| split | documents | tokens (incl. <\\|bos\\|>) | text MB | bytes/token |",
        "|---|---:|---:|---:|---:|",
    ]
    for split, s in stats.items():
        lines.append(f"| {split} | {s.documents} | {s.tokens} | {s.text_bytes / 1e6:.2f} "
                     f"| {s.bytes_per_token:.3f} |")
    lines += ["", "## Compression against GPT-2 and GPT-4", "",
              f"Bytes per token on the held-out split (first {COMPARE_MAX_BYTES / 1e6:.0f} MB "
              "at most), higher is better; GPT-2 and cl100k from offline vocab files.", "",
              "| tokenizer | vocab | bytes/token |", "|---|---:|---:|",
              f"| ours | {vocab} | {compare['ours']:.3f} |",
              f"| GPT-2 | 50257 | {compare['gpt2']:.3f} |",
              f"| GPT-4 (cl100k) | 100277 | {compare['cl100k']:.3f} |"]
    lines += ["", "## How text is cut", "", "Tokens are separated by `·`.", "", "```"]
    val_texts = list(itertools.islice(_val_texts(source, plan), 3))
    for text in (*REPORT_EXAMPLES, *(t[:300] for t in val_texts)):
        lines += [text.replace("\n", " ")[:120], "  -> " + _pieces(tokenizer, text), ""]
    lines += ["```", ""]
    (out_dir / paths.REPORT).write_text("\n".join(lines))
