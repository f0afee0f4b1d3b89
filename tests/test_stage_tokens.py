"""The tokens stage on tiny text-stage shards: shards, meta, split, report, GX gate."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import stage_cfg

from crawl2chat.digest import folder_digest
from crawl2chat.errors import ConfigError, GateFailed, InputError
from crawl2chat.quality import tokens as quality_tokens
from crawl2chat.quality.suite import validate
from crawl2chat.stages.tokens import Cfg, external_inputs, resolve, run
from crawl2chat.tokenizer.shards import ValRule, open_split, read_meta, split_hash
from crawl2chat.tokenizer.tokenizer import Tokenizer

SENTENCES = [
    "The Debian project maintains a free operating system.",
    "Packages are installed with apt, and dpkg keeps the database.",
    "A web server answers requests; the proxy caches its pages.",
    "Python's standard library has modules for almost everything.",
    "Das Handbuch erklärt, wie man einen Server einrichtet. 😀",
]
SECRET = "qxjqxjqxj"  # a word only one val document holds


def _doc_ids(n: int, cfg: Cfg) -> list[str]:
    ids = [f"doc-{i:03d}" for i in range(n)]
    # one id that lands in val, for the document holding SECRET
    ids[-1] = next(f"val-{k}" for k in range(1000)
                   if split_hash(f"val-{k}", cfg.seed) < cfg.val_fraction)
    return ids


def _write_documents(folder: Path, cfg: Cfg, n: int = 60) -> list[tuple[str, str]]:
    """Write the text stage's shards (its schema) with n usable rows + 3 bad ones: two
    shards, so the stage reads across a shard boundary."""
    ids = _doc_ids(n, cfg)
    texts = [f"Document {i}. " + " ".join(SENTENCES[(i + k) % 5] for k in range(4))
             for i in range(n - 1)] + [f"Only here: {SECRET} " * 30]
    frame = pd.DataFrame({
        "doc_id": [*ids, None, "empty-text", "null-text"],
        "url": [f"https://example.org/{i}" for i in range(n + 3)],
        "warc_file": "crawl-00000.warc.gz",
        "lang": "en",
        "lang_score": 0.99,
        "text": [*texts, "skipped: no doc_id", "", None],
    })
    folder.mkdir(parents=True, exist_ok=True)
    half = len(frame) // 2
    frame.iloc[:half].to_parquet(folder / "documents-00000.parquet", index=False)
    frame.iloc[half:].to_parquet(folder / "documents-00001.parquet", index=False)
    return list(zip(ids, texts, strict=True))


# conf/'s smoke run, with a small vocabulary and a larger val share for 60 documents
CFG: Cfg = stage_cfg("tokens", "tokens.vocab_size=320", "tokens.val_fraction=0.2",
                     "tokens.seed=3")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[tuple[str, str]]]:
    root = tmp_path_factory.mktemp("tokens")
    docs = _write_documents(root / "text", CFG)
    out = root / "out"
    out.mkdir()
    return out, run(CFG, root / "text", out), docs


def _documents(out: Path, split: str) -> list[str]:
    """The split's documents, decoded, cut at <|bos|>."""
    tok = Tokenizer.load(out / "tokenizer")
    ids = np.asarray(open_split(out, split))
    starts = np.flatnonzero(ids == 0).tolist()
    return [tok.decode(ids[s + 1:e].tolist()) for s, e in zip(starts, [*starts[1:], len(ids)],
                                                                 strict=True)]


def test_metrics_and_meta_agree(stage: tuple[Path, dict, list]) -> None:
    out, metrics, docs = stage
    meta = read_meta(out)
    assert metrics["records"] == len(docs) == meta["train_documents"] + meta["val_documents"]
    assert metrics["skipped"] == 3
    assert metrics["tokens"] == meta["train_tokens"] + meta["val_tokens"]
    assert metrics["vocab_size"] == meta["vocab_size"] == 320
    assert meta["dtype"] == "uint16" and meta["bos_id"] == 0
    assert 1.0 < metrics["bytes_per_token"] == meta["val_bytes_per_token"]
    for split in ("train", "val"):
        shard = open_split(out, split)
        assert shard.dtype == np.uint16 and len(shard) == meta[f"{split}_tokens"] > 0
        assert (out / f"{split}.bin").stat().st_size == 2 * len(shard)
        assert shard[0] == 0 and int((shard == 0).sum()) == meta[f"{split}_documents"]
    report = (out / "report.md").read_text()
    assert "bytes/token" in report and "<·|·" in report


