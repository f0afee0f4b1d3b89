"""Stage ``text``: from crawled HTML to clean documents, the FineWeb recipe plus PII.

In: ``data/crawl/`` (WARC shards listed in ``index.parquet``), or with ``source`` set,
already extracted FineWeb-style rows (local Parquet, a ``save_to_disk`` folder or a
Hugging Face dataset; :mod:`crawl2chat.text.sources`), which skip the URL filter and
extraction; ``source.json`` then says what was read.
Out (``data/text/``): ``documents-00000.parquet`` ... (doc_id, url, warc_file, lang,
lang_score, text, and FineWeb's dump and date; ``shard_rows`` rows each but the last)
and ``removed-00000.parquet`` ... (doc_id, url, reason, text_hash: never the text, which
may hold PII) -- every page is in exactly one of them --, ``removed_sample.parquet``
when ``keep_removed_sample`` asks for it (that many removed pages, lowest hash of their
id first, PII redacted), ``counts.json`` (per-step counts, target vs achieved language
mix, PII counts), ``report.md`` and ``funnel.png``. Read the shards with
:mod:`crawl2chat.text.shards`.

Steps, in order (``crawl2chat.text.recipe.ORDER``), each dropping with a reason
``<step>:<why>``: ``url`` (FineWeb's blocklist) -> ``extract`` (trafilatura) -> ``lang``
(fastText; per-language minimum score) -> ``gopher_rep`` -> ``gopher_quality`` -> ``c4``
-> ``fineweb`` -> ``dedup`` (exact, then MinHash LSH; the first copy in crawl order
wins) -> ``mix`` (a quota by characters per language, :mod:`crawl2chat.text.mix`) ->
``pii`` (redacts, never drops).

Streaming, in passes over a work folder inside the output folder (deleted at the end):
1. per slice (:func:`crawl2chat.text.chunks.filter_slice`, a Prefect task on the task
   runner ``runner`` names): the URL filter, the per-document steps, dedup keys; the
   survivors go to disk, removed pages to ``removed-*.parquet`` as they come;
2. dedup resolution (:mod:`crawl2chat.text.passes`): exact, then one task per MinHash
   band, each a sort on disk in pieces of ``dedup_sort_rows`` rows;
3. here, slice by slice, reading only small columns: which survivors dedup drops, the
   characters per language and rank bin, then the mix's keep decision;
4. one task per slice: its kept pages, PII removed; here they are copied in crawl
   order into the output shards.
The stage's own process holds one slice's metadata, one shard of removed rows and
a histogram per language: its memory does not grow with the crawl. Every decision is
made in crawl order or by a hash of the document id, so the output is the same for
any runner and worker count.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2chat import parallel, paths
from crawl2chat.crawl.urlfilter import UrlFilter, load_blocklist
from crawl2chat.crawl.warc import ReadStats
from crawl2chat.errors import InputError
from crawl2chat.text import chunks, mix, passes
from crawl2chat.text import sources as text_sources
from crawl2chat.text.funnel import write_report
from crawl2chat.text.pii import PiiRedactor
from crawl2chat.text.recipe import ORDER, Cfg, kwargs
from crawl2chat.text.removed import Removed, drop
from crawl2chat.text.shards import (
    DOC_SCHEMA,
    DOCUMENTS,
    REMOVED_SCHEMA,
    ShardWriter,
)
from crawl2chat.text.steps import StepStats, new_stats

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COUNTS", "DOC_COLUMNS", "REMOVED_COLUMNS", "Cfg", "run"]

COUNTS = "counts.json"
SOURCE = "source.json"
DOC_COLUMNS = tuple(DOC_SCHEMA.names)
REMOVED_COLUMNS = tuple(REMOVED_SCHEMA.names)
META = ["doc_id", "url", "lang", "text_hash", "tokens", "chars"]  # read by passes 2 and 3
INDEX_BATCH = 65_536  # crawl index rows read at a time


def _plan(in_dir: Path, chunk_records: int) -> tuple[list[chunks.Chunk], set[str]]:
    """The crawl's slices and its URLs' hosts, reading the index a batch at a time (one
    shard's rows in memory at most), checked against the shards it names."""
    import pandas as pd

    index_file = in_dir / paths.CRAWL_INDEX
    if not index_file.is_file():
        raise InputError(f"{index_file} is missing: run the crawl stage first")
    slices: list[chunks.Chunk] = []
    hosts: set[str] = set()
    shard: list[pd.DataFrame] = []  # the rows of the shard being read

    def finish() -> None:
        if shard:
            slices.extend(chunks.plan(pd.concat(shard), chunk_records))
            shard.clear()

    for batch in pq.ParquetFile(index_file).iter_batches(
            batch_size=INDEX_BATCH, columns=["warc_file", "url", "offset", "length"]):
        frame = batch.to_pandas()
        hosts.update(u.split("/")[2].split(":")[0] for u in frame["url"] if u.count("/") >= 2)
        for name, rows in frame.groupby("warc_file", sort=False):
            if shard and shard[0]["warc_file"].iat[0] != name:
                finish()
            if not shard and not (in_dir / str(name)).is_file():
                raise InputError(f"{index_file} lists {name}, which is not in {in_dir}")
            shard.append(rows)
    finish()
    return slices, hosts


def _url_filter(cfg: Cfg, hosts: set[str]) -> UrlFilter | None:
    """FineWeb's URL filter with only the blocklist entries these hosts could hit."""
    if "url" in cfg.skip_steps:
        return None
    return UrlFilter(load_blocklist(hosts), soft_word_threshold=cfg.url.soft_word_threshold,
                     extra_domains=cfg.url.extra_domains)


def resolve(cfg: Cfg, root: Path) -> Cfg:
    """``cfg`` with a text source's relative paths read from the project in ``root``."""
    if cfg.source is None:
        return cfg
    return replace(cfg, source=replace(cfg.source, root=str(root)))


def needs_input(cfg: Cfg) -> bool:
    """Whether the stage reads the crawl (not with a text source of its own)."""
    return cfg.source is None


def external_inputs(cfg: Cfg, root: Path) -> list[Path]:
    """A text source's local files, fingerprinted before the run."""
    return text_sources.local_files(cfg.source) if cfg.source is not None else []


def discovered_inputs(out_dir: Path) -> dict[str, dict[str, str]]:
    """A hub dataset read as the text source, as a lineage input."""
    file = out_dir / SOURCE
    return text_sources.hub_inputs(json.loads(file.read_text())) if file.exists() else {}


def _count(step: StepStats, tokens: np.ndarray, kept: np.ndarray) -> None:
    """A step that only keeps or drops (dedup, mix): documents and tokens in and out."""
    step.docs_in += len(tokens)
    step.docs_out += int(kept.sum())
    step.tokens_in += int(tokens.sum())
    step.tokens_out += int(tokens[kept].sum())


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, float]:
    """Filter the crawl; metrics: records/tokens kept, docs_in, removed_<step>, mix_<lang>."""
    if cfg.source is None and in_dir is None:
        raise InputError("stage text needs the crawl stage's output folder")
    unread = cfg.pii.names_unread(cfg.shares)
    if unread:
        logging.getLogger(__name__).warning(
            "text.pii: no NER model for %s in text.pii.ner_models: person names in them "
            "stay", ", ".join(unread))
    # the workers start (imports, language model) while this process plans the slices
    with parallel.task_runner(cfg.runner, warm_up=chunks.warm_up) as runner:
        slices: list[chunks.Slice]
        if cfg.source is not None:
            slices = list(text_sources.plan(cfg.source, cfg.chunk_records))
            url_filter = None
            (out_dir / SOURCE).write_text(json.dumps(
                text_sources.describe(cfg.source, slices), indent=2) + "\n")
        else:
            assert in_dir is not None
            crawl_slices, hosts = _plan(in_dir, cfg.chunk_records)
            slices = list(crawl_slices)
            url_filter = _url_filter(cfg, hosts)
        work = Path(tempfile.mkdtemp(prefix=".work-", dir=out_dir))
        try:
            # a text source's slices name their own files: in_dir is then never read
            written, rest = _run(cfg, in_dir or out_dir, out_dir, work, slices, url_filter,
                                 runner)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _finish(cfg, out_dir, *rest, written, len(slices))


