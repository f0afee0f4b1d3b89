"""Pipeline stages. Each module ``crawl2chat.stages.<name>`` defines:

- ``Cfg``: a dataclass for its ``params.yaml`` section,
- ``run(cfg, in_dir, out_dir) -> dict[str, float]``: the pure core, writing only into
  ``out_dir`` and returning metrics (by convention ``records`` and ``tokens``); it
  reads nothing from the environment to find its files,
- optionally ``resolve(cfg, root) -> Cfg``: the config bound to the project in ``root``,
  so that the core reads project-relative paths (the crawl's WARC globs, the SFT
  conversations) from there; without it a relative path is relative to the working
  directory,
- optionally ``external_inputs(cfg, root) -> list[Path]``: files from outside the
  pipeline that it reads (the crawl's WARC files, the SFT conversations), so that
  lineage records their digests,
- optionally ``discovered_inputs(out_dir) -> dict``: inputs only known once read (a
  remote WARC's sha256), recorded like the rest.

:mod:`crawl2chat.runner` calls ``resolve`` before ``external_inputs`` and ``run``, and
wraps the core with atomic output, the quality gate, the manifest and the MLflow run.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from crawl2chat.config import build
from crawl2chat.errors import ConfigError
from crawl2chat.paths import PARAMS_FILE, STAGES


def load(stage: str) -> ModuleType:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return importlib.import_module(f"crawl2chat.stages.{stage}")


def check_params(tree: dict[str, Any]) -> None:
    """Build every stage's ``Cfg`` from its section of a composed ``tree``: a missing
    section, an unknown key, a mistyped or out-of-range value fails now, naming its path,
    not hours later when that stage starts."""
    for stage in STAGES:
        if not isinstance(tree.get(stage), dict):
            raise ConfigError(f"{PARAMS_FILE} would have no '{stage}' section; conf/ must "
                              "define one")
        build(load(stage).Cfg, tree[stage], stage)
