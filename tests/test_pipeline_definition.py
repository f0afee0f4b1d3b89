"""dvc.yaml and the code agree: same stages, same order, same output folders."""

from __future__ import annotations

from pathlib import Path

import yaml

from crawl2chat import paths

REPO = Path(__file__).resolve().parents[1]


def _dvc() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_stages_and_outputs_match_paths() -> None:
    stages = _dvc()
    assert list(stages) == ["compose", *paths.STAGES]
    for name in paths.STAGES:
        assert stages[name]["cmd"] == f"crawl2chat stage {name}"
        assert stages[name]["outs"] == [paths.STAGE_OUTPUTS[name]]
        assert stages[name]["params"] == [name]
        metrics = stages[name]["metrics"][0]
        assert list(metrics) == [f"{paths.METRICS_DIR}/{name}.json"]


def test_chain_is_strictly_linear() -> None:
    stages = _dvc()
    assert stages["compose"]["outs"][0] == {paths.PARAMS_FILE: {"cache": False}}
    for previous, name in zip(paths.STAGES, paths.STAGES[1:], strict=False):
        assert paths.STAGE_OUTPUTS[previous] in stages[name]["deps"], name
        # only its predecessor's output among the pipeline outputs
        outs = set(paths.STAGE_OUTPUTS.values())
        assert [d for d in stages[name]["deps"] if d in outs] == [paths.STAGE_OUTPUTS[previous]]


def test_stage_code_is_a_dependency() -> None:
    stages = _dvc()
    for name in paths.STAGES:
        assert f"src/crawl2chat/stages/{name}.py" in stages[name]["deps"], name
        assert f"src/crawl2chat/quality/{name}.py" in stages[name]["deps"], name
        outputs = set(paths.STAGE_OUTPUTS.values())
        for dep in stages[name]["deps"]:
            assert dep in outputs or (REPO / dep).exists(), f"{name} depends on missing {dep}"
