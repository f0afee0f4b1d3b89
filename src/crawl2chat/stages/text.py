"""Stage ``text``: from crawled HTML to clean documents, the FineWeb recipe plus PII.

In: ``data/crawl/`` (WARC shards listed in ``index.parquet``), or with ``source`` set,
already extracted FineWeb-style rows (local Parquet, a ``save_to_disk`` folder or a
Hugging Face dataset; :mod:`crawl2chat.text.sources`), which skip the URL filter and
extraction; ``source.json`` then says what was read.
Out (``data/text/``): ``documents.parquet`` (doc_id, url, warc_file, lang, lang_score,
text, and FineWeb's dump and date) and ``removed.parquet`` (doc_id, url, reason, text)
-- every page is in exactly one of them --, ``counts.json`` (per-step counts, achieved
language mix, PII counts), ``report.md`` and ``funnel.png``.

Steps, in order (``crawl2chat.text.recipe.ORDER``), each dropping with a reason
``<step>:<why>``: ``url`` (FineWeb's blocklist) -> ``extract`` (trafilatura) -> ``lang``
(fastText; per-language minimum score) -> ``gopher_rep`` -> ``gopher_quality`` -> ``c4``
-> ``fineweb`` -> ``dedup`` (exact, then MinHash LSH; the first copy in crawl order
wins) -> ``mix`` (drops documents of over-represented languages to reach the target
shares) -> ``pii`` (redacts, never drops).

Parallel: the crawl is cut into slices of ``chunk_records`` records
(:mod:`crawl2chat.text.chunks`); each slice is a Prefect task that runs the URL filter,
the per-document steps and the dedup hashing; a second task per slice removes PII.
They run on the task runner ``runner`` names (threads, processes, Dask). Dedup and the
language mix need the whole crawl and run here, on results taken in crawl order, so the
output is the same for any runner and worker count.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from crawl2chat import parallel, paths
from crawl2chat.crawl.urlfilter import UrlFilter, load_blocklist
from crawl2chat.crawl.warc import ReadStats
from crawl2chat.errors import InputError
from crawl2chat.text import chunks, mix
from crawl2chat.text import sources as text_sources
from crawl2chat.text.dedup import ExactDedup
from crawl2chat.text.funnel import write_report
from crawl2chat.text.minhash import MinHashDedup, MinHasher
from crawl2chat.text.pii import PiiRedactor
from crawl2chat.text.recipe import ORDER, Cfg, kwargs
from crawl2chat.text.steps import Doc, StepStats, new_stats

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COUNTS",
    "DOCUMENTS",
    "DOC_COLUMNS",
    "REMOVED",
    "REMOVED_COLUMNS",
    "Cfg",
    "group",
    "run",
]

DOCUMENTS = paths.TEXT_DOCUMENTS
REMOVED = "removed.parquet"
COUNTS = "counts.json"
SOURCE = "source.json"
DOC_COLUMNS = ("doc_id", "url", "warc_file", "lang", "lang_score", "text", "dump", "date")
REMOVED_COLUMNS = ("doc_id", "url", "reason", "text")


def group(reason: str) -> str:
    """The reason without its value: ``lang:de:0.91`` -> ``lang:de``."""
    return ":".join(reason.split(":")[:2])


def _index(in_dir: Path) -> pd.DataFrame:
    """The crawl's index, checked against the shards it names."""
    import pandas as pd

    index_file = in_dir / paths.CRAWL_INDEX
    if not index_file.is_file():
        raise InputError(f"{index_file} is missing: run the crawl stage first")
    index = pd.read_parquet(index_file, columns=["warc_file", "url", "offset", "length"])
    for name in index["warc_file"].unique():
        if not (in_dir / name).is_file():
            raise InputError(f"{index_file} lists {name}, which is not in {in_dir}")
    return index


def _url_filter(cfg: Cfg, urls: list[str]) -> UrlFilter | None:
    """FineWeb's URL filter with only the blocklist entries these URLs' hosts could hit."""
    if "url" in cfg.skip_steps:
        return None
    hosts = {u.split("/")[2].split(":")[0] for u in urls if u.count("/") >= 2}
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


