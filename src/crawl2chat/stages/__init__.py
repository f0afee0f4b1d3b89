"""Pipeline stages. Each module ``crawl2chat.stages.<name>`` defines:

- ``Cfg``: a dataclass for its ``params.yaml`` section,
- ``run(cfg, in_dir, out_dir) -> dict[str, float]``: the pure core, writing only into
  ``out_dir`` and returning metrics (by convention ``records`` and ``tokens``),
- optionally ``external_inputs(cfg, root) -> list[Path]``: files from outside the
  pipeline that it reads (the crawl's WARC files, the SFT conversations), so that
  lineage records their digests.

:mod:`crawl2chat.runner` wraps the core with atomic output, the quality gate,
the manifest and the MLflow run.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from crawl2chat.paths import STAGES


def load(stage: str) -> ModuleType:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return importlib.import_module(f"crawl2chat.stages.{stage}")
