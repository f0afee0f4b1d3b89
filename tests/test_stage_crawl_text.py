"""The crawl and text stages on a tiny literal crawl, and their quality gates."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from conftest import http_server

from crawl2chat.crawl.index import INDEX_COLUMNS
from crawl2chat.crawl.warc import WarcShardWriter
from crawl2chat.errors import ConfigError, GateFailed, InputError
from crawl2chat.parallel import RunnerCfg
from crawl2chat.quality import gate
from crawl2chat.stages import crawl, text
from crawl2chat.text.shards import (
    DOCUMENTS,
    REMOVED,
    REMOVED_SAMPLE,
    read_frame,
    shard_files,
    shard_name,
)

EN = {
    "bread": ("Sourdough bread is made by fermenting dough with naturally occurring lactobacilli "
              "and yeast. The long fermentation gives the bread its slightly sour taste and a "
              "chewy texture that many people love."),
    "starter": ("To keep a starter alive, feed it flour and water every day and store it at room "
                "temperature. A healthy starter doubles in size within a few hours of feeding, "
                "and it smells pleasantly of yoghurt."),
    "oven": ("A hot oven with plenty of steam during the first minutes of baking lets the loaf "
             "expand fully before the crust sets. Many home bakers use a heavy cast iron pot "
             "with a lid to trap the steam."),
}
CAFE = ("The café on the corner serves crème brûlée and a naïve little pâtisserie menu. Its "
        "façade has not changed since the owners opened it, and regulars say the coffee is the "
        "best in the whole neighbourhood.")
DE = ("Sauerteigbrot wird hergestellt, indem man den Teig mit natürlich vorkommenden "
      "Milchsäurebakterien und Hefen fermentiert. Die lange Gärung verleiht dem Brot seinen "
      "leicht säuerlichen Geschmack und eine kräftige Kruste.")
LINKS = "<ul>" + "".join(f"<li><a href='/{w}'>{w}</a></li>" for w in EN) + "</ul>"
HTML = "text/html; charset=utf-8"
FIRST_DOCS, FIRST_REMOVED = shard_name(DOCUMENTS, 0), shard_name(REMOVED, 0)


def _page(body: str, head: str = '<meta charset="utf-8">') -> str:
    return (f"<!DOCTYPE html><html><head>{head}<title>Bakery</title></head><body>"
            f"<nav><a href='/'>Home</a> | <a href='/shop'>Shop</a></nav>"
            f"<article><h1>Bakery notes</h1><p>{body}</p></article>"
            f"<footer>Copyright 2024 Example Bakery</footer></body></html>")


def _record_id(n: int) -> str:
    return f"<urn:uuid:00000000-0000-0000-0000-{n:012d}>"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two WARC files: a small crawl, and one whose second record is corrupt."""
    folder = tmp_path_factory.mktemp("warcs")
    pages = [
        ("https://example.org/bread", _page(EN["bread"]).encode(), HTML, 200),
        ("https://example.org/starter", _page(EN["starter"]).encode(), HTML, 200),
        ("https://example.org/bread?ref=copy", _page(EN["bread"]).encode(), HTML, 200),
        ("https://example.org/de/brot", _page(DE).encode(), HTML, 200),
        ("https://example.org/", f"<html><body>{LINKS}</body></html>".encode(), HTML, 200),
        ("https://example.org/cafe",
         _page(CAFE, head='<meta charset="windows-1252">').encode("cp1252"), "text/html", 200),
        ("https://example.org/noise", bytes(range(256)) * 8, "text/html", 200),
        ("https://example.org/style.css", b"body { color: black }", "text/css", 200),
        ("https://example.org/missing", _page("Not found").encode(), HTML, 404),
    ]
    with WarcShardWriter(folder / "a.warc.gz") as writer:
        for n, (url, body, ctype, status) in enumerate(pages):
            writer.write(url, body, status=status, headers=[("Content-Type", ctype)],
                         record_id=_record_id(n), date="2024-05-01T12:00:00Z")
    broken = folder / "b.warc.gz"
    with WarcShardWriter(broken) as writer:
        writer.write("https://example.org/oven", _page(EN["oven"]).encode(),
                     record_id=_record_id(100))
        offset, length = writer.write("https://example.org/lost", _page(EN["oven"]).encode())
    blob = bytearray(broken.read_bytes())
    blob[offset + length // 2:offset + length // 2 + 8] = b"\x00" * 8
    broken.write_bytes(bytes(blob))
    return folder


@pytest.fixture(scope="module")
def crawled(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("crawl")
    cfg = crawl.Cfg(sources=[str(sources / "*.warc.gz")], records_per_shard=3)
    return out, crawl.run(cfg, None, out)


# the literal pages are a few sentences long: the prose-quality rules (>= 50 words, >= 5
# sentences) are tested on their own in test_text_filters.py
SHORT_PAGES = ["gopher_rep", "gopher_quality", "c4", "fineweb"]


def _text_cfg(**changes: object) -> text.Cfg:
    return text.Cfg(**{"min_chars": 100, "runner": RunnerCfg("threads", 1), "chunk_records": 2,
                       "skip_steps": SHORT_PAGES, **changes})


@pytest.fixture(scope="module")
def texts(crawled: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory,
          ) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("text")
    return out, text.run(_text_cfg(), crawled[0], out)


def test_crawl_copies_html_2xx_records_into_shards_with_an_index(crawled):
    out, metrics = crawled
    index = pd.read_parquet(out / crawl.INDEX)
    assert list(index.columns) == list(INDEX_COLUMNS)
    assert index["url"].tolist() == [
        "https://example.org/bread", "https://example.org/starter",
        "https://example.org/bread?ref=copy", "https://example.org/de/brot",
        "https://example.org/", "https://example.org/cafe", "https://example.org/noise",
        "https://example.org/oven"]
    assert index["record_id"].iloc[0] == _record_id(0)
    assert index["warc_file"].tolist() == ["crawl-00000.warc.gz"] * 3 + [
        "crawl-00001.warc.gz"] * 3 + ["crawl-00002.warc.gz"] * 2
    assert index["source_file"].str.endswith("a.warc.gz").sum() == 7
    assert str(index.dtypes["offset"]) == "int64" and (index["status"] == 200).all()
    assert metrics["records"] == 8
    assert (metrics["skipped_filtered"], metrics["skipped_damaged"]) == (2, 1)
    report = (out / "report.md").read_text()
    assert "status:404" in report and "type:text/css" in report and "damaged:corrupt" in report
    assert any("lookups" in check for check in gate("crawl", out, crawl.Cfg()))


def test_crawl_max_records_and_sources(sources, tmp_path):
    metrics = crawl.run(crawl.Cfg(sources=[str(sources / "a.warc.gz")], max_records=2), None,
                        tmp_path)
    assert metrics["records"] == 2
    assert len(pd.read_parquet(tmp_path / crawl.INDEX)) == 2
    cfg = crawl.Cfg(sources=["*.warc.gz", "a.warc.gz"])  # relative to the root; no repeats
    assert crawl.external_inputs(cfg, sources) == [sources / "a.warc.gz", sources / "b.warc.gz"]
    with pytest.raises(InputError, match=r"no WARC file matches 'nothing/\*\.warc\.gz'"):
        crawl.external_inputs(crawl.Cfg(sources=["nothing/*.warc.gz"]), sources)


def test_text_keeps_english_and_explains_every_removal(texts):
    out, metrics = texts
    docs = read_frame(out)
    assert list(docs.columns) == list(text.DOC_COLUMNS)
    assert docs["url"].tolist() == ["https://example.org/bread", "https://example.org/starter",
                                    "https://example.org/cafe", "https://example.org/oven"]
    assert (docs["lang"] == "en").all() and (docs["lang_score"] >= 0.65).all()
    assert EN["bread"] in docs["text"].iloc[0] and "Copyright" not in docs["text"].iloc[0]
    assert "crème brûlée" in docs["text"].iloc[2]  # cp1252, declared only in <meta>
    assert docs["doc_id"].iloc[0] == _record_id(0).strip("<>")
    removed = read_frame(out, REMOVED)
    reasons = dict(zip(removed["url"], removed["reason"], strict=True))
    assert reasons["https://example.org/bread?ref=copy"] == "dedup:exact"
    assert reasons["https://example.org/de/brot"] in ("lang:de:0.99", "lang:de:1.00")
    assert reasons["https://example.org/"] == "extract:empty"
    assert reasons["https://example.org/noise"] == "extract:encoding:undecodable"
    assert len(removed) == 4
    assert metrics["records"] == 4 and metrics["docs_in"] == 8
    assert metrics["removed_dedup"] == 1 and metrics["removed_lang"] == 1
    assert metrics["tokens"] == docs["text"].str.split().str.len().sum()
    counts = json.loads((out / text.COUNTS).read_text())
    assert counts["removed"]["extract:encoding"] == 1
    assert counts["languages_achieved"] == {"en": 1.0}
    assert [r["name"] for r in counts["steps"]] == ["url", "extract", "lang", "dedup", "mix",
                                                    "pii"]
    report = (out / "report.md").read_text()
    assert "`lang:de`" in report and "| dedup | 5 | 4 | 20.0% |" in report
    assert "| en | 100.0% | 100.0% | 0.65 | 100.0% | +0.0% | 4 |" in report
    assert (out / "funnel.png").stat().st_size > 1000
    assert gate("text", out, _text_cfg())


def test_text_output_does_not_depend_on_runner_or_workers(crawled, texts, tmp_path):
    text.run(_text_cfg(runner=RunnerCfg("processes", 2)), crawled[0], tmp_path)
    for prefix in (DOCUMENTS, REMOVED):
        pd.testing.assert_frame_equal(read_frame(tmp_path, prefix), read_frame(texts[0], prefix))


def test_text_shards_and_sorts_in_small_pieces_with_the_same_result(crawled, texts, tmp_path):
    # a language without any document (fr) no longer empties the mix: en keeps its share
    cfg = _text_cfg(shard_rows=3, dedup_sort_rows=1, keep_removed_sample=2,
                    languages={"en": 0.8, "fr": 0.2})
    text.run(cfg, crawled[0], tmp_path)
    assert [f.name for f in shard_files(tmp_path)] == [FIRST_DOCS, "documents-00001.parquet"]
    assert len(pd.read_parquet(tmp_path / FIRST_DOCS)) == 3
    pd.testing.assert_frame_equal(read_frame(tmp_path), read_frame(texts[0]))
    removed = read_frame(tmp_path, REMOVED)
    pd.testing.assert_frame_equal(removed, read_frame(texts[0], REMOVED))
    assert "text" not in removed and removed["text_hash"].str.fullmatch("[0-9a-f]{40}").all()
    sample = pd.read_parquet(tmp_path / REMOVED_SAMPLE)
    assert len(sample) == 2 and set(sample["doc_id"]) <= set(removed["doc_id"])
    languages = json.loads((tmp_path / text.COUNTS).read_text())["languages"]
    assert languages["fr"] == {"target": 0.2, "effective": 0.0, "achieved": 0.0, "gap": -0.2,
                               "chars": 0, "docs": 0}
    assert (languages["en"]["effective"], languages["en"]["achieved"]) == (1.0, 1.0)
    assert "No documents in: fr" in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob(".work-*"))  # the work folder is gone
    assert gate("text", tmp_path, cfg)


def test_text_with_no_survivor_says_why(crawled, tmp_path):
    with pytest.raises(InputError, match=r"stage text: no document survived.*'lang:en': 5"):
        text.run(_text_cfg(languages={"fi": 1.0}), crawled[0], tmp_path)


def test_text_without_a_crawl_index_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"index\.parquet is missing"):
        text.run(_text_cfg(), tmp_path, tmp_path / "out")