def _merge(into: dict[str, StepStats], stats: dict[str, StepStats]) -> None:
    for name, record in stats.items():
        into[name].add(record)


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, float]:
    """Filter the crawl; metrics: records/tokens kept, docs_in, removed_<step>, mix_<lang>."""
    import pandas as pd
    from tqdm import tqdm

    if cfg.source is not None:
        slices: list = text_sources.plan(cfg.source, cfg.chunk_records)
        url_filter = None
        (out_dir / SOURCE).write_text(json.dumps(text_sources.describe(cfg.source, slices),
                                                 indent=2) + "\n")
    else:
        if in_dir is None:
            raise InputError("stage text needs the crawl stage's output folder")
        index = _index(in_dir)
        slices = chunks.plan(index, cfg.chunk_records)
        url_filter = _url_filter(cfg, index["url"].tolist())
    read = ReadStats()
    stats = new_stats(ORDER)
    removed: list[tuple[Doc, str]] = []
    survivors: list[tuple[int, Doc]] = []  # (slice number, page) in crawl order
    exact, near = ExactDedup(), MinHashDedup(MinHasher(**kwargs(cfg.dedup)))
    window = 4 * cfg.runner.workers  # units in flight: enough to keep every worker busy
    with parallel.task_runner(cfg.runner) as runner:
        units = ({"in_dir": in_dir, "chunk": c, "cfg": cfg, "url_filter": url_filter}
                 for c in slices)
        results = parallel.map_ordered(runner, chunks.filter_chunk, units, window)
        # dedup is the one per-page step that needs every earlier page: done here, in order
        for number, result in enumerate(tqdm(results, total=len(slices), desc="text",
                                             unit="slice", leave=False)):
            _merge(stats, result.stats)
            read.add(result.read)
            for out in result.outcomes:
                reason = out.reason
                if reason is None and "dedup" not in cfg.skip_steps:
                    why = (exact.check(out.text_hash)
                           or near.check_signature(out.doc.doc_id, out.signature))
                    reason = stats["dedup"].count(out.doc, why, out.doc.tokens())
                if reason is None:
                    survivors.append((number, out.doc))
                else:
                    removed.append((out.doc, reason))

        over: set[str] = set()
        if cfg.balance_mix and "mix" not in cfg.skip_steps:
            over = mix.over_share([(d.doc_id, d.lang) for _, d in survivors], cfg.shares)
        by_slice: dict[int, list[Doc]] = {}
        for number, doc in survivors:
            reason = stats["mix"].count(doc, doc.lang if doc.doc_id in over else None,
                                        doc.tokens())
            if reason:
                removed.append((doc, reason))
            else:
                by_slice.setdefault(number, []).append(doc)
        kept = [doc for pages in by_slice.values() for doc in pages]
        pii_counts: Counter[str] = Counter()
        if "pii" not in cfg.skip_steps:  # per slice again: NER is the slowest step
            redactor = PiiRedactor(**kwargs(cfg.pii))
            units = ({"docs": pages, "pii": redactor} for pages in by_slice.values())
            for pages, (texts, found, step) in zip(
                    by_slice.values(), parallel.map_ordered(runner, chunks.redact_chunk, units,
                                                          window), strict=True):
                for doc, redacted in zip(pages, texts, strict=True):
                    doc.text = redacted
                pii_counts.update(found)
                stats["pii"].add(step)

    docs = pd.DataFrame([{"doc_id": d.doc_id, "url": d.url, "warc_file": d.warc_file,
                          "lang": d.lang, "lang_score": d.lang_score, "text": d.text,
                          "dump": d.dump, "date": d.date}
                         for d in kept], columns=list(DOC_COLUMNS)).astype(
                             {"lang_score": "float64"})
    gone = pd.DataFrame([{"doc_id": d.doc_id, "url": d.url, "reason": r, "text": d.text}
                         for d, r in removed], columns=list(REMOVED_COLUMNS))
    by_reason = Counter(group(r) for r in gone["reason"])
    if docs.empty:
        raise InputError(f"stage text: no document survived the filters "
                         f"({len(gone)} in, removed: {dict(by_reason.most_common())}); "
                         f"check text.languages and the filter settings")
    docs.to_parquet(out_dir / DOCUMENTS, index=False)
    gone.to_parquet(out_dir / REMOVED, index=False)
    achieved = mix.shares(docs["lang"].tolist())
    counts = {"docs_in": read.responses, "kept": len(docs), "slices": len(slices),
              "removed": dict(by_reason.most_common()),
              "steps": [stats[n].row() for n in ORDER if n not in cfg.skip_steps],
              "languages_target": cfg.shares, "languages_achieved": achieved,
              "pii_replaced": dict(pii_counts), "damaged_records": dict(read.skipped)}
    (out_dir / COUNTS).write_text(json.dumps(counts, indent=2) + "\n")
    write_report(out_dir, cfg, docs, gone, counts)
    metrics: dict[str, float] = {"records": len(docs),
                                 "tokens": int(docs["text"].str.split().str.len().sum()),
                                 "docs_in": counts["docs_in"],
                                 "chars": int(docs["text"].str.len().sum())}
    metrics.update({f"removed_{n}": stats[n].docs_in - stats[n].docs_out for n in ORDER})
    metrics.update({f"mix_{lang}": share for lang, share in achieved.items()})
    metrics.update({f"pii_{k.lower()}": v for k, v in pii_counts.items()})
    return metrics
