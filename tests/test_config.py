"""Composition of conf/ into params.yaml, presets, overrides and typed sections."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from crawl2chat import config, paths
from crawl2chat.errors import ConfigError
from crawl2chat.model.config import TrainCfg
from crawl2chat.stages import base, sft

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(conf_project: Path) -> Path:
    return conf_project


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


def _disagreements(cls: type, section: dict[str, Any], where: str) -> Iterator[str]:
    """Each field of dataclass ``cls`` (nested ones field by field) that ``section`` does
    not set, or whose default differs from the value ``section`` gives it."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{where}.{f.name}"
        if f.metadata == config.NOT_A_PARAM:
            continue  # set by the runner (resolve), never by params
        if f.name not in section:
            yield f"{name}: not set in conf"
        elif dataclasses.is_dataclass(hints[f.name]):
            yield from _disagreements(hints[f.name], section[f.name], name)
        elif f.default is not dataclasses.MISSING and f.default != section[f.name]:
            yield f"{name}: default {f.default!r}, conf {section[f.name]!r}"
        elif (f.default_factory is not dataclasses.MISSING
              and f.default_factory() != section[f.name]):
            yield f"{name}: default {f.default_factory()!r}, conf {section[f.name]!r}"


def test_base_dataclass_defaults_are_the_conf_base_values(project: Path) -> None:
    """conf/base/default.yaml sets every field of base.Cfg, its model, train and eval, and
    the dataclasses' defaults are those values: one owner each, changed on both sides."""
    section = config.compose(project, ["~experiment"])["base"]  # no preset over it
    assert list(_disagreements(base.Cfg, section, "base")) == []


def test_sft_dataclass_defaults_are_the_conf_sft_values(project: Path) -> None:
    """The same for sft, except what conf/sft alone owns: its data sources and prompt
    lists (no useful default), and ``train``, where conf/sft states only what fine-tuning
    changes and the rest are TrainCfg's (base's) defaults."""
    section = config.compose(project, ["~experiment"])["sft"]
    owned_by_conf = ("sft.data:", "sft.train.", "sft.eval.prompts:")
    assert [d for d in _disagreements(sft.Cfg, section, "sft")
            if not d.startswith(owned_by_conf)] == []


def test_changing_one_side_only_is_caught(project: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    conf_changed = config.compose(project, ["~experiment", "base.train.lr=0.002"])["base"]
    assert list(_disagreements(base.Cfg, conf_changed, "base")) == [
        "base.train.lr: default 0.001, conf 0.002"]
    section = config.compose(project, ["~experiment"])["base"]
    monkeypatch.setattr(TrainCfg.__dataclass_fields__["warmup_steps"], "default", 31)
    assert list(_disagreements(base.Cfg, section, "base")) == [
        "base.train.warmup_steps: default 31, conf 30"]
    del section["model"]["mlp"]
    assert "base.model.mlp: not set in conf" in _disagreements(base.Cfg, section, "base")


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
