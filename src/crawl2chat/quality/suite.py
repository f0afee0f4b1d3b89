"""Validate data frames against GX expectations and explain failures in plain words.

In: a stage's tables (data frames and their expectations). Out: the names of the checks
that passed, or :class:`GateFailed` listing the failures; either way, given a folder, the
validation results as JSON and as GX Data Docs HTML (:data:`RESULTS_DIR`) for inspection.

A table may come in parts (one per output shard, read one at a time, so a gate's memory
does not grow with the output): every part is validated against the same expectations,
an expectation holds when it holds in every part, and a failure names the first part
where it failed. The kept result is that of the first failing part (else the last),
with ``parts`` added: how many were validated and which failed.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crawl2chat.errors import GateFailed

log = logging.getLogger("crawl2chat.quality")

RESULTS_DIR = "quality"  # inside the stage output: <table>.json and <table>.html per table

Parts = Iterable[tuple[str, pd.DataFrame]]  # (part name, e.g. its shard file; its rows)


@dataclass
class Table:
    """One data frame describing a stage output, or its parts read one at a time (a
    generator of ``(name, frame)``), and what must hold for it."""

    name: str
    frame: pd.DataFrame | Parts
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


def validate(stage: str, tables: list[Table], keep_in: Path | None = None) -> list[str]:
    """Run every table's expectations; raise GateFailed naming each failure.

    With ``keep_in``, each table's result is written to ``keep_in/quality/`` first,
    passed or failed."""
    import great_expectations as gx

    context = _gx_context()
    failures: list[str] = []
    passed: list[str] = []
    for table in tables:
        # the context lives for the process: a fresh source name per validation
        source_name = f"{stage}-{table.name}-{next(_names)}"
        asset = context.data_sources.add_pandas(source_name).add_dataframe_asset(table.name)
        batches = asset.add_batch_definition_whole_dataframe("all")
        suite = gx.ExpectationSuite(name=source_name)
        for expectation in table.expectations:
            suite.add_expectation(expectation)
        parts = [("", table.frame)] if isinstance(table.frame, pd.DataFrame) else table.frame
        kept, failed_parts, count = None, [], 0
        first_failure: dict[int, str] = {}  # expectation's position -> its first failure
        described: list[str] = []
        for part, frame in parts:
            result = batches.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
            count += 1
            described = [describe(item.expectation_config) for item in result.results]
            where = f"in {part}: " if part else ""
            for i, item in enumerate(result.results):
                if not item.success:
                    first_failure.setdefault(i, where + _evidence(item.result))
            if not result.success:
                failed_parts.append(part)
            if kept is None or kept.success:
                kept = result  # the first failing part's result, else the latest
        if kept is not None and keep_in is not None:
            write_result(kept, keep_in / RESULTS_DIR, table.name,
                         {"validated": count, "failed": failed_parts})
        for i, text in enumerate(described):
            if i in first_failure:
                failures.append(f"{table.name}: {text} -- {first_failure[i]}")
            else:
                passed.append(f"{table.name}: {text}")
    if failures:
        raise GateFailed(f"quality gate of stage '{stage}' failed:\n  - "
                         + "\n  - ".join(failures))
    log.info("quality gate %s: %d checks passed", stage, len(passed))
    return passed


def write_result(result: Any, folder: Path, name: str,
                 parts: dict[str, Any] | None = None) -> None:
    """``result`` as ``name.json`` (with ``parts``, when given) and as a GX Data Docs
    page ``name.html`` in ``folder``."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    folder.mkdir(parents=True, exist_ok=True)
    found = result.to_json_dict()
    if parts is not None:
        found["parts"] = parts
    (folder / f"{name}.json").write_text(json.dumps(found, indent=2, default=str) + "\n")
    page = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
    (folder / f"{name}.html").write_text(page)


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
