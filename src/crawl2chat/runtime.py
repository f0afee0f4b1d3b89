"""Process-wide runtime settings: telemetry off, run state inside the project.

Call :func:`configure` before importing MLflow, Lightning or Prefect. It only sets
environment variables that are not already set, so a user can still point MLflow
or Prefect at a shared server.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from crawl2chat import paths

_OFFLINE = {
    # no telemetry, no hub downloads
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
    # lightning's tips and the 'litlogger' advert clutter the logs
    "POSSIBLE_USER_WARNING": "off",
}


def configure(root: Path | None = None) -> None:
    """Set the environment for a crawl2chat process rooted at ``root``."""
    root = (root or paths.project_root()).resolve()
    for key, value in _OFFLINE.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    os.environ.setdefault("PREFECT_HOME", str(root / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    quiet_libraries()


def quiet_libraries() -> None:
    """Keep logs to what a person needs: our progress, not every library's chatter."""
    for name in ("alembic", "mlflow", "lightning", "lightning.pytorch", "trafilatura",
                 "great_expectations", "urllib3", "httpx", "fsspec", "numexpr"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*torch.tensor results are.*",
                    ".*Checkpoint directory.*exists.*", ".*LeafSpec.*", ".*treespec.*",
                    ".*litlogger.*", ".*isinstance.*LeafSpec.*"):
        warnings.filterwarnings("ignore", message=pattern)