def _run(cfg: Cfg, in_dir: Path, out_dir: Path, work: Path, slices: list[chunks.Slice],
         url_filter: UrlFilter | None, runner: Any,
         ) -> tuple[passes.Written, tuple[dict[str, StepStats], ReadStats, Removed, mix.Plan]]:
    """Filter, dedup, mix and redact on ``runner``; what was written, and the counts."""
    from tqdm import tqdm

    read = ReadStats()
    stats = new_stats(ORDER)
    removed = Removed(out_dir, cfg)
    survivors: list[int] = []
    dedup = "dedup" not in cfg.skip_steps
    balance = cfg.balance_mix and "mix" not in cfg.skip_steps
    pii = PiiRedactor(**kwargs(cfg.pii))
    window = 4 * cfg.runner.workers  # units in flight: enough to keep every worker busy
    units = ({"source": c, "number": i, "in_dir": in_dir, "cfg": cfg,
              "url_filter": url_filter, "work": work} for i, c in enumerate(slices))
    for result in tqdm(parallel.map_ordered(runner, chunks.filter_slice, units, window),
                       total=len(slices), desc="text", unit="slice", leave=False):
        for name, record in result.stats.items():
            stats[name].add(record)
        read.add(result.read)
        removed.add(result.removed, result.sample)
        survivors.append(result.kept)

    bands: list[Path] = []
    if dedup:
        common = {"work": work, "slices": len(slices), "total": sum(survivors),
                  "max_rows": cfg.dedup_sort_rows}
        list(parallel.map_ordered(runner, passes.resolve_exact, [common], 1))
        bands = list(parallel.map_ordered(
            runner, passes.resolve_band,
            ({**common, "band": b} for b in range(cfg.dedup.buckets)), window))

    tally = mix.Tally()
    for number, rows in enumerate(survivors):
        meta = pq.read_table(chunks.work_file(work, "survivors", number, "parquet"),
                             columns=META)
        codes = (passes.dedup_reasons(work, number, rows, bands) if dedup
                 else np.zeros(rows, dtype=np.int8))
        np.save(chunks.work_file(work, "dedup", number), codes)
        tokens = meta["tokens"].to_numpy()
        if dedup:
            _count(stats["dedup"], tokens, codes == 0)
            why = {passes.EXACT: "dedup:exact", passes.MINHASH: "dedup:minhash"}
            drop(removed, meta, codes != 0, [why.get(int(c), "") for c in codes],
                  work, number)
        fresh = codes == 0
        langs = meta["lang"].to_pylist()
        tally.add([lang for lang, f in zip(langs, fresh, strict=True) if f],
                  mix.ranks(meta["doc_id"].filter(pa.array(fresh)).to_pylist()),
                  meta["chars"].to_numpy()[fresh])

    plan = mix.plan(tally, cfg.shares)
    for number in range(len(slices)):
        meta = pq.read_table(chunks.work_file(work, "survivors", number, "parquet"),
                             columns=META)
        fresh = np.load(chunks.work_file(work, "dedup", number)) == 0
        langs = meta["lang"].to_pylist()
        keep = fresh.copy()
        if balance:
            keep &= plan.keep(langs, mix.ranks(meta["doc_id"].to_pylist()))
            tokens = meta["tokens"].to_numpy()
            _count(stats["mix"], tokens[fresh], keep[fresh])
            drop(removed, meta, fresh & ~keep, [f"mix:{lang}" for lang in langs],
                  work, number)
        np.save(chunks.work_file(work, "keep", number), keep)

    written = passes.Written()
    shards = ShardWriter(out_dir, DOCUMENTS, DOC_SCHEMA, cfg.shard_rows)
    if "pii" in cfg.skip_steps:  # only a copy is left: not worth a task per slice
        finals = (passes.redact_slice(work, n, None) for n in range(len(slices)))
    else:
        finals = parallel.map_ordered(runner, passes.redact_slice, (
            {"work": work, "number": n, "pii": pii} for n in range(len(slices))), window)
    for number, done in enumerate(finals):
        final = chunks.work_file(work, "final", number, "parquet")
        shards.write(pq.read_table(final))  # in crawl order; one shard in memory at most
        final.unlink()
        written.pii.update(done.pii)
        written.stats.add(done.stats)
        written.chars.update(done.chars)
        written.docs.update(done.docs)
        written.words += done.words
        written.rows += done.rows
    shards.close()
    stats["pii"].add(written.stats)
    removed.close(out_dir, pii)
    if not written.rows:
        raise InputError(f"stage text: no document survived the filters "
                         f"({read.responses} in, removed: "
                         f"{dict(removed.by_reason.most_common())}); "
                         f"check text.languages and the filter settings")
    return written, (stats, read, removed, plan)


