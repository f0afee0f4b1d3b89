"""The chain of stage manifests behind a model, newest first, from wherever it is kept.

In: a model folder in the working tree, an exported ``hf/`` folder (it carries the chain
in ``lineage/STAGE/manifest.json``), an MLflow run id, or a registered model version
``name/version`` (the model's logged files are downloaded to be re-hashed). Out: a list
of :class:`Link`, each a manifest, its sha256, and where that stage's output bytes are
(if they are here at all) for the audit to re-hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat import lineage, paths
from crawl2chat.errors import InputError


@dataclass
class Link:
    """One stage execution in the chain."""

    stage: str
    where: str  # the folder, export or MLflow run the manifest was read from
    manifest: dict[str, Any]
    manifest_sha256: str
    files_at: Path | None = None  # where this stage's output bytes are; None: not here
    prefix: str = ""  # only output files under this prefix are at ``files_at`` (an export)
    notes: list[str] = field(default_factory=list)


def _read(file: Path) -> tuple[dict[str, Any], str]:
    blob = file.read_bytes()
    try:
        return json.loads(blob), hashlib.sha256(blob).hexdigest()
    except json.JSONDecodeError as e:
        raise InputError(f"{file}: not a JSON manifest ({e})") from e


def from_folder(model_dir: Path, root: Path) -> list[Link]:
    """The chain behind a stage output folder in the working tree ``root``."""
    if not (model_dir / paths.MANIFEST).is_file() and (model_dir / lineage.LINEAGE_DIR).is_dir():
        return from_export(model_dir)
    chain: list[Link] = []
    folder: Path | None = model_dir.resolve()
    while folder is not None:
        file = folder / paths.MANIFEST
        if not file.is_file():
            if not chain:
                lineage.read_manifest(folder)  # raises the clear "run its stage first"
            chain[-1].notes.append(f"upstream {folder} has no {paths.MANIFEST}")
            break
        manifest, sha = _read(file)
        where = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)
        chain.append(Link(manifest.get("stage", "?"), where, manifest, sha, files_at=folder))
        folder = lineage.upstream_folder(manifest, root)
    return chain


def from_export(export: Path) -> list[Link]:
    """The chain an exported ``hf/`` folder carries; its own files are re-hashable
    against its stage's manifest (the entries under ``hf/``)."""
    carried = {p.parent.name: p for p in (export / lineage.LINEAGE_DIR).glob(f"*/{paths.MANIFEST}")}
    stages = [s for s in reversed(paths.STAGES) if s in carried]
    if not stages:
        raise InputError(f"{export} carries no {lineage.LINEAGE_DIR}/STAGE/{paths.MANIFEST}: "
                         f"not an export written by a crawl2chat stage")
    chain = []
    for index, stage in enumerate(stages):
        manifest, sha = _read(carried[stage])
        top = index == 0
        chain.append(Link(stage, f"{export}:{lineage.LINEAGE_DIR}/{stage}", manifest, sha,
                          files_at=export if top else None, prefix="hf/" if top else ""))
    return chain


_RUN_ID = re.compile(r"(?:runs:/)?([0-9a-f]{32})")


def from_mlflow(target: str) -> list[Link]:
    """The chain behind an MLflow run id (``runs:/ID`` too) or a registered model version
    ``name/version``, read from the manifests the runs logged as artifacts."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = _RUN_ID.fullmatch(target)
    if found:
        run_id = found[1]
    else:
        name, _, version = target.rpartition("/")
        try:
            run_id = client.get_model_version(name, version).run_id
        except MlflowException as e:
            raise InputError(f"{target}: no such folder, MLflow run or registered model "
                             f"version ({e.message})") from e
    chain: list[Link] = []
    while run_id:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                file = Path(client.download_artifacts(run_id, paths.MANIFEST, tmp))
            except (MlflowException, OSError) as e:
                if not chain:
                    raise InputError(f"MLflow run {run_id}: no {paths.MANIFEST} artifact "
                                     f"({e})") from e
                chain[-1].notes.append(f"upstream run {run_id}: no {paths.MANIFEST} artifact")
                break
            manifest, sha = _read(file)
        link = Link(manifest.get("stage", "?"), f"mlflow:{run_id}", manifest, sha)
        if not chain:  # the model itself: its registered files, re-hashable
            _attach_logged_model(link, run_id)
        chain.append(link)
        upstream = [info for info in manifest.get("inputs", {}).values()
                    if info.get("kind") == "stage"]
        run_id = upstream[0].get("mlflow_run_id", "") if upstream else ""
    return chain


def _attach_logged_model(link: Link, run_id: str) -> None:
    """Point ``link`` at the files of the MLflow model its run logged, downloaded into a
    temporary folder removed when the process exits."""
    import atexit
    import shutil

    import mlflow

    run = mlflow.get_run(run_id)
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'",
                                         output_format="list")
    if not models:
        link.notes.append(f"run {run_id} logged no model: output bytes not re-hashed")
        return
    model = models[0]
    folder = Path(tempfile.mkdtemp(prefix="crawl2chat-audit-"))
    atexit.register(shutil.rmtree, folder, True)
    link.files_at = Path(mlflow.artifacts.download_artifacts(f"models:/{model.model_id}",
                                                             dst_path=str(folder)))
    # the registry logs hf/ (or, without an export, the whole model folder)
    link.prefix = "hf/" if model.tags.get("folder") == "hf" else ""
    link.where = f"mlflow:{run_id} (model {model.model_id})"


def load(target: str, root: Path) -> list[Link]:
    """The chain behind ``target``: a folder if one exists, else an MLflow reference."""
    folder = Path(target)
    if not folder.is_absolute():
        folder = root / folder if (root / folder).exists() else folder.resolve()
    if folder.exists():
        return from_folder(folder, root)
    if _RUN_ID.fullmatch(target) or re.fullmatch(r"[^/]+/\d+", target):
        return from_mlflow(target)
    raise InputError(f"{target}: no such folder, and not an MLflow run id or a registered "
                     f"model version (name/version)")
