"""One Prefect flow per stage. Each is a thin adapter around ``runner.execute``:
the stage's pure core, quality gate, manifest and MLflow run live in the library.
DVC calls them through ``crawl2chat stage NAME``, which runs this file from the project.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import flow

from crawl2chat.paths import STAGES
from crawl2chat.runner import execute


def _stage_flow(stage: str) -> Callable[[], dict[str, float]]:
    @flow(name=stage, description=f"crawl2chat stage '{stage}'", log_prints=True,
          validate_parameters=False)
    def stage_flow() -> dict[str, float]:
        return execute(stage)

    return stage_flow


# one module-level flow per stage, named after it: `crawl2chat stage NAME` loads NAME
crawl, text, tokens, base, sft = (_stage_flow(name) for name in STAGES)
