"""A scheduled Prefect deployment of the pipeline, cron and name from ``conf/deploy``.

Scheduled runs need a Prefect server and a process that executes them:

    prefect server start                                   # terminal 1 (UI on :4200)
    export PREFECT_API_URL=http://127.0.0.1:4200/api       # terminal 2
    python flows/deploy.py --serve                         # register + execute on schedule

Without ``--serve`` the deployment is only registered (``apply``), for a worker or a
later ``serve`` to pick up. Each run is ``dvc repro``: only stale stages rebuild.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat import config, runtime
from crawl2chat.errors import ConfigError
from crawl2chat.paths import STAGES, project_root


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


def build_deployment(cfg: DeployCfg, root: Path) -> Any:
    """The pipeline flow as a RunnerDeployment on ``cfg.cron``, rebuilding ``root``."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron

    # the flow file beside this one: flows/ is a folder of the project, not a package
    pipeline = load_flow_from_entrypoint(f"{Path(__file__).with_name('pipeline.py')}:pipeline",
                                         use_placeholder_flow=False)
    return pipeline.to_deployment(
        name=cfg.name, schedule=Cron(cfg.cron, timezone=cfg.timezone),
        parameters={"root": str(root)}, tags=["crawl2chat"],
        description=f"crawl2chat pipeline in {root}, on cron '{cfg.cron}' ({cfg.timezone})")


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
