"""Validate data frames against GX expectations and explain failures in plain words."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from crawl2chat.errors import GateFailed

log = logging.getLogger("crawl2chat.quality")


@dataclass
class Table:
    """One data frame describing a stage output, and what must hold for it."""

    name: str
    frame: pd.DataFrame
    expectations: list[Any] = field(default_factory=list)


_context: Any = None
_names = itertools.count()


def _gx_context() -> Any:
    global _context
    if _context is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from crawl2chat.runtime import quiet_libraries

        _context = gx.get_context(mode="ephemeral")
        quiet_libraries()  # GX sets its loggers to INFO on first use
        _context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False)
    return _context


def validate(stage: str, tables: list[Table]) -> list[str]:
    """Run every table's expectations; raise GateFailed naming each failure."""
    import great_expectations as gx

    context = _gx_context()
    failures: list[str] = []
    passed: list[str] = []
    for table in tables:
        # the context lives for the process: a fresh source name per validation
        source_name = f"{stage}-{table.name}-{next(_names)}"
        asset = context.data_sources.add_pandas(source_name).add_dataframe_asset(table.name)
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": table.frame})
        suite = gx.ExpectationSuite(name=source_name)
        for expectation in table.expectations:
            suite.add_expectation(expectation)
        result = batch.validate(suite)
        for item in result.results:
            described = describe(item.expectation_config)
            if item.success:
                passed.append(f"{table.name}: {described}")
            else:
                failures.append(f"{table.name}: {described} -- {_evidence(item.result)}")
    if failures:
        raise GateFailed(f"quality gate of stage '{stage}' failed:\n  - "
                         + "\n  - ".join(failures))
    log.info("quality gate %s: %d checks passed", stage, len(passed))
    return passed


def describe(config: Any) -> str:
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{config.type}({args})"


def _evidence(result: dict[str, Any]) -> str:
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list", [])[:3]
        return f"{result['unexpected_count']} unexpected, e.g. {sample}"
    if "observed_value" in result:
        return f"observed {result['observed_value']!r}"
    return "failed"
