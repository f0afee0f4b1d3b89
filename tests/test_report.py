"""``crawl2chat report`` on a recorded pipeline run, checked in headless Chromium.

The run is a real smoke run (`crawl2chat run experiment=smoke`, AMD EPYC CPU): its MLflow
runs and the small files of its stage outputs, in ``tests/fixtures/report_run/``, loaded
into a real sqlite MLflow store and a project folder the way the pipeline leaves them.
The page must render, every chart must load, no console error may occur and no request
may leave the page; its screenshot is saved as ``report.png`` in the test's tmp folder.
"""


from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from chromium import headless_chromium, needs_chromium
from mlflow.entities import Metric, RunTag

from crawl2chat import paths
from crawl2chat.cli import main
from crawl2chat.lineage import EXPERIMENT
from crawl2chat.report import PIPELINE_RUN_TAG, write_report

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "report_run"
REBUILT = ("tokens", "base", "sft")  # crawl and text were up to date in this run


def install(root: Path, tracking_uri: str, pipeline_run: str | None) -> dict[str, str]:
    """Record the fixture's runs in ``tracking_uri`` and its output folders in ``root``;
    return stage -> new run id, and "pipeline" -> the pipeline run's id. ``REBUILT`` runs
    are tagged with ``pipeline_run``, or without one nested under a parent run."""
    client = mlflow.MlflowClient(tracking_uri)
    experiment = (client.get_experiment_by_name(EXPERIMENT)
                  or client.get_experiment(client.create_experiment(EXPERIMENT)))
    if pipeline_run is None:
        parent = client.create_run(experiment.experiment_id, run_name="pipeline").info.run_id
        link = {"mlflow.parentRunId": parent}
    else:
        parent, link = pipeline_run, {PIPELINE_RUN_TAG: pipeline_run}
    recorded = json.loads((FIXTURE / "runs.json").read_text())
    ids = {}
    for stage in paths.STAGES:
        run = recorded[stage]
        tags = dict(run["tags"])
        if stage in REBUILT:
            tags.update(link)
        new = client.create_run(experiment.experiment_id, run_name=stage)
        rid = new.info.run_id
        metrics = [Metric(key, value, 0, step) for key, points in run["histories"].items()
                   for step, value in points]
        metrics += [Metric(key, value, 0, 0) for key, value in run["metrics"].items()
                    if key not in run["histories"]]
        for start in range(0, len(metrics), 900):
            client.log_batch(rid, metrics=metrics[start:start + 900])
        for key, value in run["params"].items():
            client.log_param(rid, key, value)
        client.log_batch(rid, tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(rid, run["status"])
        ids[stage] = rid
        folder = paths.STAGE_OUTPUTS[stage]
        shutil.copytree(FIXTURE / folder, root / folder)
        manifest = json.loads((root / folder / paths.MANIFEST).read_text())
        manifest["mlflow_run_id"] = rid
        (root / folder / paths.MANIFEST).write_text(json.dumps(manifest, indent=2))
    return ids | {"pipeline": parent}


RUN = "fixture-run-1"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """One recorded store and project for the tests that only read them."""
    folder = tmp_path_factory.mktemp("report")
    root = folder / "project"
    root.mkdir()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("CRAWL2CHAT_ROOT", str(root))
        yield root, install(root, uri, RUN)


def _report(root: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "crawl2chat.cli", "report", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_report_finds_the_runs_of_the_pipeline_run_and_writes_html_and_markdown(
        project: tuple[Path, dict[str, str]]) -> None:
    root, ids = project
    out = _report(root)  # the latest pipeline run: the only one here
    page = root / "reports" / f"{RUN}.html"
    assert f"wrote {page}" in out
    text = page.read_text()
    markdown = page.with_suffix(".md").read_text()
    for stage in paths.STAGES:  # tagged runs and the reused ones found by manifest
        assert ids[stage][:12] in text and ids[stage][:12] in markdown, stage
    assert text.count("<td>rebuilt</td>") == len(REBUILT)
    assert text.count('<img class="plot"') == 6
    assert "http://" not in text and "https://" not in text.replace(
        "https://debian", "")  # only data: URIs; page text may quote crawled URLs
    for shown in ("GPT-2", "GPT-4 (cl100k)", "format compliance", "bits per byte",
                  "refusal rate, harmful prompts", "Hi! Who are you?", "lang:es"):
        assert shown in text and shown in markdown, shown
    counts = json.loads((FIXTURE / "data/text/counts.json").read_text())
    assert f"<td>{counts['steps'][0]['docs_in']}</td>" in text
    manifest = json.loads((FIXTURE / "models/sft/manifest.json").read_text())
    [digest] = [i["digest"] for i in manifest["inputs"].values() if i["kind"] == "stage"]
    assert digest[:16] in text  # the lineage chain names what each stage read


def test_report_names_a_missing_run(project: tuple[Path, dict[str, str]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_status:
        main(["report", "--run", "nope"])
    assert exit_status.value.code == 2
    assert "pipeline run 'nope'" in capsys.readouterr().err


def test_stage_runs_nested_under_a_pipeline_mlflow_run_are_found_by_its_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    root.mkdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    ids = install(root, uri, None)
    html_file, _ = write_report(root=root)  # the latest: the parent run's id
    assert html_file == root / "reports" / f"{ids['pipeline']}.html"
    text = html_file.read_text()
    assert all(ids[stage][:12] in text for stage in paths.STAGES)
    assert text.count("<td>rebuilt</td>") == len(REBUILT)


@needs_chromium
def test_the_page_renders_in_headless_chromium_with_every_chart_and_no_error(
        project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = project
    _report(root, "--run", RUN, "-o", str(tmp_path / "card.html"))
    with headless_chromium(tmp_path / "chromium") as tools:
        page = tools.open_page("about:blank")
        for domain in ("Runtime", "Log", "Network", "Page"):
            tools.call(f"{domain}.enable", page)
        tools.call("Emulation.setDeviceMetricsOverride", page, width=1100, height=900,
                   deviceScaleFactor=1, mobile=False)
        tools.call("Page.navigate", page, url=(tmp_path / "card.html").as_uri())
        tools.wait_for(page, "document.readyState", "complete")
        widths = tools.evaluate(page, "[...document.images].map(i => i.complete && "
                                      "i.naturalWidth)")
        headings = tools.evaluate(page, "[...document.querySelectorAll('h2')]"
                                        ".map(h => h.textContent)")
        shot = tools.call("Page.captureScreenshot", page, format="png",
                          captureBeyondViewport=True)
        (tmp_path / "report.png").write_bytes(base64.b64decode(shot["data"]))
    assert len(widths) == 6 and all(w and w > 0 for w in widths), widths
    assert headings[:3] == ["Stages", "Data funnel", "Removal reasons"], headings
    errors = [e for e in tools.events
              if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    requests = [e["params"]["request"]["url"] for e in tools.events
                if e["method"] == "Network.requestWillBeSent"]
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert (tmp_path / "report.png").stat().st_size > 10_000
