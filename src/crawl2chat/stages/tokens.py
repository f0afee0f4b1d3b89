"""Stage ``tokens``: filtered text -> a BPE tokenizer and token shards.

In: ``data/text/documents-*.parquet`` (columns ``doc_id``, ``text``; other columns
are ignored), read shard by shard through :mod:`crawl2chat.text.shards`.
Out (``data/tokens/``): ``tokenizer/tokenizer.json``, ``train.bin`` and
``val.bin`` (see :mod:`crawl2chat.tokenizer.shards`), ``meta.json`` and ``report.md``.

With ``tokenizer`` set (a ``tokenizer.json``, its folder, or another tokens output
folder, relative to the project root), that tokenizer is reused instead of trained:
its files are copied unchanged, so a second text folder tokenised this way has the
same vocabulary and can join the first in ``base.data.mix``; the file is an input of
the stage (manifest, MLflow, and it must be a DVC dependency of ``tokens``).

Documents are split into train and val by a salted hash of their id. The tokenizer
is trained on train documents only -- a sample of at most ``max_train_bytes`` of
their text, chosen by another salted hash of the id --, so the bytes-per-token
figure reported on val is measured on text the tokenizer never saw. Rows without a
``doc_id`` or with empty text are skipped and counted.

Streaming: every pass reads the input batch by batch (ids and text lengths to plan,
the sample to train, one row group per encoding task); encoding runs as Prefect tasks
on the task runner ``runner`` names, each writing its own token files, joined in
order at the end. Memory holds one batch per worker and the tokenizer's sample.
"""

from __future__ import annotations

import functools
import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crawl2chat import parallel, paths
from crawl2chat.config import NOT_A_PARAM
from crawl2chat.errors import ConfigError, InputError
from crawl2chat.parallel import RunnerCfg
from crawl2chat.text.shards import iter_batches, shard_files
from crawl2chat.tokenizer.reference import bytes_per_token
from crawl2chat.tokenizer.shards import (
    SPLITS,
    SplitStats,
    ValRule,
    encode_part,
    join_parts,
    part_files,
    split_hash,
)
from crawl2chat.tokenizer.special import BOS
from crawl2chat.tokenizer.tokenizer import TOKENIZER_FILE, Tokenizer
from crawl2chat.tokenizer.train import MIN_VOCAB_SIZE, train_bpe

TOKENIZER_DIR = "tokenizer"
BATCH_DOCS = 1024  # documents per parquet batch when planning and sampling
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
    max_train_bytes: int | None = None
    """UTF-8 bytes of train text (about; sampled by hash) to learn the merges; None: all."""
    min_frequency: int = 1
    """A byte pair must occur this often to become a merge; 1 uses the faster rustbpe
    trainer, more uses the ``tokenizers`` BpeTrainer (see tokenizer/train.py)."""
    seed: int = 0
    """Salts the document hash: another seed gives another split and sample."""
    runner: RunnerCfg = field(default_factory=RunnerCfg)
    """Where the encoding tasks run: as the text stage's, worker processes by default."""
    tokenizer: str | None = None
    """Reuse this tokenizer instead of training one: a ``tokenizer.json``, its folder, or
    a tokens output folder (relative to the project root); None trains one."""
    root: Path = field(default=Path("."), metadata=NOT_A_PARAM)
    """The folder ``tokenizer`` is read from (the project root)."""


def resolve(cfg: Cfg, root: Path) -> Cfg:
    """``cfg`` bound to the project in ``root``: ``tokenizer`` is read there."""
    return replace(cfg, root=root)


def reused_tokenizer(cfg: Cfg) -> Path | None:
    """The ``tokenizer.json`` that ``tokenizer`` names; None when one is trained."""
    if cfg.tokenizer is None:
        return None
    named = cfg.root / cfg.tokenizer
    for file in (named, named / TOKENIZER_FILE, named / TOKENIZER_DIR / TOKENIZER_FILE):
        if file.is_file() and file.name == TOKENIZER_FILE:
            return file.resolve()
    raise InputError(f"tokens.tokenizer: {named} is not a {TOKENIZER_FILE}, nor a folder "
                     f"holding one (a tokenizer folder or a tokens output folder)")


