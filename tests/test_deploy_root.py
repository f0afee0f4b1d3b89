"""The scheduled deployment rebuilds its own project: the folder is no parameter that a
caller of the Prefect API could set."""

from __future__ import annotations

import inspect
import runpy
from pathlib import Path

import pytest

from crawl2chat.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_deployment_takes_no_root_and_the_flow_refuses_one(tmp_path: Path) -> None:
    deploy = runpy.run_path(str(REPO / "flows/deploy.py"))
    cfg = deploy["DeployCfg"]()
    deployment = deploy["build_deployment"](cfg, REPO)
    assert deployment.parameters == {}
    assert list(inspect.signature(deploy["nightly"].fn).parameters) == ["force"]
    assert deployment.entrypoint.endswith("deploy.py:nightly")
    assert deploy["PROJECT"] == REPO
    with pytest.raises(Exception, match="root"):  # what Prefect checks a run's parameters with
        deploy["nightly"].validate_parameters({"root": str(tmp_path)})
    with pytest.raises(ConfigError, match="deploys its own project"):
        deploy["build_deployment"](cfg, tmp_path)
