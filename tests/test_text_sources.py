"""FineWeb-style rows as the text stage's input: local Parquet and a save_to_disk folder
read through Hugging Face ``datasets``, the steps after extraction, and their lineage."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from crawl2chat import lineage, paths
from crawl2chat.audit.chain import from_folder
from crawl2chat.audit.checks import verify
from crawl2chat.cli.audit import describe_source, print_audit
from crawl2chat.config import build
from crawl2chat.errors import ConfigError, InputError
from crawl2chat.runner import execute
from crawl2chat.stages import text
from crawl2chat.text.removed import group
from crawl2chat.text.shards import REMOVED, read_frame
from crawl2chat.text.sources import Slice, SourceCfg, describe, hub_inputs, plan, read_slice

EN = [
    ("Sourdough bread is made by fermenting dough with naturally occurring lactobacilli and "
     "yeast. The long fermentation gives the bread its slightly sour taste and a chewy texture "
     "that many people love. Write to baker@bakery-mail.com for the recipe."),
    ("To keep a starter alive, feed it flour and water every day and store it at room "
     "temperature. A healthy starter doubles in size within a few hours of feeding, and it "
     "smells pleasantly of yoghurt."),
    ("A hot oven with plenty of steam during the first minutes of baking lets the loaf expand "
     "fully before the crust sets. Many home bakers use a heavy cast iron pot with a lid to "
     "trap the steam."),
]
DE = ("Sauerteigbrot wird hergestellt, indem man den Teig mit natürlich vorkommenden "
      "Milchsäurebakterien und Hefen fermentiert. Die lange Gärung verleiht dem Brot seinen "
      "leicht säuerlichen Geschmack und eine kräftige Kruste.")
# the rows are a few sentences long: the prose-quality rules are tested elsewhere
SHORT = ["gopher_rep", "gopher_quality", "c4", "fineweb"]


def _rows() -> list[dict]:
    texts = [EN[0], EN[1], DE, EN[0], EN[2]]  # a German row, then a copy of the first
    return [{"text": t, "id": f"<urn:uuid:fw-{n}>", "dump": "CC-MAIN-2024-10",
             "url": f"https://example.org/{n}", "date": f"2024-02-2{n}T10:00:00Z",
             "file_path": "s3://commoncrawl/crawl-data/CC-MAIN-2024-10/x.warc.gz",
             "language": "en", "language_score": 0.9, "token_count": len(t.split())}
            for n, t in enumerate(texts)]


@pytest.fixture(scope="module")
def fineweb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rows as Parquet (row groups of 2: three groups) and as a save_to_disk folder."""
    folder = tmp_path_factory.mktemp("fineweb")
    (folder / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(_rows()), folder / "data" / "000_00000.parquet",
                   row_group_size=2)
    datasets.Dataset.from_list(_rows()).save_to_disk(str(folder / "saved"))
    return folder


def _cfg(source: dict, **changes: object) -> text.Cfg:
    return build(text.Cfg, {"source": source, "runner": {"kind": "threads", "workers": 1},
                            "skip_steps": SHORT, "chunk_records": 2, **changes}, "text")


def test_plan_cuts_parquet_by_row_groups_and_a_folder_by_rows(fineweb):
    parquet = SourceCfg(parquet=["data/*.parquet"], root=str(fineweb))
    assert [(s.start, s.stop, s.rows) for s in plan(parquet, 2)] == [(0, 1, 2), (1, 2, 2),
                                                                     (2, 3, 1)]
    assert [(s.start, s.stop, s.rows) for s in plan(parquet, 3)] == [(0, 2, 4), (2, 3, 1)]
    capped = SourceCfg(parquet=["data/*.parquet"], max_docs=3, root=str(fineweb))
    assert [(s.start, s.rows) for s in plan(capped, 2)] == [(0, 2), (1, 1)]
    assert [d.doc_id for s in plan(capped, 2) for d in read_slice(s)] == [
        "<urn:uuid:fw-0>", "<urn:uuid:fw-1>", "<urn:uuid:fw-2>"]
    saved = SourceCfg(disk=str(fineweb / "saved"), max_docs=4)
    assert [(s.start, s.stop, s.rows) for s in plan(saved, 3)] == [(0, 3, 3), (3, 5, 1)]
    docs = [d for s in plan(saved, 3) for d in read_slice(s)]
    assert [(d.doc_id, d.dump, d.date, d.html) for d in docs][3] == (
        "<urn:uuid:fw-3>", "CC-MAIN-2024-10", "2024-02-23T10:00:00Z", b"")


def test_bad_sources_name_what_is_wrong(fineweb, tmp_path):
    with pytest.raises(ConfigError, match=r"text\.source: give exactly one of"):
        SourceCfg(parquet=["a.parquet"], disk="b")
    with pytest.raises(InputError, match=r"no file matches 'nothing/\*\.parquet'"):
        plan(SourceCfg(parquet=["nothing/*.parquet"], root=str(tmp_path)), 2)
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "odd.parquet")
    [piece] = plan(SourceCfg(parquet=[str(tmp_path / "odd.parquet")]), 2)
    with pytest.raises(InputError, match=r"odd\.parquet rows 0\.\.1: a row without a string "
                                         r"'text' column \(columns: \['body'\]\)"):
        read_slice(piece)


