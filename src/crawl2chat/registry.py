"""The MLflow model registry: a model version per base/sft run, and the ``champion`` alias.

In: the active stage run, the stage's output folder, its metrics and inputs, and the
rule of ``params.yaml``'s ``registry.champion.STAGE`` (``metric`` and ``mode``). Out: the
``hf/`` folder (the model folder when no HF export exists) logged as an MLflow model of
the run, its metrics linked to the run's input datasets, registered as a new version of
``crawl2chat-STAGE``; the alias ``champion`` set to it when it beats the current one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawl2chat.errors import ConfigError

log = logging.getLogger("crawl2chat")
REGISTERED = ("base", "sft")  # the stages whose output is a model
CHAMPION = "champion"


def model_name(stage: str) -> str:
    return f"crawl2chat-{stage}"


@dataclass(frozen=True)
class ChampionRule:
    """Which metric decides the champion, and whether lower (``min``) or higher wins."""

    metric: str
    mode: str = "min"

    @classmethod
    def from_params(cls, params: dict[str, Any], stage: str) -> ChampionRule | None:
        entry = params.get("registry", {}).get("champion", {}).get(stage)
        if entry is None:
            return None
        if not isinstance(entry, dict) or "metric" not in entry:
            raise ConfigError(f"registry.champion.{stage}: give {{metric: NAME, mode: min|max}}")
        rule = cls(str(entry["metric"]), str(entry.get("mode", "min")))
        if rule.mode not in ("min", "max"):
            raise ConfigError(f"registry.champion.{stage}.mode: min or max, got {rule.mode!r}")
        return rule

    def beats(self, new: float, old: float) -> bool:
        return new < old if self.mode == "min" else new > old


def register(stage: str, run_id: str, out_dir: Path, metrics: dict[str, float],
             datasets: list[Any], rule: ChampionRule | None) -> str:
    """Log and register the model of this run; return the new version number."""
    import mlflow

    folder = out_dir / "hf" if (out_dir / "hf").is_dir() else out_dir
    model = mlflow.initialize_logged_model(name=stage, source_run_id=run_id,
                                           model_type="crawl2chat-hf",
                                           tags={"folder": folder.name})
    mlflow.MlflowClient().log_model_artifacts(model.model_id, str(folder))
    mlflow.finalize_logged_model(model.model_id, "READY")
    for dataset in datasets:  # the figures, linked to the data the model was made from
        mlflow.log_metrics(metrics, model_id=model.model_id, dataset=dataset)
    version = mlflow.register_model(f"models:/{model.model_id}", model_name(stage),
                                    tags={"run_id": run_id})
    if rule is not None:
        _crown(stage, version.version, metrics, rule)
    return str(version.version)


def _crown(stage: str, version: str, metrics: dict[str, float], rule: ChampionRule) -> None:
    """Point ``champion`` at ``version`` if it beats the current champion by ``rule``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    name = model_name(stage)
    if rule.metric not in metrics:
        raise ConfigError(f"registry.champion.{stage}.metric: the {stage} stage measures no "
                          f"{rule.metric!r}; it measures {', '.join(sorted(metrics))}")
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is not None:
        old = client.get_run(current.run_id).data.metrics.get(rule.metric)
        if old is not None and not rule.beats(metrics[rule.metric], old):
            log.info("%s version %s: %s %.4g does not beat the champion's (version %s) %.4g",
                     name, version, rule.metric, metrics[rule.metric], current.version, old)
            return
    client.set_registered_model_alias(name, CHAMPION, version)
    log.info("%s version %s is the %s (%s %.4g)", name, version, CHAMPION, rule.metric,
             metrics[rule.metric])
