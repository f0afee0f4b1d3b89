"""Great Expectations gates between stages.

Each stage has a module ``crawl2chat.quality.<stage>`` with
``tables(out_dir, cfg) -> list[Table]``: the data frames that describe its output and
the expectations they must meet. :func:`gate` validates them all with an ephemeral GX
context and raises :class:`crawl2chat.errors.GateFailed` listing every failed expectation;
the validation results (JSON and Data Docs HTML) are kept in ``out_dir/quality/``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from crawl2chat.quality.suite import validate


def gate(stage: str, out_dir: Path, cfg: Any) -> list[str]:
    """Validate ``stage``'s output in ``out_dir``; return the names of checks that passed."""
    module = importlib.import_module(f"crawl2chat.quality.{stage}")
    return validate(stage, module.tables(out_dir, cfg), keep_in=out_dir)
