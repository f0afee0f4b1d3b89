"""Stage ``text``: from crawled HTML to clean documents, the FineWeb recipe plus PII.

In: ``data/crawl/`` (WARC shards listed in ``index.parquet``).
Out (``data/text/``): ``documents.parquet`` (doc_id, url, warc_file, lang, lang_score,
text) and ``removed.parquet`` (doc_id, url, reason, text) -- every page is in exactly
one of them --, ``counts.json`` (per-step counts, achieved language mix, PII counts),
``report.md`` and ``funnel.png``.

Steps, in order (``crawl2chat.web.pipeline.ORDER``), each dropping with a reason
``<step>:<why>``: ``url`` (FineWeb's blocklist) -> ``extract`` (trafilatura) -> ``lang``
(fastText; per-language minimum score) -> ``gopher_rep`` -> ``gopher_quality`` -> ``c4``
-> ``fineweb`` -> ``dedup`` (exact, then MinHash LSH; the first copy in crawl order
wins) -> ``mix`` (drops documents of over-represented languages to reach the target
shares) -> ``pii`` (redacts, never drops). The per-document steps run in a process pool;
results come back in crawl order, so the output does not depend on the worker count.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from crawl2chat.errors import InputError
from crawl2chat.web import mix
from crawl2chat.web.dedup import ExactDedup
from crawl2chat.web.funnel import write_report
from crawl2chat.web.minhash import MinHashDedup
from crawl2chat.web.pipeline import ORDER, Cfg, outcomes
from crawl2chat.web.steps import Doc, StepStats
from crawl2chat.web.urlfilter import UrlFilter, load_blocklist
from crawl2chat.web.warc import ReadStats, iter_responses

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

DOCUMENTS = "documents.parquet"
REMOVED = "removed.parquet"
COUNTS = "counts.json"
DOC_COLUMNS = ("doc_id", "url", "warc_file", "lang", "lang_score", "text")
REMOVED_COLUMNS = ("doc_id", "url", "reason", "text")


def group(reason: str) -> str:
    """The reason without its value: ``lang:de:0.91`` -> ``lang:de``."""
    return ":".join(reason.split(":")[:2])


def _docs(in_dir: Path, stats: ReadStats) -> tuple[list[str], Iterator[Doc]]:
    """The crawl's URLs (for the blocklist) and its pages in crawl order."""
    import pandas as pd

    index_file = in_dir / "index.parquet"
    if not index_file.is_file():
        raise InputError(f"{index_file} is missing: run the crawl stage first")
    index = pd.read_parquet(index_file, columns=["warc_file", "url"])
    shards = list(index["warc_file"].unique())
    for name in shards:
        if not (in_dir / name).is_file():
            raise InputError(f"{index_file} lists {name}, which is not in {in_dir}")

    def pages() -> Iterator[Doc]:
        for name in shards:
            for r in iter_responses(in_dir / name, stats):
                yield Doc(r.record_id.strip("<>"), r.url, name,
                          r.header("Content-Type") or "", r.payload)
    return index["url"].tolist(), pages()


def _timed(step: StepStats, doc: Doc, check: object) -> str | None:
    """Run a whole-crawl step on one document, counting it like the per-document ones."""
    step.docs_in += 1
    step.tokens_in += doc.tokens()
    start = time.perf_counter()
    why = check(doc) if callable(check) else None
    step.seconds += time.perf_counter() - start
    if why is None:
        step.docs_out += 1
        step.tokens_out += doc.tokens()
        return None
    return f"{step.name}:{why}"


def _url_passed(docs: Iterable[Doc], url_filter: UrlFilter | None, stats: dict[str, StepStats],
                removed: list[tuple[Doc, str]]) -> Iterator[Doc]:
    for doc in docs:
        reason = _timed(stats["url"], doc, url_filter)
        if reason:
            doc.html = b""
            removed.append((doc, reason))
        else:
            yield doc


def _batches(docs: Iterable[Doc], size: int) -> Iterator[list[Doc]]:
    batch: list[Doc] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, float]:
    """Filter the crawl; metrics: records/tokens kept, docs_in, removed_<step>, mix_<lang>."""
    import pandas as pd
    from tqdm import tqdm

    if in_dir is None:
        raise InputError("stage text needs the crawl stage's output folder")
    read = ReadStats()
    stats = {name: StepStats(name) for name in ORDER}
    urls, pages = _docs(in_dir, read)
    url_filter = None
    if "url" not in cfg.skip_steps:
        hosts = {u.split("/")[2].split(":")[0] for u in urls if u.count("/") >= 2}
        url_filter = UrlFilter(load_blocklist(hosts),
                               soft_word_threshold=cfg.url.soft_word_threshold,
                               extra_domains=cfg.url.extra_domains)
    removed: list[tuple[Doc, str]] = []
    exact, near = ExactDedup(), MinHashDedup(cfg.dedup)
    survivors: list[Doc] = []
    passed = _url_passed(pages, url_filter, stats, removed)
    for doc, reason in tqdm(outcomes(_batches(passed, cfg.batch_size), cfg, stats),
                            desc="text", unit="doc", leave=False):
        if reason is None and "dedup" not in cfg.skip_steps:
            reason = _timed(stats["dedup"], doc, lambda d: (
                "exact" if not exact.check(d.text).keep else near.check(d.doc_id, d.text)))
        if reason is None:
            survivors.append(doc)
        else:
            removed.append((doc, reason))

    over = set()
    if cfg.balance_mix and "mix" not in cfg.skip_steps:
        over = mix.over_share([(d.doc_id, d.lang) for d in survivors], cfg.shares)
    kept: list[Doc] = []
    pii_counts: Counter[str] = Counter()
    for doc in survivors:
        reason = _timed(stats["mix"], doc, lambda d: d.lang if d.doc_id in over else None)
        if reason:
            removed.append((doc, reason))
            continue
        if "pii" not in cfg.skip_steps:
            step = stats["pii"]
            start = time.perf_counter()
            step.tokens_in += doc.tokens()
            doc.text, found = cfg.pii.redact(doc.text)
            pii_counts.update(found)
            step.docs_in, step.docs_out = step.docs_in + 1, step.docs_out + 1
            step.tokens_out += doc.tokens()
            step.seconds += time.perf_counter() - start
        kept.append(doc)

    docs = pd.DataFrame([{"doc_id": d.doc_id, "url": d.url, "warc_file": d.warc_file,
                          "lang": d.lang, "lang_score": d.lang_score, "text": d.text}
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
    counts = {"docs_in": read.responses, "kept": len(docs),
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
