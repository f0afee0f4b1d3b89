"""Stage ``crawl``: the pipeline's entry point for web data.

In: with ``source: warc`` (the default), the WARC files that ``sources`` names (paths or
globs relative to the project root, or URLs read through fsspec: ``file://``,
``https://``, ``s3://`` ...; see :mod:`crawl2chat.crawl.sources`; by default the bundled
sample ``data/demo/web/*.warc.gz``). With ``source: common_crawl``, ``common_crawl.files``
WARC files of the Common Crawl crawl ``common_crawl.crawl``, picked from its
``warc.paths.gz`` (:mod:`crawl2chat.crawl.commoncrawl`). Remote files are streamed
(HTTP with retries and Range resumes, ``http``), never copied whole; one that cannot be
read to its end after the retries is a counted skip (``unreachable``) that keeps the
records read before. With ``source: crawler``, the pages the polite crawler
(:mod:`crawl2chat.crawl.crawler`) fetches from ``crawler.seeds``; its raw archive (request
and response records of every exchange) is kept as ``raw/crawler-00000.warc.gz`` and is
then read exactly like a WARC source.
Out (``data/crawl/``): the HTML responses with status 2xx, copied record by record (same
WARC-Record-ID, URL and date; the crawl id in a ``WARC-Dump`` header) into
``crawl-NNNNN.warc.gz`` shards; ``index.parquet`` with one row per copied record
(``offset``/``length``: where its gzip member sits in ``warc_file``, so one record can be
read without the rest; ``source_file``: the input WARC it came from; ``dump``: its crawl
id, from the input's warcinfo ``isPartOf`` or the Common Crawl id, else ''; ``date``:
WARC-Date); ``sources.json``, every input file read with its size and sha256 (for URLs
the only fingerprint there is: DVC cannot track a remote file as a dependency; of the
part read when ``max_records`` stopped early), whether it was read to its end, and its
crawl id; ``report.md``. Damaged records, other record
types, other media types, other statuses and repeated record ids are counted skips
(the ids copied so far are kept on disk, :mod:`crawl2chat.crawl.seen`: memory does not
grow with the crawl).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from crawl2chat import paths
from crawl2chat.config import NOT_A_PARAM
from crawl2chat.crawl import sources as crawl_sources
from crawl2chat.crawl.commoncrawl import CommonCrawlCfg, local_paths_file, pick_sources
from crawl2chat.crawl.crawler import Crawler
from crawl2chat.crawl.headers import HTML_TYPES
from crawl2chat.crawl.http_stream import HttpCfg, StreamFailed
from crawl2chat.crawl.index import IndexWriter
from crawl2chat.crawl.seen import SeenIds
from crawl2chat.crawl.settings import CrawlerSettings, CrawlStats
from crawl2chat.crawl.sources import Source, file_digest, open_remote
from crawl2chat.crawl.warc import (
    MAX_PAYLOAD_BYTES,
    ReadStats,
    WarcResponse,
    WarcShardWriter,
    iter_responses,
)
from crawl2chat.crawl.warc_stream import StreamReader, file_dump
from crawl2chat.errors import ConfigError, InputError

SHARD = "crawl-{:05d}.warc.gz"
log = logging.getLogger("crawl2chat.crawl")

INDEX = paths.CRAWL_INDEX
SOURCES_FILE = "sources.json"
SEEN_IDS = ".seen-ids.sqlite"  # scratch, deleted when the copy ends
RAW_CRAWL = "raw/crawler-00000.warc.gz"
SOURCES = ("warc", "crawler", "common_crawl")


@dataclass
class Cfg:
    """Where the pages come from (WARC files or the crawler) and how to shard the copy."""

    source: str = "warc"
    sources: list[str] = field(default_factory=lambda: ["data/demo/web/*.warc.gz"])
    crawler: CrawlerSettings = field(default_factory=CrawlerSettings)
    common_crawl: CommonCrawlCfg = field(default_factory=CommonCrawlCfg)
    http: HttpCfg = field(default_factory=HttpCfg)  # how remote files are streamed
    max_records: int | None = None  # stop after this many kept records (smoke runs)
    records_per_shard: int = 1000
    max_payload_bytes: int = 64 << 20  # a larger decoded payload (a zip bomb) is a skip
    # the folder relative ``sources`` are read from and reports name files relative to
    root: Path = field(default=Path("."), metadata=NOT_A_PARAM)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"crawl.source: one of {list(SOURCES)}, got {self.source!r}")
        if self.source == "crawler" and not self.crawler.seeds:
            raise ConfigError("crawl.crawler.seeds: source 'crawler' needs at least one seed URL")
        if self.source == "common_crawl" and not self.common_crawl.crawl:
            raise ConfigError("crawl.common_crawl.crawl: source 'common_crawl' needs a crawl id, "
                              "e.g. CC-MAIN-2024-10")
        if not self.sources or not all(isinstance(s, str) and s for s in self.sources):
            raise ConfigError("crawl.sources: give a list of WARC paths or globs")
        if self.max_records is not None and self.max_records < 1:
            raise ConfigError(f"crawl.max_records: must be >= 1 or null, got {self.max_records}")
        if not 1 <= self.max_payload_bytes <= MAX_PAYLOAD_BYTES:  # the text stage's limit
            raise ConfigError(f"crawl.max_payload_bytes: from 1 to {MAX_PAYLOAD_BYTES}")
        if self.records_per_shard < 1:
            raise ConfigError(f"crawl.records_per_shard: must be >= 1, got "
                              f"{self.records_per_shard}")


def resolve(cfg: Cfg, root: Path) -> Cfg:
    """``cfg`` bound to the project in ``root``: its relative sources are read from there."""
    return replace(cfg, root=root)


def discovered_inputs(out_dir: Path) -> dict[str, dict[str, str]]:
    """Remote WARC sources, by URL, with the sha256 of the bytes read (from
    ``sources.json``): DVC cannot hash a URL, so the manifest and MLflow record it."""
    file = out_dir / SOURCES_FILE
    entries = json.loads(file.read_text()) if file.exists() else []
    return {str(e["source"]): {"digest": str(e["sha256"]), "kind": "url"}
            for e in entries if e.get("kind") == "url"}


def resolve_sources(cfg: Cfg, root: Path) -> list[Source]:
    """Every file the source patterns match, sorted and without repeats."""
    return crawl_sources.resolve(cfg.sources, root)


def external_inputs(cfg: Cfg, root: Path) -> list[Path]:
    """The local input files to fingerprint before the run; none for a live crawl (its
    seeds are in the params and the report). Remote sources are fingerprinted as they
    are read, in ``sources.json``."""
    if cfg.source == "common_crawl":
        paths_file = local_paths_file(cfg.common_crawl, root)
        return [paths_file] if paths_file is not None and paths_file.is_file() else []
    if cfg.source != "warc":
        return []
    return [s.path for s in resolve_sources(cfg, root) if s.path is not None]


def crawl_into(cfg: Cfg, out_dir: Path) -> tuple[Path, CrawlStats]:
    """Run the crawler into ``out_dir/raw``; the raw WARC and what the crawl did."""
    raw = out_dir / RAW_CRAWL
    raw.parent.mkdir(parents=True, exist_ok=True)
    stats = Crawler(cfg.crawler).crawl(raw)
    return raw, stats


def skip_reason(response: WarcResponse, seen_ids: Container[str]) -> str | None:
    """Why a response is not copied, or None to copy it."""
    if not 200 <= response.status < 300:
        return f"status:{response.status}"
    if response.mime_type not in HTML_TYPES:
        return f"type:{response.mime_type or 'none'}"
    if not response.payload:
        return "empty_payload"
    if not response.record_id or response.record_id in seen_ids:
        return "duplicate_record_id"
    return None


def run(cfg: Cfg, in_dir: Path | None, out_dir: Path) -> dict[str, float]:
    """Copy the HTML responses; metrics: records, tokens (whitespace words of the HTML)."""
    from tqdm import tqdm

    crawled: CrawlStats | None = None
    read: list[dict[str, object]] = []  # sources.json: what was read, with its sha256
    dump = ""  # the crawl id of sources whose warcinfo does not name one
    if cfg.source == "crawler":
        raw, crawled = crawl_into(cfg, out_dir)
        # names in the index and report are relative to the stage output for a crawl
        root, sources = out_dir, [Source(path=raw)]
    elif cfg.source == "common_crawl":
        root, dump = cfg.root.resolve(), str(cfg.common_crawl.crawl)
        sources, paths_entry = pick_sources(cfg.common_crawl, root, cfg.http)
        read.append(paths_entry)
    else:
        root = cfg.root.resolve()
        sources = resolve_sources(cfg, root)
    names = [s.name(root) for s in sources]
    stats = ReadStats()
    skipped: Counter[str] = Counter()
    seen = SeenIds(out_dir / SEEN_IDS)  # on disk: a crawl's ids outgrow memory
    index = IndexWriter(out_dir / INDEX)
    writer: WarcShardWriter | None = None
    tokens = 0
    responses = _responses(sources, root, stats, read, cfg.http, dump, cfg.max_payload_bytes)
    try:
        for source, response in tqdm(responses, desc="crawl", unit="rec", leave=False):
            reason = skip_reason(response, seen)
            if reason:
                skipped[reason] += 1
                continue
            if writer is None or writer.records >= cfg.records_per_shard:
                if writer is not None:
                    writer.close()
                writer = WarcShardWriter(
                    out_dir / SHARD.format(index.records // cfg.records_per_shard))
            offset, length = writer.write(
                response.url, response.payload, status=response.status,
                headers=response.headers, record_id=response.record_id, date=response.date,
                dump=response.dump)
            seen.add(response.record_id)
            tokens += len(response.payload.split())
            index.add({"record_id": response.record_id, "url": response.url,
                         "warc_file": writer.path.name, "offset": offset,
                         "status": response.status, "content_type": response.mime_type,
                         "length": length, "source_file": source, "dump": response.dump,
                         "date": response.date})
            if cfg.max_records is not None and index.records >= cfg.max_records:
                break
    finally:
        responses.close()  # closes the connection of a remote source
        if writer is not None:
            writer.close()
        index.close()
        seen.close()
    if not index.records:
        raise InputError(f"stage crawl: no HTML response record with status 2xx in "
                         f"{names} (skipped: "
                         f"{dict(skipped + stats.skipped)})")
    (out_dir / SOURCES_FILE).write_text(json.dumps(read, indent=2) + "\n")
    shard_bytes = sum(p.stat().st_size for p in out_dir.glob("*.warc.gz"))
    _write_report(out_dir, index, names, stats, skipped, shard_bytes)
    crawl_metrics = {}
    if crawled is not None:
        _write_crawl_report(out_dir, cfg.crawler, crawled)
        crawl_metrics = {"crawl_requests": len(crawled.requested), "crawl_pages": crawled.pages,
                         "crawl_refused": len(crawled.refused),
                         "crawl_waited_s": crawled.waited_s}
    return {**crawl_metrics, "records": index.records, "tokens": tokens, "bytes": shard_bytes,
            "source_files": len(sources), "responses_in": stats.responses,
            "source_files_unreachable": stats.skipped["unreachable"],
            "skipped_damaged": sum(stats.skipped.values()),
            "skipped_filtered": sum(skipped.values())}


def _write_crawl_report(out_dir: Path, settings: CrawlerSettings, crawled: CrawlStats) -> None:
    """Append the crawl's seeds, limits and outcomes to the report."""
    lines = ["", "## crawler", "", "Seeds:", *[f"- {seed}" for seed in settings.seeds], "",
             f"Allowed domains: {', '.join(settings.domains())}; max depth {settings.max_depth}, "
             f"max pages {settings.max_pages}, {settings.delay_s:g} s between requests to a "
             f"host, timeout {settings.timeout_s:g} s, user agent `{settings.user_agent}`.", "",
             f"Requests sent: {len(crawled.requested)} ({crawled.pages} pages, "
             f"{len(crawled.robots)} robots.txt); HTML pages stored: {crawled.stored}; "
             f"time spent waiting between requests: {crawled.waited_s:g} s.", "",
             "| not stored because | URLs |", "|---|---|"]
    lines += [f"| {why} | {n} |" for why, n in crawled.skipped.most_common()] or ["| - | 0 |"]
    lines += ["", "| redirect from | to | status |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {code} |" for a, b, code in crawled.redirects] or ["| - | - | - |"]
    with (out_dir / paths.REPORT).open("a") as fh:
        fh.write("\n".join(lines) + "\n")


