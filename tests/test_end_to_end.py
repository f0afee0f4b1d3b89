"""The whole pipeline on the smoke preset through real DVC, Prefect and MLflow.

A temp git repo gets a copy of the project; `crawl2chat run experiment=smoke` composes
the config and runs `dvc repro` inside the pipeline flow. Then: the audit chain reaches
the WARC files and matches MLflow; a second repro reruns nothing; a changed `base` param
reruns `base` and `sft` only; the scheduled deployment registers and runs once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crawl2chat import paths
from crawl2chat.digest import file_digest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _copy_project(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, files.split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("e2e")
    _copy_project(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", PREFECT_HOME=str(root / ".prefect"),
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    env.pop("CRAWL2CHAT_ROOT", None)
    for args in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]):
        _run(args, root, env)
    output = _run([str(BIN / "crawl2chat"), "run", "experiment=smoke"], root, env)
    assert _stages_run(output) == {"compose", *paths.STAGES}, output[-3000:]
    return root, env


def test_every_stage_wrote_output_manifest_and_metrics(project: tuple[Path, dict]) -> None:
    root, _ = project
    for stage in paths.STAGES:
        out = paths.stage_output(stage, root)
        manifest = json.loads((out / paths.MANIFEST).read_text())
        assert manifest["stage"] == stage
        assert manifest["records"] > 0
        assert json.loads(paths.metrics_file(stage, root).read_text())["wall_time_s"] > 0
        assert not list(out.parent.glob(f"{out.name}.tmp-*"))
    assert (root / "models/sft/model.safetensors").stat().st_size > 0


def test_training_stages_record_the_precision_auto_chose(project: tuple[Path, dict]) -> None:
    import mlflow

    root, _ = project
    for stage in ("base", "sft"):
        out = paths.stage_output(stage, root)
        details = json.loads((out / paths.MANIFEST).read_text())["details"]
        assert details["precision"] in ("32-true", "bf16-mixed")
        assert details["precision_reason"].startswith("auto: ")
        assert f"Precision {details['precision']}".lower() in (
            out / "report.md").read_text().lower()
        run = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_run(
            json.loads((out / paths.MANIFEST).read_text())["mlflow_run_id"])
        assert run.data.params["resolved.precision"] == details["precision"]


def test_audit_chain_reaches_the_warc_files(project: tuple[Path, dict]) -> None:
    root, env = project
    report = json.loads(_run([str(BIN / "crawl2chat"), "audit", "models/sft", "--json"],
                             root, env))
    assert report["verified"] is True
    chain = report["chain"]
    assert [link["stage"] for link in chain] == list(reversed(paths.STAGES))
    assert all(link["ok"] for link in chain) and report["breaks"] == []
    warcs = {name: info for name, info in chain[-1]["inputs"].items() if info["kind"] == "file"}
    assert warcs and all(name.startswith("data/demo/web/") for name in warcs)
    for name, info in warcs.items():
        assert info["digest"] == file_digest(root / name)
    table = _run([str(BIN / "crawl2chat"), "audit", "models/sft"], root, env)
    assert "verified" in table and "data/demo/web" in table


def test_second_repro_reruns_nothing(project: tuple[Path, dict]) -> None:
    root, env = project
    output = _run([str(BIN / "dvc"), "repro"], root, env)
    assert _stages_run(output) == set(), output


def test_changing_a_base_param_reruns_base_and_sft_only(project: tuple[Path, dict]) -> None:
    root, env = project
    _run([str(BIN / "crawl2chat"), "compose", "experiment=smoke", "base.train.seed=7"],
         root, env)
    output = _run([str(BIN / "dvc"), "repro"], root, env)
    assert _stages_run(output) == {"compose", "base", "sft"}, output[-3000:]


def test_scheduled_deployment_registers_and_runs_once(project: tuple[Path, dict]) -> None:
    root, env = project
    script = (
        "from prefect.testing.utilities import prefect_test_harness\n"
        "from prefect.deployments import run_deployment\n"
        "from prefect.flow_engine import run_flow\n"
        "from prefect.client.orchestration import get_client\n"
        "from crawl2chat import runtime; runtime.configure()\n"
        "import runpy\n"
        "from prefect.flows import load_flow_from_entrypoint\n"
        "deploy = runpy.run_path('flows/deploy.py')\n"
        "load_cfg, build_deployment = deploy['load_cfg'], deploy['build_deployment']\n"
        "pipeline = load_flow_from_entrypoint('flows/pipeline.py:pipeline')\n"
        "from pathlib import Path\n"
        "root = Path.cwd()\n"
        "with prefect_test_harness():\n"
        "    cfg = load_cfg(root)\n"
        "    deployment_id = build_deployment(cfg, root).apply()\n"
        "    with get_client(sync_client=True) as client:\n"
        "        d = client.read_deployment(deployment_id)\n"
        "    print('CRON', d.schedules[0].schedule.cron)\n"
        "    flow_run = run_deployment(f'pipeline/{cfg.name}', timeout=0)\n"
        "    state = run_flow(pipeline, flow_run=flow_run, parameters=flow_run.parameters,"
        " return_type='state')\n"
        "    print('STATE', state.type.value)\n")
    output = _run([sys.executable, "-c", script], root, env, timeout=600)
    assert "CRON 0 3 * * *" in output
    assert "STATE COMPLETED" in output
    assert _stages_run(output) == set()
