"""A scheduled Prefect deployment of the pipeline, cron and name from ``conf/deploy``.

Scheduled runs need a Prefect server and a process that executes them:

    prefect server start                                   # terminal 1 (UI on :4200)
    export PREFECT_API_URL=http://127.0.0.1:4200/api       # terminal 2
    python flows/deploy.py --serve                         # register + execute on schedule

Without ``--serve`` the deployment is only registered (``apply``), for a worker or a
later ``serve`` to pick up. Each run is ``dvc repro``: only stale stages rebuild.

The deployed flow, :func:`nightly`, rebuilds the project this file belongs to and takes
no folder as a parameter: whoever can reach the Prefect API may start a run (and choose
``force``), but cannot point ``dvc repro`` at a folder of their choice.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow

from crawl2chat import config, runtime
from crawl2chat.errors import ConfigError
from crawl2chat.paths import STAGES, project_root

PROJECT = Path(__file__).resolve().parents[1]  # flows/ is a folder of its project


@dataclass
class DeployCfg:
    """The ``deploy`` section of params.yaml."""

    name: str = "crawl2chat-nightly"
    cron: str = "0 3 * * *"
    timezone: str = "UTC"
    # attempts after a transient failure (not a failed gate), per stage; none by default
    retries: dict[str, int] = field(default_factory=dict)
    retry_delay_s: float = 30.0

    def __post_init__(self) -> None:
        for stage, count in self.retries.items():
            if stage not in STAGES or not isinstance(count, int) or count < 0:
                raise ConfigError(f"deploy.retries.{stage}: a stage of {list(STAGES)} "
                                  f"and a count >= 0, got {count!r}")


def load_cfg(root: Path) -> DeployCfg:
    return config.build(DeployCfg, config.load_params(root).get("deploy"), "deploy")


def _load(name: str, file: str) -> Any:
    from prefect.flows import load_flow_from_entrypoint

    # from the file beside this one: flows/ is a folder of the project, not a package
    return load_flow_from_entrypoint(f"{Path(__file__).with_name(file)}:{name}",
                                     use_placeholder_flow=False)


@flow(name="pipeline", description="crawl -> text -> tokens -> base -> sft via dvc repro, "
      "in the project the deployment was made from")
def nightly(force: bool = False) -> None:
    """The pipeline flow's body in :data:`PROJECT`, a root no caller can change."""
    _load("pipeline", "pipeline.py").fn(force=force, root=str(PROJECT))


def build_deployment(cfg: DeployCfg, root: Path) -> Any:
    """The pipeline as a RunnerDeployment on ``cfg.cron``, rebuilding ``root``: the project
    this file belongs to (any other is refused, as the deployment cannot be given one)."""
    from prefect.schedules import Cron

    if root.resolve() != PROJECT:
        raise ConfigError(f"{Path(__file__).resolve()} deploys its own project {PROJECT}, "
                          f"not {root}: run the deploy.py inside {root}/flows")
    return _load("nightly", "deploy.py").to_deployment(
        name=cfg.name, schedule=Cron(cfg.cron, timezone=cfg.timezone), tags=["crawl2chat"],
        description=f"crawl2chat pipeline in {PROJECT}, on cron '{cfg.cron}' ({cfg.timezone})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true",
                        help="stay running and execute the scheduled runs (Ctrl-C stops)")
    args = parser.parse_args(argv)
    runtime.configure()
    root = project_root()
    cfg = load_cfg(root)
    deployment = build_deployment(cfg, root)
    runtime.quiet_libraries()
    if args.serve:
        from prefect import serve

        serve(deployment)
        return 0
    deployment_id = deployment.apply()
    print(f"registered deployment pipeline/{cfg.name} ({deployment_id}) on cron "
          f"'{cfg.cron}' {cfg.timezone}; run `python flows/deploy.py --serve` to execute it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
