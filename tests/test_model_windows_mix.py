"""A pretraining mix: training windows drawn from several token arrays by weight or epochs,
and the base stage that trains on it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import stage_cfg

from crawl2chat.errors import ConfigError, InputError
from crawl2chat.model.windows import DataCfg, MixedWindows, MixEntry, TokenWindows, mix_weights
from crawl2chat.stages import base
from crawl2chat.tokenizer.train import train_bpe


def test_one_source_gives_exactly_the_plain_random_windows():
    tokens = np.arange(5000, dtype=np.uint16)
    plain = TokenWindows(tokens, 16, "random", 50, seed=3)
    mixed = MixedWindows([tokens], np.array([1.0]), 16, 50, seed=3)
    for i in range(50):
        assert torch.equal(plain[i]["input_ids"], mixed[i]["input_ids"])
        assert torch.equal(plain[i]["targets"], mixed[i]["targets"])


def test_windows_follow_the_weights_and_are_fixed_by_seed_and_index():
    low, high = np.zeros(1000, dtype=np.uint16), np.full(4000, 7, dtype=np.uint16)
    windows = MixedWindows([low, high], np.array([0.25, 0.75]), 8, 4000, seed=1)
    from_high = np.mean([int(windows[i]["input_ids"][0]) == 7 for i in range(4000)])
    assert from_high == pytest.approx(0.75, abs=0.03)
    again = MixedWindows([low, high], np.array([0.25, 0.75]), 8, 4000, seed=1)
    assert [again.source_of(i)[0] for i in range(200)] == [
        windows.source_of(i)[0] for i in range(200)]


def test_epochs_weigh_size_times_epochs_and_bad_entries_name_the_field():
    by_epochs = [MixEntry("web", epochs=1), MixEntry("wiki", epochs=3)]
    # 900 web tokens once and 100 wiki tokens three times: 900 : 300
    assert mix_weights(by_epochs, [900, 100]).tolist() == pytest.approx([0.75, 0.25])
    assert mix_weights([MixEntry("a", weight=2), MixEntry("b", weight=6)],
                       [10, 10]).tolist() == pytest.approx([0.25, 0.75])
    with pytest.raises(ConfigError, match=r"'wiki' needs one of weight or epochs"):
        MixEntry("wiki", weight=1, epochs=2)
    with pytest.raises(ConfigError, match="every source a weight, or every source epochs"):
        DataCfg(mix=[{"path": "a", "weight": 1}, {"path": "b", "epochs": 2}])
    with pytest.raises(ConfigError, match=r"base\.data\.mix\[0\]: unknown key\(s\) \['weigth'\]"):
        DataCfg(mix=[{"path": "a", "weigth": 1}])


TINY = ("base.model.n_embd=32", "base.model.block_size=32", "base.model.n_layer=1",
        "base.train.max_steps=6", "base.train.eval_every=6", "base.train.log_every=3",
        "base.train.warmup_steps=2", "base.train.checkpoint_every=0",
        "base.train.progress_bar=false", "base.prompts=['The']", "base.sample_tokens=4",
        "base.eval.passages=0", "base.eval.memorise_docs=0", "base.eval.bpb_windows=8")


def test_the_base_stage_trains_on_the_mix_and_records_it(tokens_folder, tmp_path):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copytree(tokens_folder, project / "data" / "tokens")
    shutil.copytree(tokens_folder, project / "data" / "tokens-wiki")  # same tokenizer
    cfg = base.resolve(stage_cfg("base", *TINY, "base.data.mix=[{path: data/tokens, epochs: 1},"
                                 "{path: data/tokens-wiki, epochs: 3}]"), project)
    assert base.external_inputs(cfg, project) == [
        (project / "data" / "tokens-wiki" / "train.bin").resolve()]
    out = tmp_path / "out"
    out.mkdir()
    metrics = base.run(cfg, project / "data" / "tokens", out)
    mix = json.loads(metrics["data_mix"])
    assert [(m["path"], m["share"]) for m in mix] == [("data/tokens", 0.25),
                                                      ("data/tokens-wiki", 0.75)]
    assert mix[1]["passes"] == pytest.approx(3 * mix[0]["passes"], rel=1e-3)
    assert "## Pretraining mix" in (out / "report.md").read_text()

    other = project / "data" / "tokens-other"
    shutil.copytree(tokens_folder, other)
    shutil.rmtree(other / "tokenizer")
    train_bpe(["quite another corpus " * 50], vocab_size=300).save(other / "tokenizer")
    cfg = base.resolve(stage_cfg("base", *TINY, "base.data.mix=[{path: data/tokens-other, "
                                 "weight: 1}]"), project)
    with pytest.raises(InputError, match=r"tokens-other was encoded with another tokenizer"):
        base.run(cfg, project / "data" / "tokens", tmp_path / "out")