def test_report_compares_with_gpt2_and_cl100k(stage: tuple[Path, dict, list]) -> None:
    out, metrics, _ = stage
    ours, gpt2, cl100k = (metrics[f"val_bytes_per_token_{name}"]
                          for name in ("ours", "gpt2", "cl100k"))
    assert min(ours, gpt2, cl100k) > 1.0
    assert ours == pytest.approx(metrics["bytes_per_token"], rel=0.2)  # same text, minus bos
    report = (out / "report.md").read_text()
    assert f"| GPT-2 | 50257 | {gpt2:.3f} |" in report
    assert f"| GPT-4 (cl100k) | 100277 | {cl100k:.3f} |" in report
    assert (out / "tokenizer" / "tokenizer_config.json").is_file()


def test_split_is_by_document_and_keeps_every_text(stage: tuple[Path, dict, list]) -> None:
    out, _, docs = stage
    expected_val = sorted(t for i, t in docs if split_hash(i, CFG.seed) < CFG.val_fraction)
    expected_train = sorted(t for i, t in docs if split_hash(i, CFG.seed) >= CFG.val_fraction)
    assert sorted(_documents(out, "val")) == expected_val
    assert sorted(_documents(out, "train")) == expected_train
    assert expected_val and expected_train


def test_tokenizer_never_sees_val_documents(stage: tuple[Path, dict, list]) -> None:
    out, _, _ = stage
    tok = Tokenizer.load(out / "tokenizer")
    # SECRET occurs 30 times in a val document: trained on it, BPE would merge it
    assert len(tok.encode(SECRET)) == len(SECRET)


