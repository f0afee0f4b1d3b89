"""``crawl2chat compose`` saves nothing that does not compose and type-check, and writes
``params.yaml``, ``conf/overrides.yaml`` and metrics whole (temporary file + rename)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawl2chat import config, paths
from crawl2chat.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(conf_project: Path) -> Path:
    return conf_project


def _compose(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
             *overrides: str) -> tuple[int, str, str]:
    """``crawl2chat compose OVERRIDES`` in ``project``: exit code, stdout, stderr."""
    monkeypatch.chdir(project)
    monkeypatch.delenv("CRAWL2CHAT_ROOT", raising=False)
    try:
        code = main(["compose", *overrides])
    except SystemExit as exit_:  # how the CLI reports an error: one line, exit status 2
        code = int(exit_.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_failed_compose_saves_neither_the_override_nor_params(
        project: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _compose(project, capsys, monkeypatch, "experiment=smoke")[0] == 0
    saved = (project / paths.OVERRIDES_FILE).read_text()
    params = (project / paths.PARAMS_FILE).read_text()
    for overrides, needle in ((["experiment=smok"], "experiment=smok"),
                              (["experiment=smoke", "base.train.lr=abc"], "base.train.lr"),
                              (["experiment=smoke", "text.min_chars=many"], "text.min_chars"),
                              (["experiment=smoke", "sft.train.max_steps=0"], "max_steps")):
        code, _, err = _compose(project, capsys, monkeypatch, *overrides)
        assert code != 0 and needle in err, err
        assert "Traceback" not in err
        assert (project / paths.OVERRIDES_FILE).read_text() == saved
        assert (project / paths.PARAMS_FILE).read_text() == params
    # and the DVC stage's `compose --saved` still works with what was saved
    code, out, _ = _compose(project, capsys, monkeypatch, "--saved")
    assert code == 0 and "experiment=smoke" in out
    assert not list(project.rglob("*.tmp"))


def test_files_are_replaced_whole_not_rewritten_in_place(project: Path) -> None:
    tree = config.compose(project, [])
    file = config.write_params(project, tree)
    with file.open() as reader:  # a reader of the old file keeps reading the old file
        tree["base"]["sample_tokens"] += 1
        config.write_params(project, tree)
        assert "sample_tokens: " + str(tree["base"]["sample_tokens"] - 1) in reader.read()
    assert f"sample_tokens: {tree['base']['sample_tokens']}" in file.read_text()
    with (project / "conf").joinpath("overrides.yaml").open("w") as f:
        f.write("overrides: []\n")
    with (project / paths.OVERRIDES_FILE).open() as reader:
        config.write_overrides(project, ["experiment=smoke"])
        assert reader.read() == "overrides: []\n"
    assert config.read_overrides(project) == ["experiment=smoke"]
    assert sorted(p.name for p in (project / "conf").iterdir() if p.name.startswith(".")) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    file = tmp_path / "metrics.json"
    file.write_text("old")
    with pytest.raises(TypeError):
        config.write_atomic(file, 42)  # type: ignore[arg-type]  # fails mid-write
    assert file.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [file.name]