def external_inputs(cfg: Cfg, root: Path) -> list[Path]:
    """The reused tokenizer's file, fingerprinted before the run."""
    file = reused_tokenizer(resolve(cfg, root))
    return [file] if file is not None else []


@dataclass
class _Plan:
    """How documents are used, decided by their id before any text is encoded."""

    rule: ValRule
    valid: int = 0
    skipped: int = 0
    train_bytes: int = 0
    sample_fraction: float = 1.0
    sampled_docs: int = 0  # counted while the tokenizer reads them
    sampled_bytes: int = 0

    def in_sample(self, doc_id: str) -> bool:
        return (self.sample_fraction >= 1.0
                or split_hash(f"sample:{doc_id}", self.rule.seed) < self.sample_fraction)


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, float]:
    _check(cfg)
    if in_dir is None:
        raise InputError("the tokens stage needs the text stage's output folder")
    source = Path(in_dir)
    plan = _plan(source, cfg)
    reused = reused_tokenizer(cfg)
    if reused is None:
        tokenizer = train_bpe(_training_texts(source, plan), cfg.vocab_size,
                              cfg.min_frequency, show_progress=True)
        tokenizer.save(out_dir / TOKENIZER_DIR)
    else:
        tokenizer = Tokenizer.load(reused.parent)  # refuses a foreign special-token layout
        # the files as they are: the same bytes, so base.data.mix sees the same tokenizer
        shutil.copytree(reused.parent, out_dir / TOKENIZER_DIR)
    stats = _encode(cfg, source, out_dir, plan, tokenizer)
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
        "tokenizer_sample_bytes": plan.sampled_bytes,
    }


def _check(cfg: Cfg) -> None:
    if cfg.vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(f"tokens.vocab_size: {cfg.vocab_size} is below the minimum "
                          f"{MIN_VOCAB_SIZE} (8 special tokens + 256 bytes)")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(f"tokens.val_fraction: {cfg.val_fraction} is not in (0, 1)")
    if cfg.max_train_bytes is not None and cfg.max_train_bytes < 1:
        raise ConfigError(f"tokens.max_train_bytes: {cfg.max_train_bytes} must be >= 1 "
                          "or null")
    if cfg.min_frequency < 1:
        raise ConfigError(f"tokens.min_frequency: {cfg.min_frequency} must be >= 1")


def _valid(batch: pa.RecordBatch | pa.Table) -> tuple[list[str], list[str]]:
    """The ids and texts of the rows with a doc_id and non-empty text."""
    ok = pc.and_(pc.is_valid(batch.column("doc_id")),
                 pc.greater(pc.utf8_length(pc.fill_null(batch.column("text"), "")), 0))
    kept = batch.filter(ok)
    return ([str(i) for i in kept.column("doc_id").to_pylist()],
            kept.column("text").to_pylist())


def _documents(source: Path) -> Iterator[tuple[list[str], list[str]]]:
    """(ids, texts) of the valid rows, batch by batch, in shard order."""
    for batch in iter_batches(source, columns=["doc_id", "text"], batch_rows=BATCH_DOCS):
        yield _valid(batch)


def _plan(source: Path, cfg: Cfg) -> _Plan:
    """Two passes over ids and text lengths: the val rule, then the train text's size."""
    rows = 0

    def ids() -> Iterator[str]:
        nonlocal rows
        for batch in iter_batches(source, columns=["doc_id", "text"], batch_rows=BATCH_DOCS):
            rows += batch.num_rows
            yield from _valid(batch)[0]

    plan = _Plan(ValRule.from_ids(ids(), cfg.val_fraction, cfg.seed))
    for doc_ids, texts in _documents(source):
        plan.valid += len(doc_ids)
        plan.train_bytes += sum(len(t.encode()) for i, t in zip(doc_ids, texts, strict=True)
                                if not plan.rule.is_val(i))
    plan.skipped = rows - plan.valid
    if plan.valid < 2:
        raise InputError(f"{source}: {plan.valid} document(s) with a doc_id and text; "
                         f"a train and a val split need at least 2")
    if cfg.max_train_bytes is not None and plan.train_bytes > cfg.max_train_bytes:
        plan.sample_fraction = cfg.max_train_bytes / plan.train_bytes
    return plan


