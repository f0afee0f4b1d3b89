"""A Dask scheduler's results are unpickled here: a remote one needs TLS, or an explicit
``trust_scheduler`` that is warned about."""

from __future__ import annotations

import logging

import pytest

from crawl2chat import config
from crawl2chat.errors import ConfigError
from crawl2chat.parallel import RunnerCfg
from crawl2chat.text.recipe import Cfg as TextCfg


@pytest.mark.parametrize("address", ["tls://10.0.0.5:8786", "tcp://127.0.0.1:8786",
                                     "localhost:8786", "tcp://[::1]:8786", "inproc://x/1"])
def test_tls_and_loopback_schedulers_are_accepted(address: str) -> None:
    assert RunnerCfg(kind="dask", address=address).address == address


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "10.0.0.5:8786",
                                     "tcp://scheduler.example:8786", "ucx://10.0.0.5:8786"])
def test_a_remote_plain_scheduler_is_refused_unless_trusted_then_warned(
        address: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match=r"text\.runner\.address.*tls://.*trust_scheduler"):
        RunnerCfg(kind="dask", address=address)
    with caplog.at_level(logging.WARNING, logger="crawl2chat"):
        RunnerCfg(kind="dask", address=address, trust_scheduler=True)
    assert "unpickled here" in caplog.text and address in caplog.text


def test_the_params_section_is_checked_when_built() -> None:
    section = {"runner": {"kind": "dask", "address": "tcp://10.1.2.3:8786"}}
    with pytest.raises(ConfigError, match="tls://"):
        config.build(TextCfg, section, "text")
