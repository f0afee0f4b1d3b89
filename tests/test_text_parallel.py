"""The text stage as Prefect tasks per crawl slice: same output for any runner and count."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from prefect import flow

from crawl2chat.stages import crawl, text
from crawl2chat.text.chunks import Chunk, plan
from crawl2chat.text.shards import DOCUMENTS, REMOVED, read_frame

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo" / "web"
# the demo's relaxed prose rules (its pages are software documentation)
DEMO_RULES = {"gopher_rep": {"dup_n_grams": {5: 0.3, 6: 0.28, 7: 0.26, 8: 0.24, 9: 0.22,
                                             10: 0.2}},
              "gopher_quality": {"max_non_alpha_words_ratio": 0.5},
              "c4": {"curly_bracket": False},
              "fineweb": {"line_punct_thr": 0.05, "short_line_thr": 0.8,
                          "char_duplicates_ratio": 0.05}}


def test_plan_cuts_each_shard_into_near_equal_slices_in_crawl_order():
    index = pd.DataFrame({
        "warc_file": ["a.warc.gz"] * 5 + ["b.warc.gz"] * 2,
        "offset": [0, 10, 30, 60, 100, 0, 60],
        "length": [10, 20, 30, 40, 50, 60, 70]})
    assert plan(index, 2) == [Chunk("a.warc.gz", 0, 30, 2), Chunk("a.warc.gz", 30, 100, 2),
                              Chunk("a.warc.gz", 100, 150, 1), Chunk("b.warc.gz", 0, 130, 2)]
    # 5 records at most 4 per slice: 3 + 2, not 4 + 1
    assert [c.records for c in plan(index, 4)] == [3, 2, 2]
    assert plan(index, 100) == [Chunk("a.warc.gz", 0, 150, 5), Chunk("b.warc.gz", 0, 130, 2)]


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The blocklisted demo page, then the first 23 pages of the demo: 3 shards."""
    out = tmp_path_factory.mktemp("crawl")
    crawl.run(crawl.Cfg(sources=[str(DEMO / "demo-web-00003.warc.gz"),
                                 str(DEMO / "demo-web-00000.warc.gz")],
                        max_records=24, records_per_shard=8), None, out)
    return out


def _cfg(kind: str, workers: int) -> text.Cfg:
    from crawl2chat.config import build

    return build(text.Cfg, {"languages": {"en": 1.0}, "chunk_records": 3, **DEMO_RULES,
                            "runner": {"kind": kind, "workers": workers}}, "text")


@flow(name="text-test", validate_parameters=False)
def _text_flow(kind: str, workers: int, in_dir: Path, out_dir: Path) -> dict[str, float]:
    return text.run(_cfg(kind, workers), in_dir, out_dir)


def _without_times(counts: dict) -> dict:
    for row in counts["steps"]:
        row.pop("seconds"), row.pop("ms_per_doc")
    return counts


def _run(kind: str, workers: int, crawled: Path, out: Path) -> None:
    out.mkdir()
    _text_flow(kind, workers, crawled, out)


@pytest.fixture(scope="module")
def baseline(crawled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One thread, outside any flow: the reference output."""
    out = tmp_path_factory.mktemp("threads1")
    text.run(_cfg("threads", 1), crawled, out)
    return out


def _assert_same(a: Path, b: Path) -> None:
    for prefix in (DOCUMENTS, REMOVED):
        pd.testing.assert_frame_equal(read_frame(a, prefix), read_frame(b, prefix))
    assert (_without_times(json.loads((a / text.COUNTS).read_text()))
            == _without_times(json.loads((b / text.COUNTS).read_text())))


def test_blocklisted_demo_page_is_removed_and_the_funnel_counts_it(baseline):
    removed = read_frame(baseline, REMOVED)
    blocked = removed.loc[removed["reason"] == "url:domain", "url"].tolist()
    assert blocked == ["https://stdykungeduationaldeveloper15investmenqg.duckdns.org/3.11/"
                       "library/email.contentmanager.html"]
    counts = json.loads((baseline / text.COUNTS).read_text())
    url_row = counts["steps"][0]
    assert (url_row["name"], url_row["docs_in"], url_row["docs_out"]) == ("url", 24, 23)
    assert counts["slices"] == 9 and counts["kept"] > 0
    assert counts["kept"] + len(removed) == counts["docs_in"] == 24
    assert "| url | 24 | 23 |" in (baseline / "report.md").read_text()
    assert (baseline / "funnel.png").stat().st_size > 1000


def test_processes_in_a_flow_give_the_same_output_as_one_thread(crawled, baseline, tmp_path):
    _run("processes", 2, crawled, tmp_path / "out")
    _assert_same(baseline, tmp_path / "out")


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_same_output(crawled, baseline, tmp_path):
    _run("dask", 2, crawled, tmp_path / "out")
    _assert_same(baseline, tmp_path / "out")


@pytest.mark.slow
def test_a_dask_scheduler_address_gives_the_same_output(crawled, baseline, tmp_path):
    """A cluster of two worker processes started apart from the stage and reached by its
    scheduler's TCP address, as a remote one would be. (Worker threads of one process
    would share one spaCy pipeline, which is not thread-safe.)"""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        (tmp_path / "out").mkdir()
        cfg = _cfg("dask", 2)
        cfg.runner.address = cluster.scheduler_address
        text.run(cfg, crawled, tmp_path / "out")
        with cluster.get_client() as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and min(executed.values()) > 0  # both workers ran units
    _assert_same(baseline, tmp_path / "out")