def _finish(cfg: Cfg, out_dir: Path, stats: dict[str, StepStats], read: ReadStats,
            removed: Removed, plan: mix.Plan, written: passes.Written,
            slices: int) -> dict[str, float]:
    """counts.json, the report and the stage's metrics."""
    languages = mix.report(cfg.shares, plan.effective if plan.effective else cfg.shares,
                           written.chars)
    for lang, row in languages.items():
        row["docs"] = int(written.docs.get(lang, 0))
    achieved = {lang: row["achieved"] for lang, row in languages.items() if row["chars"]}
    counts = {"docs_in": read.responses, "kept": written.rows, "slices": slices,
              "chars": sum(written.chars.values()),
              "removed": dict(removed.by_reason.most_common()),
              "steps": [stats[n].row() for n in ORDER if n not in cfg.skip_steps],
              "languages_target": cfg.shares, "languages_achieved": achieved,
              "languages": languages,
              "pii_replaced": dict(written.pii), "damaged_records": dict(read.skipped)}
    (out_dir / COUNTS).write_text(json.dumps(counts, indent=2) + "\n")
    write_report(out_dir, cfg, counts, removed.examples)
    metrics: dict[str, float] = {"records": written.rows, "tokens": written.words,
                                 "docs_in": counts["docs_in"], "chars": counts["chars"]}
    metrics.update({f"removed_{n}": stats[n].docs_in - stats[n].docs_out for n in ORDER})
    metrics.update({f"mix_{lang}": share for lang, share in achieved.items()})
    metrics.update({f"pii_{k.lower()}": v for k, v in written.pii.items()})
    return metrics