def test_a_hub_id_without_a_local_copy_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    assert datasets.config.HF_HUB_OFFLINE  # the test process, as crawl2chat sets it
    source = SourceCfg(hf="crawl2chat-tests/no-such-fineweb", name="sample-10BT")
    with pytest.raises(ConfigError, match=r"text\.source\.hf: cannot load "
                                          r"'crawl2chat-tests/no-such-fineweb'.*HF_HUB_OFFLINE=0"):
        plan(source, 2)


def test_rows_go_through_the_steps_after_extraction(fineweb, tmp_path):
    outs = {}
    for name, source in (("parquet", {"parquet": ["data/*.parquet"]}),
                         ("disk", {"disk": "saved"})):
        out = tmp_path / name
        out.mkdir()
        cfg = text.resolve(_cfg(source), fineweb)
        metrics = text.run(cfg, None, out)
        outs[name] = read_frame(out)
        removed = read_frame(out, REMOVED)
        assert metrics["docs_in"] == 5 and metrics["records"] == 3
        assert dict(zip(removed["doc_id"], removed["reason"].map(group), strict=True)) == {
            "<urn:uuid:fw-2>": "lang:de", "<urn:uuid:fw-3>": "dedup:exact"}
    docs = outs["parquet"]
    pd.testing.assert_frame_equal(docs, outs["disk"])
    assert docs["doc_id"].tolist() == ["<urn:uuid:fw-0>", "<urn:uuid:fw-1>", "<urn:uuid:fw-4>"]
    assert set(docs["dump"]) == {"CC-MAIN-2024-10"}
    assert docs["date"].tolist() == [f"2024-02-2{n}T10:00:00Z" for n in (0, 1, 4)]
    assert "<EMAIL>" in docs["text"][0] and "@" not in docs["text"][0]  # PII still removed
    assert (docs["lang"] == "en").all() and (docs["lang_score"] > 0.65).all()
    read = json.loads((tmp_path / "parquet" / text.SOURCE).read_text())
    assert read["kind"] == "parquet" and read["files"] == [
        {"path": str(fineweb / "data" / "000_00000.parquet"), "rows": 5}]


def test_the_source_files_are_the_stages_inputs_in_manifest_mlflow_and_audit(
        fineweb, tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    (project / "fw").mkdir(parents=True)
    (project / "fw" / "part.parquet").write_bytes(
        (fineweb / "data" / "000_00000.parquet").read_bytes())
    params = {"text": {"source": {"parquet": ["fw/*.parquet"]}, "skip_steps": SHORT,
                       "runner": {"kind": "threads", "workers": 1}}}
    (project / paths.PARAMS_FILE).write_text(yaml.safe_dump(params))
    execute("text", project)  # no crawl output: the stage reads its own source
    out = paths.stage_output("text", project)
    manifest = lineage.read_manifest(out)
    assert manifest["inputs"] == {"fw/part.parquet": {
        "digest": manifest["inputs"]["fw/part.parquet"]["digest"], "kind": "file"}}
    report = verify(from_folder(out, project), project)
    assert report.verified, report.breaks
    [link] = report.chain
    assert list(link.manifest["inputs"]) == ["fw/part.parquet"]
    monkeypatch.setenv("CRAWL2CHAT_ROOT", str(project))
    assert print_audit(str(out)) == 0
    printed = capsys.readouterr().out
    assert "Data sources (1):\n  text: fw/part.parquet (file, sha256 " in printed
    assert print_audit(str(out), as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["sources"] == [
        {"stage": "text", "name": "fw/part.parquet", **manifest["inputs"]["fw/part.parquet"]}]


def test_a_hub_dataset_is_logged_as_a_hugging_face_input(tmp_path):
    source = SourceCfg(hf="HuggingFaceFW/fineweb", name="sample-10BT", revision="v1.4.0")
    pieces = [Slice("hf", "HuggingFaceFW/fineweb", i, 2, -1, source) for i in range(2)]
    inputs = hub_inputs(describe(source, pieces))
    name = "hf://datasets/HuggingFaceFW/fineweb@v1.4.0/sample-10BT/train"
    assert list(inputs) == [name] and inputs[name]["kind"] == "dataset"
    mlflow.set_experiment("text-sources-test")
    with mlflow.start_run() as run:
        lineage.log_inputs(inputs, tmp_path)
    [logged] = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    source_info = json.loads(logged.dataset.source)
    assert logged.dataset.source_type == "hugging_face" and logged.dataset.name == name
    assert (source_info["path"], source_info["config_name"], source_info["revision"]) == (
        "HuggingFaceFW/fineweb", "sample-10BT", "v1.4.0")
    assert logged.dataset.digest == inputs[name]["digest"][:36]
    assert describe_source(inputs[name]) == ("Hugging Face dataset HuggingFaceFW/fineweb (config "
                                       "sample-10BT, split train, revision v1.4.0)")
