"""Lineage: manifests, one MLflow run per stage execution, and what the audit checks.

Every stage output folder holds a ``manifest.json`` (:func:`write_manifest`,
:func:`read_manifest`): the params hash, git revision, input digests, MLflow run id and
the output record (:func:`output_record`: each file's sha256 and size, and one digest
over them; manifests themselves are left out, the chain checks them on their own).
Each stage run lives in the ``crawl2chat`` experiment, named after the stage. It logs
the stage's params section (flattened), tags the git/DVC revision, records every input
(the upstream stage folder or an external file) as an MLflow input dataset with its
sha256 digest, and on success logs metrics, the output digest and the manifest's
sha256 as tags and the manifest as an artifact. :mod:`crawl2chat.audit` re-checks all of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat import paths, redact
from crawl2chat.errors import StageError

EXPERIMENT = "crawl2chat"
PARENT_RUN_ENV = "CRAWL2CHAT_MLFLOW_PARENT_RUN"  # the pipeline run stage runs nest under
LINEAGE_DIR = "lineage"  # inside an hf/ export: the manifests of the chain behind it


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


def output_record(folder: Path) -> dict[str, Any]:
    """Every file under ``folder`` but manifests (``files``: path -> sha256 and bytes)
    and the ``digest`` over them: a stage's output identity, re-hashed by the audit."""
    from crawl2chat.digest import file_digest

    files = {p.relative_to(folder).as_posix(): {"sha256": file_digest(p),
                                                 "bytes": p.stat().st_size}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != paths.MANIFEST}
    return {"digest": files_digest(files), "files": files}


def files_digest(files: dict[str, dict[str, Any]]) -> str:
    """One sha256 over the (path, sha256) pairs of an output record, in path order."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]['sha256']}\n".encode())
    return h.hexdigest()


def carry_chain(out_dir: Path, manifest: dict[str, Any], upstream: Path | None,
                root: Path) -> None:
    """Copy the manifest of this stage and of every stage below it into
    ``out_dir/hf/lineage/STAGE/manifest.json``: an exported model folder, copied
    anywhere, still names the runs and data behind it."""
    hf = out_dir / "hf"
    if not hf.is_dir():
        return
    for entry in [manifest, *chain_below(upstream, root)]:
        target = hf / LINEAGE_DIR / entry["stage"]
        target.mkdir(parents=True, exist_ok=True)
        write_manifest(target, entry)


def chain_below(folder: Path | None, root: Path) -> list[dict[str, Any]]:
    """The manifests of ``folder`` and of every stage output below it, newest first."""
    chain = []
    while folder is not None and (folder / paths.MANIFEST).is_file():
        chain.append(read_manifest(folder))
        folder = upstream_folder(chain[-1], root)
    return chain


def upstream_folder(manifest: dict[str, Any], root: Path) -> Path | None:
    """The upstream stage output a manifest names as its input, or None (the crawl)."""
    outputs = set(paths.STAGE_OUTPUTS.values())
    names = [name for name, info in manifest.get("inputs", {}).items()
             if info.get("kind") == "stage" and name in outputs]
    return root / names[0] if names else None


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
    datasets: list[Any] = field(default_factory=list)  # its inputs, as MLflow datasets

    def finish(self, metrics: dict[str, float], out_dir: Path,
               details: dict[str, str] | None = None) -> None:
        """Log the metrics, the run-time decisions (``details``: params under
        ``resolved.``), the output digest and manifest sha256 (tags), the manifest and
        the reports (artifacts)."""
        import mlflow

        from crawl2chat.digest import file_digest

        mlflow.log_metrics(metrics)
        if details:
            mlflow.log_params({f"resolved.{k}": v[:6000] for k, v in details.items()})
        manifest = out_dir / paths.MANIFEST
        mlflow.set_tags({"output.path": str(out_dir.name),
                         "output.digest": read_manifest(out_dir)["output"]["digest"],
                         "manifest.sha256": file_digest(manifest)})
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
    """An MLflow run for one stage execution, nested under the pipeline's run when there
    is one (:func:`pipeline_run`); failed, with its error recorded, if the body raises."""
    import mlflow

    mlflow.set_experiment(EXPERIMENT)
    active = mlflow.active_run()
    parent = os.environ.get(PARENT_RUN_ENV) or (active.info.run_id if active else None)
    with mlflow.start_run(run_name=stage, parent_run_id=parent, nested=active is not None) as run:
        mlflow.set_tags({"stage": stage, "git.revision": git_revision(root),
                         "dvc.lock.digest": _dvc_lock_digest(root), **_prefect_tags()})
        mlflow.log_params(redact.params(flatten({stage: section})))
        datasets = log_inputs(inputs, root)
        with _errors_recorded():
            yield StageRun(run_id=run.info.run_id, stage=stage, datasets=datasets)


@contextlib.contextmanager
def pipeline_run(root: Path) -> Iterator[str]:
    """The parent MLflow run of one pipeline run: stage runs started meanwhile, in this
    process or its children (``$CRAWL2CHAT_MLFLOW_PARENT_RUN``), nest under it."""
    import mlflow

    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="pipeline") as run:
        mlflow.set_tags({"git.revision": git_revision(root), **_prefect_tags()})
        before = os.environ.get(PARENT_RUN_ENV)
        os.environ[PARENT_RUN_ENV] = run.info.run_id
        try:
            with _errors_recorded():
                yield run.info.run_id
        finally:
            if before is None:
                os.environ.pop(PARENT_RUN_ENV, None)
            else:
                os.environ[PARENT_RUN_ENV] = before


@contextlib.contextmanager
def _errors_recorded() -> Iterator[None]:
    """On an exception: the active run's ``error`` tag and ``error.txt`` (the traceback);
    MLflow then marks the run FAILED."""
    import traceback

    import mlflow

    try:
        yield
    except BaseException as err:
        mlflow.set_tag("error", f"{type(err).__name__}: {err}"[:5000])
        mlflow.log_text(traceback.format_exc(), "error.txt")
        raise


def _prefect_tags() -> dict[str, str]:
    """The Prefect flow run this code runs in, if any."""
    from prefect.runtime import flow_run

    return {"prefect.flow_run_id": str(flow_run.id)} if flow_run.id else {}


def log_inputs(inputs: dict[str, dict[str, str]], root: Path) -> list[Any]:
    """Log ``inputs`` (name -> digest and kind: stage, file, url, or dataset: a hub
    dataset with its ``hf`` id, ``config``, ``split`` and ``revision``) to the active run;
    return the MLflow datasets."""
    import mlflow

    datasets = []
    for name, info in inputs.items():
        dataset = _input_dataset(name, info, root)
        mlflow.log_input(dataset, context="upstream" if info["kind"] == "stage" else "source",
                         tags={"sha256": info["digest"]})
        datasets.append(dataset)
    return datasets


def _dvc_lock_digest(root: Path) -> str:
    from crawl2chat.digest import file_digest

    lock = root / "dvc.lock"
    return file_digest(lock)[:16] if lock.exists() else "none"
