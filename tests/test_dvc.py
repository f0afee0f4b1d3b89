"""DVC around the pipeline, with the real `dvc` in a temp git repo: each stage depends on
every module its code imports and on its local input files (changing one makes
`dvc status` name the stage), metrics/ is committed, and a fresh clone `dvc pull`s a
model from the default remote and chats with it without retraining."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from test_architecture import _imports, _modules

from crawl2chat import config, paths
from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.gpt import GPT
from crawl2chat.tokenizer.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SRC = "src/crawl2chat"


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _closure(stage: str) -> set[str]:
    """The source files stage ``stage``'s run imports: its core and gate, the runner and
    what they import (the other stages' cores and gates left out; shared gate helpers
    such as ``quality.repeats`` kept)."""
    modules = _modules()
    graph = _imports(modules)
    others = {f"{part}.{name}" for part in ("stages", "quality") for name in paths.STAGES
              if name != stage}
    seen: set[str] = set()
    todo = [f"stages.{stage}", f"quality.{stage}", "quality.suite", "runner"]
    while todo:
        name = todo.pop()
        if name in seen or name in others:
            continue
        seen.add(name)
        todo += graph.get(name, ())
    files = {modules[m].relative_to(REPO).as_posix() for m in seen}
    return files | {f"{SRC}/stages/__init__.py", f"{SRC}/quality/__init__.py"}


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == dep or file.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", paths.STAGES)
def test_each_stage_depends_on_every_module_it_imports(stage: str) -> None:
    deps = _stages()[stage]["deps"]
    missing = sorted(f for f in _closure(stage) if not _covered(f, deps))
    assert not missing, f"dvc.yaml: stage {stage} does not depend on {missing}"


def test_the_configured_local_input_files_are_dependencies() -> None:
    tree = config.compose(REPO, [])
    stages = _stages()
    crawl = [s for s in tree["crawl"]["sources"] if "://" not in s]
    sft = [d["path"] for d in tree["sft"]["data"]]
    sft += [tree["sft"]["eval"][k] for k in ("harmful", "benign") if tree["sft"]["eval"][k]]
    for stage, patterns in (("crawl", crawl), ("sft", sft)):
        files = [p.relative_to(REPO).as_posix() for pattern in patterns
                 for p in sorted(REPO.glob(pattern))]
        assert len(files) >= len(patterns), (stage, patterns)
        missing = [f for f in files if not _covered(f, stages[stage]["deps"])]
        assert not missing, f"dvc.yaml: stage {stage} does not depend on {missing}"


def _dvc(root: Path, *args: str) -> str:
    result = subprocess.run([str(BIN / "dvc"), *args], cwd=root, capture_output=True,
                            text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root,
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, tok: Tokenizer, tiny_gpt: Callable[..., GPT]) -> Path:
    """A git + DVC project with this dvc.yaml, its code and demo data, and stage outputs
    committed to DVC without running them (a tiny SFT model as models/sft)."""
    root = tmp_path / "work" / "project"
    root.mkdir(parents=True)
    for name in ("src", "conf", "data/demo", ".dvc/config", "dvc.yaml", ".gitignore",
                 "data/.gitignore", "models/.gitignore"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    (root / "data/warc").mkdir()
    (root / "data/warc/.keep").write_text("")
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump(config.compose(REPO, [])))
    for stage in paths.STAGES:
        out = paths.stage_output(stage, root)
        out.mkdir(parents=True, exist_ok=True)
        (out / "part").write_text(stage)
    save_model(tiny_gpt(320), tok, root / "models/sft", extra={"stage": "sft"})
    (root / paths.METRICS_DIR).mkdir()
    for stage in paths.STAGES:
        paths.metrics_file(stage, root).write_text(json.dumps({"loss": 1.0}))
    for stage in ("base", "sft"):
        for key in ("loss", "val_loss"):
            name = f"{stage}_{'train_loss' if key == 'loss' else key}.csv"
            (root / paths.METRICS_DIR / name).write_text(f"step,{key}\n1,2.0\n2,1.5\n")
    (root / paths.METRICS_DIR / "text_funnel.json").write_text(json.dumps(
        [{"step": "url", "docs_in": 9, "docs_out": 8}, {"step": "lang", "docs_in": 8,
                                                       "docs_out": 5}]))
    _git(root, "init", "-q")
    _dvc(root, "commit", "--force", "--quiet")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "outputs committed")
    return root


def test_changing_a_dependency_makes_dvc_status_name_its_stages(repo: Path) -> None:
    assert json.loads(_dvc(repo, "status", "--json")) == {}
    touched = {f"{SRC}/lineage.py": set(paths.STAGES), f"{SRC}/model/gpt.py": {"base", "sft"},
               f"{SRC}/release/card.py": set(paths.STAGES),
               "data/demo/chat/assistant.jsonl": {"sft"},
               "data/demo/web/demo-web-00003.warc.gz": {"crawl"},
               f"{SRC}/crawl/urlfilter.py": {"crawl", "text"}}
    for file, stages in touched.items():
        with (repo / file).open("ab") as f:
            f.write(b"\n")
        status = json.loads(_dvc(repo, "status", "--json"))
        named = {stage for stage, changes in status.items()
                 if any(file in c.get("changed deps", {}) or
                        any(file.startswith(d + "/") for d in c.get("changed deps", {}))
                        for c in changes if isinstance(c, dict))}
        assert named == stages, (file, status)
        _git(repo, "checkout", "--", file)


def test_metrics_are_committed_and_a_fresh_clone_pulls_and_chats(repo: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", paths.METRICS_DIR], cwd=repo, check=True,
                             capture_output=True, text=True).stdout.split()
    assert f"{paths.METRICS_DIR}/base.json" in tracked
    assert f"{paths.METRICS_DIR}/base_train_loss.csv" in tracked
    plots = json.loads(_dvc(repo, "plots", "show", "--json"))["data"]
    assert {"base_loss", "sft_loss", "metrics/text_funnel.json"} <= set(plots)
    drawn = plots["base_loss"][0]["content"]["data"]["values"]
    assert {row["filename::field"] for row in drawn} == {"base_train_loss.csv::loss",
                                                        "base_val_loss.csv::val_loss"}
    # a second run's metrics: `dvc metrics diff` against the first commit
    paths.metrics_file("base", repo).write_text(json.dumps({"loss": 0.5}))
    _dvc(repo, "commit", "--force", "--quiet")
    _git(repo, "commit", "-qam", "second run")
    diff = json.loads(_dvc(repo, "metrics", "diff", "HEAD~1", "--json"))
    assert diff[f"{paths.METRICS_DIR}/base.json"]["loss"] == {"old": 1.0, "new": 0.5,
                                                                "diff": -0.5}
    _dvc(repo, "push", "--quiet")
    assert (repo.parent / "crawl2chat-dvc-remote").is_dir()  # the default: beside the project
    clone = repo.parent / "clone"
    _git(repo.parent, "clone", "-q", str(repo), str(clone))
    assert not (clone / "models/sft").exists()
    _dvc(clone, "pull", "--quiet")
    env = {**os.environ, "PYTHONPATH": str(clone / "src")}
    reply = subprocess.run([sys.executable, "-m", "crawl2chat.cli", "chat", "models/sft",
                            "-m", "hello", "--max-new-tokens", "5", "-q"], cwd=clone,
                           env=env, capture_output=True, text=True)
    assert reply.returncode == 0, reply.stderr
    assert reply.stdout.strip()
    assert json.loads(_dvc(clone, "status", "--json")) == {}  # nothing to retrain


def test_a_stage_refuses_to_run_on_a_local_input_dvc_does_not_track(tmp_path: Path) -> None:
    from crawl2chat.dvcfile import check_inputs_are_deps
    from crawl2chat.errors import StageError
    from crawl2chat.runner import execute

    (tmp_path / "warc").mkdir()
    shutil.copy(REPO / "data/demo/web/demo-web-00003.warc.gz", tmp_path / "warc")
    (tmp_path / paths.PARAMS_FILE).write_text(
        yaml.safe_dump({"crawl": {"sources": ["warc/*.warc.gz"], "max_records": 3}}))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {"crawl": {"cmd": "crawl2chat stage crawl", "deps": ["data/demo/web"]}}}))
    with pytest.raises(StageError, match=r"stage crawl does not depend on "
                                         r"warc/demo-web-00003\.warc\.gz"):
        execute("crawl", tmp_path)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {"crawl": {"cmd": "crawl2chat stage crawl", "deps": ["warc"]}}}))
    check_inputs_are_deps(tmp_path, "crawl", [tmp_path / "warc/demo-web-00003.warc.gz"])
