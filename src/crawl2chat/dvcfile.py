"""``dvc.yaml`` as data: does a stage depend on the local files its config names?

In: the project root, a stage name and the local input files the stage reads (its
``external_inputs``: WARC files of ``crawl.sources``, conversation files of
``sft.data``). Out: nothing, or :class:`StageError` naming the files that no dependency
of that stage covers; DVC would not rerun the stage when they change. A project without
``dvc.yaml`` (a stage run on its own) is not checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import yaml

from crawl2chat.errors import StageError

DVC_FILE = "dvc.yaml"


def stage_deps(root: Path, stage: str) -> list[str] | None:
    """The ``deps`` of ``stage`` in ``root/dvc.yaml``; None without that file or stage."""
    file = root / DVC_FILE
    if not file.is_file():
        return None
    entry = (yaml.safe_load(file.read_text()) or {}).get("stages", {}).get(stage)
    return None if entry is None else [str(d) for d in entry.get("deps", [])]


def check_inputs_are_deps(root: Path, stage: str, files: Iterable[Path]) -> None:
    """Raise if a local input file of ``stage`` is not under one of its DVC deps."""
    deps = stage_deps(root, stage)
    if deps is None:
        return
    missing = []
    for file in files:
        rel = Path(os.path.relpath(file, root)).as_posix()
        if not any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps):
            missing.append(rel)
    if missing:
        raise StageError(f"{root / DVC_FILE}: stage {stage} does not depend on "
                         f"{', '.join(missing)}, which its params name: add them (or their "
                         f"folder) to its deps, or DVC will not rerun {stage} when they change")
