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
    # our own log lines (training steps, stage progress) go to the flow run's log too;
    # outside a flow run there is no run to send them to, and nothing to warn about
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "crawl2chat")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    quiet_libraries()


_CHATTY = ("alembic", "mlflow", "lightning", "pytorch_lightning", "trafilatura",
           "great_expectations", "urllib3", "httpx", "fsspec", "numexpr")
# Prefect logs every failed run with a full traceback; the CLI already reports the
# error in one line, so its run loggers write to the run's log (the UI) and not to the
# console: they keep their API handler and stop propagating to the root's console one.
_PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def quiet_libraries() -> None:
    """Keep logs to what a person needs: our progress, not every library's chatter.

    Libraries such as Lightning set their own loggers' levels when imported, so this is
    called again after those imports (it is cheap and idempotent).
    """
    for name in {*logging.root.manager.loggerDict, *_CHATTY}:
        if name.startswith(_CHATTY):
            logging.getLogger(name).setLevel(logging.WARNING)
    for name in _PREFECT_RUN_LOGGERS:  # their children's records pass through them
        logging.getLogger(name).propagate = False
    for pattern in (".*does not have many workers.*", ".*torch.tensor results are.*",
                    ".*Checkpoint directory.*exists.*", ".*LeafSpec.*", ".*treespec.*",
                    ".*litlogger.*", ".*isinstance.*LeafSpec.*"):
        warnings.filterwarnings("ignore", message=pattern)


def process_rank() -> int:
    """This process's global rank in a multi-process run (0 when there is none).

    torchrun sets ``RANK``; SLURM ``SLURM_PROCID``; Lightning's own launcher gives the
    processes it starts ``LOCAL_RANK`` (single node, so local rank is the global one).
    """
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0