def test_text_gate_fails_on_bad_documents(texts, tmp_path):
    shutil.copytree(texts[0], tmp_path, dirs_exist_ok=True)
    docs = read_frame(tmp_path)
    copy = docs.iloc[[0]].assign(doc_id="urn:uuid:copy")  # the same text again
    german = docs.iloc[[1]].assign(doc_id="urn:uuid:de", lang="de")  # 1/3 of the characters
    empty = docs.iloc[[3]].assign(doc_id="urn:uuid:empty", text="")
    leak = docs.iloc[[2]].assign(doc_id="urn:uuid:pii", text="Mail jane.doe@gmail.com now")
    pd.concat([docs, copy, german, empty, leak]).to_parquet(tmp_path / FIRST_DOCS, index=False)
    with pytest.raises(GateFailed) as failed:
        gate("text", tmp_path, _text_cfg())
    message = str(failed.value)
    for expected in ("column='text_hash'", "column='lang'", "column='text_chars'",
                     "column='score_margin'", "column_A='docs_in'", "column='pii_left'",
                     "language_mix: expect_column_values_to_be_between(column='unexplained_gap'"):
        assert expected in message
    assert "column='doc_id'" not in message  # ids are still unique


def test_text_gate_reads_shard_by_shard_and_catches_a_later_shard_and_repeats_across(
        texts, tmp_path):
    shutil.copytree(texts[0], tmp_path, dirs_exist_ok=True)
    docs, removed = read_frame(tmp_path), read_frame(tmp_path, REMOVED)
    docs.iloc[:2].to_parquet(tmp_path / FIRST_DOCS, index=False)
    later = pd.concat([docs.iloc[2:3].assign(lang="xx"),  # only the second shard is wrong
                       docs.iloc[[0]].assign(doc_id="urn:uuid:copy")])  # a text of shard 0
    later.to_parquet(tmp_path / shard_name(DOCUMENTS, 1), index=False)
    docs.iloc[[3]].to_parquet(tmp_path / shard_name(DOCUMENTS, 2), index=False)
    removed.iloc[:2].to_parquet(tmp_path / FIRST_REMOVED, index=False)
    pd.concat([removed.iloc[2:], docs.iloc[[1]].assign(reason="dedup:exact", text_hash="0")])[
        list(removed.columns)].to_parquet(tmp_path / shard_name(REMOVED, 1), index=False)
    with pytest.raises(GateFailed) as failed:
        gate("text", tmp_path, _text_cfg())
    message = str(failed.value)
    assert ("documents: expect_column_values_to_be_in_set(column='lang'" in message
            and "-- in documents-00001.parquet: 1 unexpected, e.g. ['xx']" in message)
    # the copied text and the id kept and removed are in different shards: seen all the same
    assert "column='text_hash_repeats'" in message and "column='in_both'" in message
    assert "column='text_hash')" not in message  # no shard holds both copies
    assert "column='doc_id_repeats'" not in message and "column='doc_id')" not in message
    parts = json.loads((tmp_path / "quality/documents.json").read_text())["parts"]
    assert parts == {"validated": 3, "failed": ["documents-00001.parquet"]}


