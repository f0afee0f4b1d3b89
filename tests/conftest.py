"""Test-wide settings: run state (MLflow store, Prefect home) in a temp folder, offline."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_STATE = Path(tempfile.mkdtemp(prefix="crawl2chat-tests-"))
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_STATE / 'mlflow.db'}"
os.environ["PREFECT_HOME"] = str(_STATE / "prefect")

from crawl2chat import runtime  # noqa: E402

runtime.configure()

REPO = Path(__file__).resolve().parents[1]