def test_run_is_deterministic_and_sample_is_capped(stage: tuple[Path, dict, list],
                                                   tmp_path: Path) -> None:
    out, _, _ = stage
    again = tmp_path / "again"
    again.mkdir()
    run(CFG, out.parent / "text", again)
    for name in ("train.bin", "val.bin", "meta.json", "tokenizer/tokenizer.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    capped = tmp_path / "capped"
    capped.mkdir()
    metrics = run(Cfg(vocab_size=320, val_fraction=0.2, seed=3, max_train_bytes=2000),
                  out.parent / "text", capped)
    # about 2000 bytes of train text, drawn by hash: a handful of the ~50 train documents
    assert 800 < metrics["tokenizer_sample_bytes"] < 4000
    assert "cap 2000" in (capped / "report.md").read_text()
    assert metrics["records"] == 60


def test_gate_passes_on_good_output(stage: tuple[Path, dict, list]) -> None:
    out, _, _ = stage
    passed = validate("tokens", quality_tokens.tables(out, CFG))
    assert len(passed) >= 10


def _corrupt_id(folder: Path) -> None:
    ids = np.memmap(folder / "val.bin", dtype=np.uint16, mode="r+")
    ids[5] = 320  # == vocab size: no such token


def _truncate(folder: Path) -> None:
    data = (folder / "train.bin").read_bytes()
    (folder / "train.bin").write_bytes(data[:-2])


def _drop_bos(folder: Path) -> None:
    ids = np.memmap(folder / "train.bin", dtype=np.uint16, mode="r+")
    ids[0] = 100


def _empty_val(folder: Path) -> None:
    (folder / "val.bin").write_bytes(b"")
    meta = json.loads((folder / "meta.json").read_text())
    meta |= {"val_tokens": 0, "val_documents": 0}
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(("corrupt", "expected"), [
    (_corrupt_id, "max_id"),
    (_truncate, "column_A='file_tokens'"),
    (_drop_bos, "first_id"),
    (_drop_bos, "column_A='bos_count'"),
    (_empty_val, "column='documents', min_value=1"),
])
def test_gate_fails_on_corrupted_shards(stage: tuple[Path, dict, list], tmp_path: Path,
                                        corrupt, expected: str) -> None:
    out, _, _ = stage
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    corrupt(bad)
    with pytest.raises(GateFailed, match="quality gate of stage 'tokens' failed") as err:
        validate("tokens", quality_tokens.tables(bad, CFG))
    assert expected in str(err.value)


def test_gate_fails_when_shards_do_not_match_the_tokenizer(stage: tuple[Path, dict, list],
                                                           tmp_path: Path) -> None:
    out, _, _ = stage
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    # a tokenizer with fewer merges decodes the same ids to other text
    other = tmp_path / "other"
    other.mkdir()
    run(Cfg(vocab_size=280, val_fraction=0.2, seed=3), out.parent / "text", other)
    shutil.copytree(other / "tokenizer", bad / "tokenizer", dirs_exist_ok=True)
    with pytest.raises(GateFailed, match="same_ids"):
        validate("tokens", quality_tokens.tables(bad, CFG))


def test_gate_fails_when_the_exported_tokenizer_json_disagrees(stage: tuple[Path, dict, list],
                                                              tmp_path: Path) -> None:
    out, _, _ = stage
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    file = bad / "tokenizer" / "tokenizer.json"
    data = json.loads(file.read_text())
    data["model"]["merges"] = data["model"]["merges"][:5]  # HF would merge far less
    data["model"]["ignore_merges"] = False
    file.write_text(json.dumps(data))
    with pytest.raises(GateFailed, match="hf_same_ids"):
        validate("tokens", quality_tokens.tables(bad, CFG))


def test_bad_inputs_and_config_name_the_problem(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=r"no documents-00000\.parquet"):
        run(CFG, tmp_path / "nowhere", out)
    (tmp_path / "t1").mkdir()
    pd.DataFrame({"doc_id": ["a"], "body": ["x"]}).to_parquet(
        tmp_path / "t1/documents-00000.parquet")
    with pytest.raises(InputError, match=r"missing column\(s\) \['text'\]"):
        run(CFG, tmp_path / "t1", out)
    (tmp_path / "t2").mkdir()
    pd.DataFrame({"doc_id": ["a", "b"], "text": ["only one", ""]}).to_parquet(
        tmp_path / "t2/documents-00000.parquet")
    with pytest.raises(InputError, match="1 document"):
        run(CFG, tmp_path / "t2", out)
    (tmp_path / "t3").mkdir()
    (tmp_path / "t3/documents-00000.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="cannot read it as parquet"):
        run(CFG, tmp_path / "t3", out)
    with pytest.raises(ConfigError, match=r"tokens\.vocab_size"):
        run(Cfg(vocab_size=100), tmp_path / "t2", out)
    with pytest.raises(ConfigError, match=r"tokens\.val_fraction"):
        run(Cfg(val_fraction=1.0), tmp_path / "t2", out)
    with pytest.raises(InputError, match="the val split has no documents"):
        (out / "meta.json").write_text(json.dumps({"dtype": "uint16", "val_tokens": 0}))
        (out / "val.bin").write_bytes(b"")
        open_split(out, "val")


def test_a_second_text_folder_reuses_the_tokenizer_for_a_mix(stage: tuple[Path, dict, list],
                                                               tmp_path: Path) -> None:
    first = stage[0]
    _write_documents(tmp_path / "text2", CFG, n=40)  # another corpus, another size
    trained = tmp_path / "trained"
    trained.mkdir()
    run(CFG, tmp_path / "text2", trained)
    # trained on the second text, the vocabulary differs: base.data.mix would refuse it
    assert folder_digest(trained / "tokenizer") != folder_digest(first / "tokenizer")

    (tmp_path / "project").mkdir()
    shutil.copytree(first / "tokenizer", tmp_path / "project/vocab")
    cfg = resolve(replace(CFG, tokenizer="vocab/tokenizer.json"), tmp_path / "project")
    reused = tmp_path / "reused"
    reused.mkdir()
    metrics = run(cfg, tmp_path / "text2", reused)
    assert folder_digest(reused / "tokenizer") == folder_digest(first / "tokenizer")
    assert metrics["tokenizer_sample_bytes"] == 0 and metrics["vocab_size"] == 320
    assert "Reused from" in (reused / "report.md").read_text()
    assert validate("tokens", quality_tokens.tables(reused, cfg))
    assert _documents(reused, "train")  # encoded with the reused vocabulary, decodable
    # the file is an input: fingerprinted in the manifest, checked against dvc.yaml deps
    project, file = tmp_path / "project", (tmp_path / "project/vocab/tokenizer.json").resolve()
    assert external_inputs(cfg, project) == [file]
    assert external_inputs(Cfg(tokenizer="vocab"), project) == [file]
    assert external_inputs(Cfg(tokenizer=str(first)), project) == [  # a tokens output folder
        (first / "tokenizer/tokenizer.json").resolve()]
    assert external_inputs(Cfg(), project) == []
    with pytest.raises(InputError, match=r"tokens\.tokenizer: .*nowhere is not a"):
        external_inputs(Cfg(tokenizer="nowhere"), tmp_path / "project")


def test_val_rule_never_leaves_a_split_empty() -> None:
    ids = [f"doc-{i}" for i in range(20)]
    hashes = {i: split_hash(i, 0) for i in ids}
    none_below = ValRule.from_ids(ids, 1e-9, 0)  # no hash is that small: the lowest goes to val
    assert [i for i in ids if none_below.is_val(i)] == [min(ids, key=hashes.get)]
    all_below = ValRule.from_ids(ids, 0.999999, 0)  # every hash is below: the highest trains
    assert [i for i in ids if not all_below.is_val(i)] == [max(ids, key=hashes.get)]
    plain = ValRule.from_ids(ids, 0.3, 0)
    assert [plain.is_val(i) for i in ids] == [hashes[i] < 0.3 for i in ids]