def _responses(sources: list[Source], root: Path, stats: ReadStats,
               read: list[dict[str, object]], http: HttpCfg, dump: str,
               cap: int) -> Iterator[tuple[str, WarcResponse]]:
    """(source name, response) of every source in turn, each response with its crawl id
    (its own ``WARC-Dump``, else the file's warcinfo, else ``dump``); ``read`` gets each
    file's digest, size, completeness and crawl id."""
    for source in sources:
        name = source.name(root)
        entry: dict[str, object] = {"source": name, "kind": "file" if source.path else "url"}
        read.append(entry)
        if source.path is not None:
            sha256, size = file_digest(source.path)
            with source.path.open("rb") as fh:
                found = file_dump(fh.read(64 * 1024)) or dump
            entry.update(bytes=size, sha256=sha256, complete=True, dump=found)
            for response in iter_responses(source.path, stats, name=name, max_payload_bytes=cap):
                yield name, _with_dump(response, found)
            continue
        with open_remote(str(source.url), http) as stream:
            reader = StreamReader(stream, stats, name, cap)  # type: ignore[arg-type]
            entry["complete"] = False  # until the file is read to its end
            try:
                for response in reader.responses():
                    yield name, _with_dump(response, reader.dump or dump)
                entry["complete"] = True
            except StreamFailed as err:
                if err.fatal:
                    raise
                # the records read so far stay; the rest of the file is a counted skip
                stats.skipped["unreachable"] += 1
                log.warning("%s: skipped from byte %d on: %s", name, err.position, err.detail)
            finally:  # also when the stage stops early (max_records): the part read
                entry.update(bytes=stream.size, sha256=stream.sha256, dump=reader.dump or dump)


