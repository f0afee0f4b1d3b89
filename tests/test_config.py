"""Composition of conf/ into params.yaml, presets, overrides and typed sections."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from crawl2chat import config, paths
from crawl2chat.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    return tmp_path


def test_every_preset_composes_with_one_section_per_stage(project: Path) -> None:
    for preset in ("demo", "smoke", "gpt2_124m"):
        tree = config.compose(project, [f"experiment={preset}"])
        assert set(paths.STAGES) <= set(tree), preset
        assert "experiment" not in tree


def test_presets_differ_and_demo_is_the_default(project: Path) -> None:
    default = config.compose(project, [])
    assert default == config.compose(project, ["experiment=demo"])
    assert default != config.compose(project, ["experiment=smoke"])


def test_overrides_are_saved_and_reused(project: Path) -> None:
    config.write_overrides(project, ["experiment=smoke", "deploy.cron=5 4 * * *"])
    assert config.read_overrides(project) == ["experiment=smoke", "deploy.cron=5 4 * * *"]
    tree = config.compose(project)
    assert tree["deploy"]["cron"] == "5 4 * * *"
    config.write_params(project, tree)
    text = (project / "params.yaml").read_text()
    assert text.startswith(config.HEADER)
    assert yaml.safe_load(text) == tree


def test_write_params_keeps_file_untouched_when_unchanged(project: Path) -> None:
    tree = config.compose(project, [])
    file = config.write_params(project, tree)
    before = file.stat().st_mtime_ns
    config.write_params(project, tree)
    assert file.stat().st_mtime_ns == before


def test_bad_override_is_a_config_error(project: Path) -> None:
    with pytest.raises(ConfigError, match="nosuchgroup"):
        config.compose(project, ["nosuchgroup=1"])


@dataclass
class Inner:
    lr: float = 1e-3
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    steps: int = 10
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None


def test_build_typed_sections() -> None:
    cfg = config.build(Outer, {"steps": 3, "inner": {"lr": 1, "names": ["a"]}}, "x")
    assert cfg == Outer(steps=3, inner=Inner(lr=1.0, names=["a"]), limit=None)
    assert isinstance(cfg.inner.lr, float)


@pytest.mark.parametrize(("data", "message"), [
    ({"stepz": 3}, r"x: unknown key\(s\) \['stepz'\]"),
    ({"steps": "3"}, r"x.steps: expected int"),
    ({"steps": True}, r"x.steps: expected int"),
    ({"inner": {"lr": "fast"}}, r"x.inner.lr: expected float"),
    ({"inner": 3}, r"x.inner: expected a mapping"),
])
def test_build_names_the_bad_field(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.build(Outer, data, "x")


@dataclass
class Bound:
    steps: int = 10
    root: Path = field(default=Path("."), metadata=config.NOT_A_PARAM)


def test_a_field_resolve_sets_is_neither_read_from_nor_written_as_params() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['root'\]; known: \['steps'\]"):
        config.build(Bound, {"steps": 3, "root": "/elsewhere"}, "x")
    assert config.as_params(Bound(steps=3, root=Path("/project"))) == {"steps": 3}
    assert config.as_params(Outer()) == {"steps": 10, "inner": {"lr": 1e-3, "names": []},
                                         "limit": None}
