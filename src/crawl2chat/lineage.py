"""Lineage: manifests, one MLflow run per stage execution, and the audit of a model's data.

Every stage output folder holds a ``manifest.json`` (:func:`write_manifest`,
:func:`read_manifest`): the params hash, git revision, input digests and MLflow run id.
Each stage run lives in the ``crawl2chat`` experiment, named after the stage. It logs
the stage's params section (flattened), tags the git/DVC revision, records every input
(the upstream stage folder or an external file) as an MLflow input dataset with its
sha256 digest, and on success logs metrics and the output digest. ``audit`` walks the
``manifest.json`` chain from a model folder back to the crawl's WARC files and checks
every link against the MLflow store.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawl2chat import paths, redact
from crawl2chat.errors import StageError

EXPERIMENT = "crawl2chat"


def git_revision(root: Path) -> str:
    """The commit checked out in ``root``, ``-dirty`` if tracked files changed."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out + ("-dirty" if dirty else "")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / paths.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / paths.MANIFEST
    if not file.exists():
        raise StageError(f"{folder} has no {paths.MANIFEST}: run its stage first "
                         f"(`dvc repro` or `crawl2chat stage NAME`)")
    return json.loads(file.read_text())


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return flat


@dataclass
class StageRun:
    run_id: str
    stage: str

    def finish(self, metrics: dict[str, float], out_dir: Path, out_digest: str,
               details: dict[str, str] | None = None) -> None:
        """Log the metrics, the run-time decisions (``details``: params under
        ``resolved.``), the output digest, the manifest and the reports."""
        import mlflow

        mlflow.log_metrics(metrics)
        if details:
            mlflow.log_params({f"resolved.{k}": v[:6000] for k, v in details.items()})
        mlflow.set_tags({"output.path": str(out_dir.name), "output.digest": out_digest})
        manifest = out_dir / paths.MANIFEST
        if manifest.exists():
            mlflow.log_artifact(str(manifest))
        for report in sorted(out_dir.glob("report*")) + sorted(out_dir.glob("*.png")):
            mlflow.log_artifact(str(report), artifact_path="report")


def _input_dataset(name: str, info: dict[str, str], root: Path) -> Any:
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    source: Any
    if info["kind"] == "dataset":  # a Hugging Face hub dataset: its id, config and revision
        source = HuggingFaceDatasetSource(
            path=info.get("hf", name), config_name=info.get("config") or None,
            split=info.get("split") or None, revision=info.get("revision") or None)
    else:  # a plain source URI: the URL itself, or the file or folder inside the project
        uri = name if info["kind"] == "url" else (root / name).resolve().as_uri()
        source = HTTPDatasetSource(url=uri)
    return MetaDataset(source=source, name=name, digest=info["digest"][:36])


@contextlib.contextmanager
def stage_run(stage: str, section: dict[str, Any], inputs: dict[str, dict[str, str]],
              root: Path) -> Iterator[StageRun]:
    """An MLflow run for one stage execution; failed if the body raises."""
    import mlflow

    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=stage) as run:
        mlflow.set_tags({"stage": stage, "git.revision": git_revision(root),
                         "dvc.lock.digest": _dvc_lock_digest(root)})
        mlflow.log_params(redact.params(flatten({stage: section})))
        log_inputs(inputs, root)
        yield StageRun(run_id=run.info.run_id, stage=stage)


def log_inputs(inputs: dict[str, dict[str, str]], root: Path) -> None:
    """Log ``inputs`` (name -> digest and kind: stage, file, url, or dataset: a hub
    dataset with its ``hf`` id, ``config``, ``split`` and ``revision``) to the active run."""
    import mlflow

    for name, info in inputs.items():
        mlflow.log_input(_input_dataset(name, info, root),
                         context="upstream" if info["kind"] == "stage" else "source",
                         tags={"sha256": info["digest"]})


def _dvc_lock_digest(root: Path) -> str:
    from crawl2chat.digest import file_digest

    lock = root / "dvc.lock"
    return file_digest(lock)[:16] if lock.exists() else "none"


@dataclass
class AuditLink:
    stage: str
    folder: str
    mlflow_run_id: str
    git_revision: str
    params_hash: str
    inputs: dict[str, dict[str, str]]
    run_found: bool
    inputs_match: bool


def audit(model_dir: Path, root: Path | None = None) -> list[AuditLink]:
    """The chain of stage runs behind ``model_dir``, newest first, down to the WARC files."""
    root = (root or paths.project_root()).resolve()
    folder_to_stage = {v: k for k, v in paths.STAGE_OUTPUTS.items()}
    chain: list[AuditLink] = []
    folder: Path | None = model_dir.resolve()
    while folder is not None:
        manifest = read_manifest(folder)
        run_found, inputs_match = _check_run(manifest)
        chain.append(AuditLink(
            stage=manifest["stage"], folder=str(folder.relative_to(root)),
            mlflow_run_id=manifest.get("mlflow_run_id", ""),
            git_revision=manifest.get("git_revision", ""),
            params_hash=manifest.get("params_hash", ""), inputs=manifest.get("inputs", {}),
            run_found=run_found, inputs_match=inputs_match))
        upstream = [name for name, info in manifest.get("inputs", {}).items()
                    if info.get("kind") == "stage" and name in folder_to_stage]
        folder = (root / upstream[0]) if upstream else None
    return chain


def _check_run(manifest: dict[str, Any]) -> tuple[bool, bool]:
    """Does the MLflow run named in the manifest exist, with the same input digests?"""
    import mlflow
    from mlflow.exceptions import MlflowException

    run_id = manifest.get("mlflow_run_id")
    if not run_id:
        return False, False
    try:
        run = mlflow.get_run(run_id)
    except MlflowException:
        return False, False
    logged = {d.dataset.name: d.dataset.digest for d in (run.inputs.dataset_inputs or [])}
    expected = {name: info["digest"][:36] for name, info in manifest.get("inputs", {}).items()}
    return True, logged == expected