def _with_dump(response: WarcResponse, dump: str) -> WarcResponse:
    return response if response.dump or not dump else replace(response, dump=dump)


def _write_report(out_dir: Path, index: IndexWriter, names: list[str], stats: ReadStats,
                  skipped: Counter[str], shard_bytes: int) -> None:
    import pandas as pd

    # most copied first; ties in order of first appearance, as value_counts gives them
    hosts = pd.Series(index.hosts, dtype="int64").sort_values(ascending=False)
    per_source = index.per_source
    lines = ["# crawl", "",
             f"Copied **{index.records}** HTML responses from {len(names)} WARC file(s) into "
             f"{index.shards} shard(s) ({shard_bytes:,} bytes).", "",
             "| source file | records copied |", "|---|---|"]
    lines += [f"| {name} | {per_source.get(name, 0)} |" for name in names]
    lines += ["", f"Each file's size and sha256 (of the bytes read) are in `{SOURCES_FILE}`."]
    lines += ["", f"Records read: {stats.records} ({stats.responses} responses).", "",
              "| skipped because | records |", "|---|---|"]
    every_skip = Counter({f"damaged:{k}": v for k, v in stats.skipped.items()}) + skipped
    lines += [f"| {reason} | {n} |" for reason, n in every_skip.most_common()] or ["| - | 0 |"]
    lines += ["", "| host | records |", "|---|---|"]
    lines += [f"| {host} | {n} |" for host, n in hosts.items()]
    (out_dir / paths.REPORT).write_text("\n".join(lines) + "\n")
