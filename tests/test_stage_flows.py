"""The stage flows' retry policy: ``deploy.retries.STAGE`` attempts after a failure that
may pass (a network error), none after a failed quality gate, bad config or bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.states import Failed
from prefect.utilities.importtools import import_object

from crawl2chat import paths
from crawl2chat.errors import ConfigError, GateFailed, InputError

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / paths.FLOWS_DIR


def _params(root: Path, deploy: dict) -> None:
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump({"deploy": deploy}))


@pytest.mark.parametrize(("error", "retried"), [
    (OSError("connection reset"), True), (TimeoutError("read timed out"), True),
    (GateFailed("quality gate of stage 'crawl' failed"), False),
    (ConfigError("crawl.max_records: must be >= 1"), False),
    (InputError("record 3: no url"), False)])
def test_only_failures_that_may_pass_are_retried(error: Exception, retried: bool) -> None:
    transient = import_object(f"{FLOWS / 'stages.py'}:_transient")
    assert transient(None, None, Failed(data=error)) is retried


def test_retries_are_read_per_stage_from_the_deploy_section(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRAWL2CHAT_ROOT", str(tmp_path))
    _params(tmp_path, {"retries": {"crawl": 3}, "retry_delay_s": 5})
    retries = import_object(f"{FLOWS / 'stages.py'}:_retries")
    assert retries("crawl") == (3, 5.0)
    assert retries("base") == (0, 5.0)
    _params(tmp_path, {"retries": {"crawll": 1}})
    with pytest.raises(ConfigError, match=r"deploy.retries.crawll"):
        retries("crawl")


def test_the_shipped_config_retries_the_crawl_only() -> None:
    deploy = yaml.safe_load((REPO / "conf/deploy/default.yaml").read_text())
    assert deploy["retries"] == {"crawl": 2}
    assert yaml.safe_load((REPO / paths.PARAMS_FILE).read_text())["deploy"]["retries"] == {
        "crawl": 2}