def test_text_gate_fails_on_unknown_reasons_and_missing_columns(texts, tmp_path):
    shutil.copytree(texts[0], tmp_path, dirs_exist_ok=True)
    removed = read_frame(tmp_path, REMOVED)
    removed.assign(reason="because").to_parquet(tmp_path / FIRST_REMOVED, index=False)
    docs = read_frame(tmp_path)
    docs.drop(columns=["warc_file"]).to_parquet(tmp_path / FIRST_DOCS, index=False)
    with pytest.raises(GateFailed) as failed:
        gate("text", tmp_path, _text_cfg())
    assert "removed: expect_column_values_to_match_regex(column='reason'" in str(failed.value)
    assert "documents_schema" in str(failed.value) and "'missing'" in str(failed.value)


def test_crawl_gate_fails_on_a_bad_index_and_a_cut_shard(crawled, tmp_path):
    shutil.copytree(crawled[0], tmp_path, dirs_exist_ok=True)
    index = pd.read_parquet(tmp_path / crawl.INDEX)
    index.loc[1, "status"] = 404
    index.loc[2, "record_id"] = index.loc[0, "record_id"]
    index.to_parquet(tmp_path / crawl.INDEX, index=False)
    shard = tmp_path / "crawl-00002.warc.gz"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(GateFailed) as failed:
        gate("crawl", tmp_path, crawl.Cfg())
    message = str(failed.value)
    assert "column='status'" in message and "column='record_id'" in message
    assert "shards: expect_column_pair_values_to_be_equal(column_A='size'" in message
    assert "lookups: expect_column_pair_values_to_be_equal(column_A='record_id'" in message


