"""The audit re-checks a real chain (crawl -> text -> tokens -> base, run by the runner
once for the module, copied for each test) and names the first broken link for each kind
of break: edited weights, retrained upstream, changed WARC, deleted MLflow run, edited
manifest; it also audits by MLflow run id and from an exported hf/ folder alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from crawl2chat import config, lineage, paths
from crawl2chat.audit import chain as chains
from crawl2chat.audit.checks import Report, verify
from crawl2chat.runner import execute

REPO = Path(__file__).resolve().parents[1]
WARC = "demo-web-00000.warc.gz"
# the smoke run, smaller still: 40 pages, one text worker, no NER, 4 training steps
FAST = ["experiment=smoke", "crawl.sources=[warc/*.warc.gz]", "crawl.max_records=40",
        "text.runner.kind=threads", "text.runner.workers=1", "text.pii.persons=false",
        "base.train.max_steps=4", "base.train.eval_every=2", "base.train.checkpoint_every=100",
        "base.eval.passages=2", "base.eval.bpb_windows=2"]


def write_params(project: Path, *overrides: str) -> None:
    tree = config.compose(REPO, [*FAST, *overrides])
    (project / paths.PARAMS_FILE).write_text(yaml.safe_dump(tree))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("audited")
    (project / "warc").mkdir()
    for name in (WARC, "LICENSES.md"):
        shutil.copy(REPO / "data/demo/web" / name, project / "warc" / name)
    write_params(project)
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        os.environ.pop(name, None)
    for stage in ("crawl", "text", "tokens", "base"):
        execute(stage, project)
    return project


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(built, copy)
    return copy


def audit(project: Path, target: str = "models/base", quick: bool = False) -> Report:
    return verify(chains.load(target, project), project, quick=quick)


def test_an_untouched_chain_is_verified_down_to_the_warc(project: Path) -> None:
    report = audit(project)
    assert report.verified, report.breaks
    assert [link.stage for link in report.chain] == ["base", "tokens", "text", "crawl"]
    assert list(report.chain[-1].manifest["inputs"]) == [f"warc/{WARC}"]


def test_edited_weights_name_the_file(project: Path) -> None:
    weights = project / "models/base/model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 1
    weights.write_bytes(bytes(blob))
    report = audit(project)
    first = report.breaks[0]
    assert (first.stage, first.check, first.subject) == ("base", "bytes",
                                                         "models/base/model.safetensors")
    assert first.expected != first.found


def test_a_retrained_upstream_breaks_the_link_above_it(project: Path) -> None:
    write_params(project, "tokens.vocab_size=400")  # tokens rerun, base left as it was
    execute("tokens", project)
    report = audit(project)
    first = report.breaks[0]
    assert (first.stage, first.check, first.subject) == ("base", "link", "input data/tokens")
    assert "data/tokens" in first.found
    # tokens itself is sound: its new run verifies on its own
    assert audit(project, "data/tokens").verified


def test_a_changed_warc_is_caught_and_quick_says_it_skipped_it(project: Path) -> None:
    with (project / "warc" / WARC).open("ab") as f:
        f.write(b"\0")
    report = audit(project)
    first = report.breaks[0]
    assert (first.stage, first.check, first.subject) == ("crawl", "source", f"warc/{WARC}")
    quick = audit(project, quick=True)  # the 1.1 MB WARC is not re-hashed, and it says so
    assert quick.verified
    assert any(f"--quick: source warc/{WARC} not re-hashed" in n for n in quick.notes)


def test_a_deleted_mlflow_run_is_named(project: Path) -> None:
    run_id = lineage.read_manifest(project / "data/text")["mlflow_run_id"]
    mlflow.delete_run(run_id)
    try:
        report = audit(project)
    finally:
        mlflow.MlflowClient().restore_run(run_id)
    first = report.breaks[0]
    assert (first.stage, first.check, first.subject, first.found) == (
        "text", "mlflow", f"run {run_id}", "deleted")


def test_an_edited_manifest_is_caught(project: Path) -> None:
    # hide a changed WARC by writing its new digest into the crawl manifest
    file = project / "data/crawl" / paths.MANIFEST
    manifest = json.loads(file.read_text())
    manifest["inputs"][f"warc/{WARC}"]["digest"] = "0" * 64
    file.write_text(json.dumps(manifest, indent=2) + "\n")
    report = audit(project)
    first = report.breaks[0]
    assert (first.stage, first.check, first.subject) == (
        "text", "link", f"data/crawl/{paths.MANIFEST}")
    assert {(b.stage, b.check) for b in report.breaks} >= {("crawl", "mlflow")}


def test_audit_by_mlflow_run_id_and_of_an_exported_folder(project: Path,
                                                          tmp_path: Path) -> None:
    run_id = lineage.read_manifest(project / "models/base")["mlflow_run_id"]
    by_run = audit(project, run_id)
    assert by_run.verified, by_run.breaks
    assert by_run.chain[0].where.startswith(f"mlflow:{run_id} (model m-")
    exported = tmp_path / "elsewhere"
    shutil.copytree(project / "models/base/hf", exported)
    report = verify(chains.load(str(exported), project), project)
    assert report.verified, report.breaks
    assert [link.stage for link in report.chain] == ["base", "tokens", "text", "crawl"]
    (exported / "config.json").write_text("{}")
    first = verify(chains.load(str(exported), project), project).breaks[0]
    assert (first.stage, first.check) == ("base", "bytes")
    assert first.subject.endswith("/config.json")


def test_the_cli_names_the_first_break_and_exits_1(project: Path) -> None:
    weights = project / "models/base/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    result = subprocess.run([sys.executable, "-m", "crawl2chat.cli", "audit", "models/base"],
                            capture_output=True, text=True, cwd=project, env=env)
    assert result.returncode == 1, result.stderr
    assert ("NOT verified: first broken link: base: bytes check failed for "
            "models/base/model.safetensors: expected sha256") in result.stdout
    as_json = subprocess.run([sys.executable, "-m", "crawl2chat.cli", "audit", "models/base",
                              "--json", "--quick"], capture_output=True, text=True,
                             cwd=project, env=env)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["first_break"].startswith("base: bytes")
    missing = subprocess.run([sys.executable, "-m", "crawl2chat.cli", "audit", "models/base",
                              "--doc", "https://example.org/never-crawled", "--json"],
                             capture_output=True, text=True, cwd=project, env=env)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["found"] is False


def test_the_export_carries_a_model_card_with_lineage_figures_and_licence(
        built: Path) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(built / "models/base/hf/README.md")
    crawl = lineage.read_manifest(built / "data/crawl")
    tokens = lineage.read_manifest(built / "data/tokens")
    warc_sha = crawl["inputs"][f"warc/{WARC}"]["digest"]
    assert card.data.crawl2chat["sources"] == {f"warc/{WARC}": warc_sha}
    assert card.data.pipeline_tag == "text-generation" and "base" in card.data.tags
    assert f"| crawl | `warc/{WARC}` | `{warc_sha}` |" in card.text
    assert f"| tokens | `{tokens['mlflow_run_id']}` |" in card.text  # and its token count
    assert f"| {tokens['tokens']} |" in card.text
    metrics = json.loads(paths.metrics_file("base", built).read_text())
    assert f"| val_loss | {metrics['val_loss']:.4g} |" in card.text
    assert "| `base.train.max_steps` | `4` |" in card.text
    assert "GPL-2.0-or-later" in card.text  # the licence notes beside the WARC, quoted
    assert "## Intended use and limits" in card.text


def test_the_base_run_is_a_registered_version_audited_by_name_and_version(
        built: Path) -> None:
    from crawl2chat import registry

    run_id = lineage.read_manifest(built / "models/base")["mlflow_run_id"]
    [version] = mlflow.MlflowClient().search_model_versions(
        f"name = '{registry.model_name('base')}' and run_id = '{run_id}'")
    report = audit(built, f"{registry.model_name('base')}/{version.version}")
    assert report.verified, report.breaks
    top = report.chain[0]
    assert top.where.startswith(f"mlflow:{run_id} (model m-")
    model_id = top.where.rsplit(" ", 1)[1].rstrip(")")
    assert top.files_at is not None and (top.files_at / "model.safetensors").is_file()
    assert [link.stage for link in report.chain] == ["base", "tokens", "text", "crawl"]
    # the registered copy of the weights, edited in the artifact store, is caught
    stored = Path(mlflow.get_logged_model(model_id).artifact_location.removeprefix(
        "file://")) / "model.safetensors"
    original = stored.read_bytes()
    stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        first = audit(built, f"{registry.model_name('base')}/{version.version}").breaks[0]
    finally:
        stored.write_bytes(original)
    assert (first.stage, first.check) == ("base", "bytes")
    assert first.subject.endswith("/model.safetensors")


def test_doc_says_kept_or_removed_why_and_where_its_tokens_are(project: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crawl2chat.audit.document import trace
    from crawl2chat.text.shards import REMOVED, read_frame, shard_files

    kept = read_frame(project / "data/text").to_dict("records")
    removed = read_frame(project / "data/text", REMOVED).to_dict("records")
    chain = chains.load("models/base", project)
    answer = trace(chain, kept[0]["url"], project)
    assert answer["found"] and answer["kept"] and answer["doc_id"] == kept[0]["doc_id"]
    assert answer["crawl"]["source"] == f"warc/{WARC}"
    where = answer["tokens"]
    tokens = np.fromfile(project / "data/tokens" / where["file"], dtype=np.uint16)
    from crawl2chat.tokenizer.tokenizer import Tokenizer
    tok = Tokenizer.load(project / "data/tokens/tokenizer")
    body = tokens[where["offset"] + 1: where["offset"] + where["tokens"]].tolist()
    assert tok.decode(body) == kept[0]["text"]
    assert answer["trained_on"] == (where["split"] == "train")
    gone = trace(chain, removed[0]["doc_id"], project)
    assert gone["found"] and not gone["kept"]
    assert gone["why"] == f"removed by the text stage: {removed[0]['reason']}"
    assert not trace(chain, "https://example.org/never-crawled", project)["found"]
    # the text stage's output cut into more shards (documents-00000.parquet, ...) reads
    # the same
    table = pa.concat_tables([pq.read_table(f) for f in shard_files(project / "data/text")])
    for old in shard_files(project / "data/text"):
        old.unlink()
    pq.write_table(table.slice(0, 1), project / "data/text/documents-00000.parquet")
    pq.write_table(table.slice(1), project / "data/text/documents-00001.parquet")
    for row in (kept[0], kept[-1]):
        assert trace(chain, row["doc_id"], project)["kept"] is True


def test_the_stages_wrote_their_plot_data_for_dvc(built: Path) -> None:
    import csv

    funnel = json.loads((built / "metrics/text_funnel.json").read_text())
    counts = json.loads((built / "data/text/counts.json").read_text())
    assert [row["step"] for row in funnel] == [step["name"] for step in counts["steps"]]
    assert funnel[-1]["docs_out"] <= funnel[0]["docs_in"]
    with (built / "metrics/base_val_loss.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4]  # eval_every=2, max_steps=4
    metrics = json.loads((built / "metrics/base.json").read_text())
    assert float(rows[-1]["val_loss"]) == pytest.approx(metrics["val_loss"])