def _training_texts(source: Path, plan: _Plan) -> Iterator[str]:
    for doc_ids, texts in _documents(source):
        for doc_id, text in zip(doc_ids, texts, strict=True):
            if not plan.rule.is_val(doc_id) and plan.in_sample(doc_id):
                plan.sampled_docs += 1
                plan.sampled_bytes += len(text.encode())
                yield text


def _val_texts(source: Path, plan: _Plan) -> Iterator[str]:
    for doc_ids, texts in _documents(source):
        yield from (t for i, t in zip(doc_ids, texts, strict=True) if plan.rule.is_val(i))


@functools.cache
def _tokenizer(folder: Path) -> Tokenizer:
    """The saved tokenizer, loaded once per worker process."""
    return Tokenizer.load(folder)


def encode_unit(file: Path, group: int, number: int, rule: ValRule,
                out_dir: Path) -> dict[str, SplitStats]:
    """One row group of one shard, encoded into its own token files."""
    doc_ids, texts = _valid(pq.ParquetFile(file).read_row_group(group,
                                                                columns=["doc_id", "text"]))
    return encode_part(_tokenizer(out_dir / TOKENIZER_DIR), texts,
                       [rule.is_val(i) for i in doc_ids], part_files(out_dir, number))


def _encode(cfg: Cfg, source: Path, out_dir: Path, plan: _Plan,
            tokenizer: Tokenizer) -> dict[str, SplitStats]:
    """Encode every row group as a task; join their files in order."""
    from tqdm import tqdm

    groups = [(file, g) for file in shard_files(source)
              for g in range(pq.ParquetFile(file).metadata.num_row_groups)]
    units = ({"file": file, "group": g, "number": n, "rule": plan.rule, "out_dir": out_dir}
             for n, (file, g) in enumerate(groups))
    stats = {split: SplitStats() for split in SPLITS}
    with parallel.task_runner(cfg.runner) as runner:
        for done in tqdm(parallel.map_ordered(runner, encode_unit, units,
                                              4 * cfg.runner.workers),
                         total=len(groups), desc="encode", unit="part"):
            for split, part in done.items():
                stats[split].add(part)
    join_parts(tokenizer, out_dir, len(groups), stats)
    return stats


def _pieces(tokenizer: Tokenizer, text: str, limit: int = 40) -> str:
    ids = tokenizer.encode(text)[:limit]
    shown = "·".join(p.replace("\n", "\\n") for p in tokenizer.token_pieces(ids))
    return f"{len(ids)} tokens: {shown}"


def _write_report(out_dir: Path, cfg: Cfg, tokenizer: Tokenizer,
                  stats: dict[str, SplitStats], plan: _Plan, source: Path,
                  compare: dict[str, float]) -> None:
    reused = cfg.tokenizer
    vocab = tokenizer.vocab_size
    merges = vocab - MIN_VOCAB_SIZE
    lines = [
        "# tokens: byte-level BPE",
        "",
        f"- Vocabulary: {vocab} ids (asked for {cfg.vocab_size}): 8 special tokens "
        f"(ids 0..7, `{BOS}` = {tokenizer.special_id(BOS)}), 256 byte tokens, {merges} merges.",
        (f"- Reused from `{reused}` (`tokens.tokenizer`), not trained: the same vocabulary "
         "as the text it was trained on." if reused else
         f"- Trained on {plan.sampled_docs} train documents "
         f"({plan.sampled_bytes / 1e6:.2f} MB of {plan.train_bytes / 1e6:.2f} MB of train "
         f"text; cap {cfg.max_train_bytes or 'none'}); val documents are "
         "never seen by the tokenizer, so val bytes/token measures held-out compression."),
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