def test_crawl_gate_reads_the_index_by_row_group_and_sees_repeats_across(crawled, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(crawled[0], tmp_path, dirs_exist_ok=True)
    index = pq.read_table(tmp_path / crawl.INDEX)
    assert pq.ParquetFile(tmp_path / crawl.INDEX).num_row_groups == 3  # one per shard
    later = index.slice(2).to_pandas()
    later.loc[later.index[-1], "status"] = 404  # wrong in the last row group only
    later.loc[later.index[0], "record_id"] = index["record_id"][0].as_py()  # first group's
    with pq.ParquetWriter(tmp_path / crawl.INDEX, index.schema) as writer:
        writer.write_table(index.slice(0, 2))
        writer.write_table(pa.Table.from_pandas(later, schema=index.schema,
                                                preserve_index=False))
    with pytest.raises(GateFailed) as failed:
        gate("crawl", tmp_path, crawl.Cfg())
    message = str(failed.value)
    assert "column='status'" in message and "-- in row group 1: 1 unexpected" in message
    assert "repeats: expect_column_values_to_be_in_set(column='record_id_repeats'" in message
    assert "column='file_offset_repeats'" not in message


@pytest.mark.parametrize(("build", "field"), [
    (lambda: text.Cfg(languages={}), "text.languages"),
    (lambda: text.Cfg(languages={"en": 1.5}), "text.languages.en"),
    (lambda: text.Cfg(languages={"en": 0.5, "de": 0.2}), "text.languages"),
    (lambda: text.Cfg(languages={"en": {"share": 1.0, "min": 0.5}}), "text.languages.en"),
    (lambda: text.Cfg(skip_steps=["nope"]), "text.skip_steps"),
    (lambda: text.Cfg(runner=RunnerCfg(workers=0)), "text.runner.workers"),
    (lambda: text.Cfg(runner=RunnerCfg(kind="spark")), "text.runner.kind"),
    (lambda: text.Cfg(chunk_records=0), "text.chunk_records"),
    (lambda: crawl.Cfg(records_per_shard=0), "crawl.records_per_shard"),
    (lambda: crawl.Cfg(max_records=0), "crawl.max_records"),
    (lambda: crawl.Cfg(sources=[]), "crawl.sources"),
])
def test_bad_config_values_name_their_field(build, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build()


@contextlib.contextmanager
def _http_server(folder: Path) -> Iterator[str]:
    """A real HTTP server on a free local port serving ``folder``."""
    with http_server(functools.partial(QuietHandler, directory=str(folder))) as host:
        yield f"http://{host}"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_crawl_reads_urls_through_fsspec_and_records_what_it_read(sources, tmp_path):
    memory = fsspec.filesystem("memory")
    memory.pipe("/warcs/b.warc.gz", (sources / "b.warc.gz").read_bytes())
    try:
        with _http_server(sources) as base:
            cfg = crawl.Cfg(sources=[f"{base}/a.warc.gz", "memory://warcs/*.warc.gz",
                                     (sources / "a.warc.gz").as_uri()])
            (tmp_path / "out").mkdir()
            metrics = crawl.run(cfg, None, tmp_path / "out")
            # only the local copy can be fingerprinted up front (and tracked by DVC)
            assert crawl.external_inputs(cfg, tmp_path) == [sources / "a.warc.gz"]
            with pytest.raises(InputError, match=rf"cannot read {base}/nothing\.warc\.gz"):
                crawl.run(crawl.Cfg(sources=[f"{base}/nothing.warc.gz"]), None, tmp_path)
    finally:
        memory.rm("/warcs", recursive=True)
    out = tmp_path / "out"
    index = pd.read_parquet(out / crawl.INDEX)
    assert index["source_file"].value_counts().to_dict() == {
        f"{base}/a.warc.gz": 7, "memory:///warcs/b.warc.gz": 1}
    assert metrics["records"] == 8 and metrics["source_files"] == 3
    read = json.loads((out / crawl.SOURCES_FILE).read_text())
    assert [(r["source"], r["kind"]) for r in read] == [
        (f"{base}/a.warc.gz", "url"), ("memory:///warcs/b.warc.gz", "url"),
        (str(sources / "a.warc.gz"), "file")]
    for row, file in zip(read, ("a", "b", "a"), strict=True):
        blob = (sources / f"{file}.warc.gz").read_bytes()
        assert (row["bytes"], row["sha256"]) == (len(blob), hashlib.sha256(blob).hexdigest())
    assert "duplicate_record_id | 7" in (out / "report.md").read_text()  # the file:// copy
    assert not (out / crawl.SEEN_IDS).exists()  # the ids on disk were scratch


def test_malformed_input_is_counted_and_skipped_with_its_reason(tmp_path):
    """Truncated gzip, a bad record length, 50 MB of HTML, binary labelled text/html and
    invalid UTF-8: each is a counted skip with its reason, and both stages complete."""
    big = tmp_path / "big.html"  # written in pieces: the test never holds two copies
    with big.open("wb") as fh:
        fh.write(b"<html><body><article>")
        for _ in range(50):
            fh.write(b"<p>" + b"spam " * 209_715 + b"</p>")
        fh.write(b"</article></body></html>")
    warc = tmp_path / "in" / "bad.warc.gz"
    warc.parent.mkdir()
    garbage = b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc" * 400  # no valid UTF-8 in it
    with WarcShardWriter(warc) as writer:
        writer.write("https://example.org/good", _page(EN["bread"]).encode(),
                     record_id=_record_id(1))
        bad_at = writer.write("https://example.org/bad-length", _page(EN["oven"]).encode(),
                              record_id=_record_id(2))
        writer.write("https://example.org/big", big.read_bytes(), headers=[("Content-Type", HTML)],
                     record_id=_record_id(3))
        writer.write("https://example.org/binary", bytes(range(256)) * 64,
                     headers=[("Content-Type", "text/html")], record_id=_record_id(4))
        writer.write("https://example.org/utf8", _page("").encode().replace(b"<p></p>", garbage),
                     headers=[("Content-Type", HTML)], record_id=_record_id(5))
        cut_at = writer.write("https://example.org/cut", _page(EN["starter"]).encode(),
                              record_id=_record_id(6))
    blob = warc.read_bytes()
    offset, length = bad_at
    member = gzip.decompress(blob[offset:offset + length]).replace(
        b"Content-Length: ", b"Content-Length: 9", 1)  # the record claims 9xxx more bytes
    warc.write_bytes(blob[:offset] + gzip.compress(member) + blob[offset + length:
                                                                  cut_at[0] + cut_at[1] // 2])
    (tmp_path / "crawl").mkdir()
    (tmp_path / "text").mkdir()
    metrics = crawl.run(crawl.Cfg(sources=[str(warc)]), None, tmp_path / "crawl")
    assert (metrics["records"], metrics["skipped_damaged"]) == (4, 2)
    report = (tmp_path / "crawl" / "report.md").read_text()
    assert "| damaged:truncated | 2 |" in report  # the bad length and the cut gzip member
    text.run(_text_cfg(), tmp_path / "crawl", tmp_path / "text")
    removed = read_frame(tmp_path / "text", REMOVED)
    reasons = dict(zip(removed["url"], removed["reason"], strict=True))
    assert reasons["https://example.org/big"].startswith("extract:too_large:5")
    assert reasons["https://example.org/binary"] == "extract:encoding:undecodable"
    assert reasons["https://example.org/utf8"].split(":")[0] in ("extract", "gopher_rep",
                                                                 "gopher_quality", "lang")
    assert "https://example.org/good" not in reasons
