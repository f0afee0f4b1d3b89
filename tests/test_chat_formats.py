"""Loaders for the public chat formats (OASST1 rows and trees, ShareGPT, messages) on
fixtures in their exact schema, as JSONL, gzipped JSONL and Parquet."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2chat.chat.data import Source, is_heldout, load_sources, repeats
from crawl2chat.config import build
from crawl2chat.errors import ConfigError, InputError

FIXTURES = Path(__file__).parent / "fixtures" / "chat"
BASIL = "How do I keep basil alive on a windowsill?"
SUN = ("Give it at least six hours of sun, water it when the top of the soil is dry, and "
       "pinch off flower buds so it keeps growing leaves.")
HOLES = "Should I use a pot with holes in the bottom?"
DRAIN = "Yes. Drainage holes let extra water out, so the roots do not rot."


def _texts(loaded: Any) -> list[list[str]]:
    return [[content for _, content in c.messages] for c in loaded.conversations]


def _load(tmp_path: Path, name: str, **source: Any) -> Any:
    return load_sources([Source(str(FIXTURES / name), **source)], tmp_path)


def test_oasst_rows_best_path_drops_deleted_failed_review_and_filters(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "oasst_messages.jsonl", format="oasst", lang=["en"])
    # the best-ranked reply at each turn; the deleted and failed-review replies are gone
    assert _texts(loaded) == [[BASIL, SUN, HOLES, DRAIN]]
    assert [r for r, _ in loaded.conversations[0].messages] == ["user", "assistant"] * 2
    assert dict(loaded.skipped) == {"deleted": 1, "review_failed": 1, "lang": 1,
                                    "not_ready": 1, "orphan": 1, "no_assistant_turn": 1}
    # the origin is the line of the conversation's last message
    assert loaded.conversations[0].origin == f"{FIXTURES / 'oasst_messages.jsonl'}:7"


def test_oasst_all_paths_cut_after_the_last_assistant_message(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "oasst_messages.jsonl", format="oasst", oasst="all_paths")
    assert _texts(loaded) == [
        [BASIL, "Water it when the soil feels dry."],
        [BASIL, SUN, HOLES, DRAIN],
        [BASIL, SUN],  # the follow-up "What about mint?" was never answered
        ["Wie lange muss ein Ei kochen?", "Ein weiches Ei braucht etwa sechs Minuten."],
    ]


def test_oasst_paths_of_one_tree_are_held_out_together(tmp_path: Path) -> None:
    """All paths of a tree share its opening prompt: a split by content would train on
    the prompt of a held-out path."""
    loaded = _load(tmp_path, "oasst_messages.jsonl", format="oasst", oasst="all_paths")
    basil = [c for c in loaded.conversations if c.messages[0][1] == BASIL]
    assert len(basil) == 3 and len({c.group for c in basil}) == 1
    assert len({c.key for c in basil}) == 3  # still distinct conversations for dedup
    for fraction in [i / 20 for i in range(1, 20)]:
        assert len({is_heldout(c, fraction) for c in basil}) == 1
    # the trees differ, so some fraction puts them on different sides
    egg = next(c for c in loaded.conversations if c.messages[0][1] != BASIL)
    assert egg.group != basil[0].group
    assert any(is_heldout(egg, i / 100) != is_heldout(basil[0], i / 100) for i in range(100))
    # a messages-format conversation has no group and is drawn by its content
    plain = _load(tmp_path, "messages.jsonl").conversations[0]
    assert plain.group is None and plain.split_key == plain.key


def test_oasst_trees_layout_gives_the_same_conversations(tmp_path: Path) -> None:
    for mode in ("best", "all_paths"):
        rows = _load(tmp_path, "oasst_messages.jsonl", format="oasst", oasst=mode)
        trees = _load(tmp_path, "oasst_trees.jsonl", format="oasst", oasst=mode)
        assert _texts(trees) == _texts(rows)[: len(_texts(trees))]
        assert len(_texts(trees)) == (2 if mode == "best" else 4)
    trees = _load(tmp_path, "oasst_trees.jsonl", format="oasst")
    assert trees.skipped == {"deleted": 1, "review_failed": 1}


# the column types of the Hugging Face OpenAssistant/oasst1 Parquet files
_COUNTS = pa.struct([("name", pa.list_(pa.string())), ("count", pa.list_(pa.int32()))])
_LABELS = pa.struct([("name", pa.list_(pa.string())), ("value", pa.list_(pa.float64())),
                     ("count", pa.list_(pa.int32()))])
_DETOX = pa.struct([(k, pa.float64()) for k in (
    "toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat",
    "sexual_explicit")])
OASST1_SCHEMA = pa.schema([
    ("message_id", pa.string()), ("parent_id", pa.string()), ("user_id", pa.string()),
    ("created_date", pa.string()), ("text", pa.string()), ("role", pa.string()),
    ("lang", pa.string()), ("review_count", pa.int32()), ("review_result", pa.bool_()),
    ("deleted", pa.bool_()), ("rank", pa.int32()), ("synthetic", pa.bool_()),
    ("model_name", pa.string()), ("detoxify", _DETOX), ("message_tree_id", pa.string()),
    ("tree_state", pa.string()), ("emojis", _COUNTS), ("labels", _LABELS)])


def _hf_row(row: dict[str, Any]) -> dict[str, Any]:
    labels = row["labels"]
    return {**row, "emojis": {"name": list(row["emojis"]), "count": list(row["emojis"].values())},
            "labels": {"name": list(labels), "value": [v["value"] for v in labels.values()],
                       "count": [v["count"] for v in labels.values()]}}


def test_oasst_parquet_in_the_hugging_face_schema(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (FIXTURES / "oasst_messages.jsonl").open()]
    file = tmp_path / "oasst1-train.parquet"
    pq.write_table(pa.Table.from_pylist([_hf_row(r) for r in rows], schema=OASST1_SCHEMA), file)
    for mode in ("best", "all_paths"):
        parquet = _load(tmp_path, str(file), format="oasst", oasst=mode)
        jsonl = _load(tmp_path, "oasst_messages.jsonl", format="oasst", oasst=mode)
        assert _texts(parquet) == _texts(jsonl) and parquet.skipped == jsonl.skipped
    assert parquet.conversations[1].origin == f"{file.name}:row 6"  # rows count from 0


def test_sharegpt_roles_are_mapped_and_bad_records_skipped(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "sharegpt.jsonl", format="sharegpt")
    assert [list(c.messages) for c in loaded.conversations] == [
        [("user", "What is a haiku?"),
         ("assistant", "A haiku is a short Japanese poem of three lines with five, seven and "
                       "five syllables."),
         ("user", "Write one about rain."),
         ("assistant", "Soft rain on the roof\nthe gutters hum a low song\npuddles hold the sky")],
        [("system", "You answer in one sentence."), ("user", "Why is the sky blue?"),
         ("assistant", "Air scatters blue sunlight more than red, so blue light reaches your "
                       "eyes from every direction.")],
        [("user", "Name a prime number above 10."), ("assistant", "11 is prime.")]]
    assert dict(loaded.skipped) == {"bad_role": 1, "bad_order": 1}


def test_messages_format_and_parquet_and_gzip_give_the_same(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (FIXTURES / "messages.jsonl").open()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "ultra.parquet")
    with gzip.open(tmp_path / "ultra.jsonl.gz", "wt") as f:
        f.write((FIXTURES / "messages.jsonl").read_text())
    plain = _load(tmp_path, "messages.jsonl")
    assert [len(c.messages) for c in plain.conversations] == [4, 2]
    for name in ("ultra.parquet", "ultra.jsonl.gz"):
        assert _texts(_load(tmp_path, str(tmp_path / name))) == _texts(plain)
    shared = [json.loads(line) for line in (FIXTURES / "sharegpt.jsonl").open()]
    pq.write_table(pa.Table.from_pylist(shared), tmp_path / "share.parquet")
    assert _texts(_load(tmp_path, str(tmp_path / "share.parquet"), format="sharegpt")) == \
        _texts(_load(tmp_path, "sharegpt.jsonl", format="sharegpt"))


def test_a_file_in_another_format_fails_naming_file_line_and_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"sharegpt\.jsonl:1: no 'messages' field"):
        _load(tmp_path, "sharegpt.jsonl")
    with pytest.raises(InputError, match=r"messages\.jsonl:1: no 'conversations' field"):
        _load(tmp_path, "messages.jsonl", format="sharegpt")
    with pytest.raises(InputError, match=r"messages\.jsonl:1: OASST message field 'message_id'"):
        _load(tmp_path, "messages.jsonl", format="oasst")
    rows = (FIXTURES / "oasst_messages.jsonl").read_text().splitlines()
    broken = json.loads(rows[2])
    del broken["text"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*rows[:2], json.dumps(broken)]) + "\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:3: OASST message field 'text'"):
        load_sources([Source("bad.jsonl", format="oasst")], tmp_path)
    pq.write_table(pa.Table.from_pylist([{"conversations": None}]), tmp_path / "x.parquet")
    with pytest.raises(InputError, match=r"x\.parquet:row 0: no 'messages' field"):
        load_sources([Source("x.parquet")], tmp_path)


def test_language_filter_applies_to_records_that_name_a_language(tmp_path: Path) -> None:
    file = tmp_path / "langs.jsonl"
    pair = [{"from": "human", "value": "Hallo"}, {"from": "gpt", "value": "Hallo!"}]
    file.write_text("\n".join(json.dumps(r) for r in [
        {"conversations": pair, "lang": "de"},
        {"conversations": [*pair[:1], {"from": "gpt", "value": "Hi!"}], "lang": "en"},
        {"conversations": [*pair[:1], {"from": "gpt", "value": "Hej!"}]}]) + "\n")
    loaded = load_sources([Source("langs.jsonl", format="sharegpt", lang=["en"])], tmp_path)
    assert [c.messages[1][1] for c in loaded.conversations] == ["Hi!", "Hej!"]
    assert loaded.skipped == {"lang": 1}


def test_sources_resolve_folders_and_globs_cap_and_weigh(tmp_path: Path) -> None:
    folder = tmp_path / "chat"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(FIXTURES / "messages.jsonl", folder / "a.jsonl")
    shutil.copy(FIXTURES / "sharegpt.jsonl", folder / "sub" / "b.jsonl")
    (folder / "notes.txt").write_text("not data")
    assert Source("chat").files(tmp_path) == [folder / "a.jsonl", folder / "sub" / "b.jsonl"]
    assert Source("chat/*.jsonl").files(tmp_path) == [folder / "a.jsonl"]
    with pytest.raises(InputError, match="no conversation file at nowhere/"):
        Source("nowhere/").files(tmp_path)
    loaded = load_sources([Source("chat/a.jsonl", max=1),
                           Source("chat/sub/b.jsonl", format="sharegpt")], tmp_path)
    assert [c.source for c in loaded.conversations] == [0, 1, 1, 1]
    conversations = load_sources([Source(str(FIXTURES / "oasst_messages.jsonl"),
                                         format="oasst", oasst="all_paths")], tmp_path)
    counts = [repeats(c, 1.5) for c in conversations.conversations]
    assert set(counts) == {1, 2}  # half of them, by content hash, a second time
    assert [repeats(c, 3.0) for c in conversations.conversations] == [3] * len(counts)


def test_source_config_is_checked() -> None:
    source = build(Source, {"path": "x.parquet", "format": "oasst", "lang": ["en"],
                            "oasst": "all_paths", "weight": 2, "max": 10}, "sft.data[0]")
    assert source.weight == 2.0 and source.lang == ["en"]
    for bad, needle in [({"path": "x", "format": "csv"}, "format must be one of"),
                        ({"path": "x", "oasst": "worst"}, "oasst must be one of"),
                        ({"path": "x", "weight": 0}, "weight must be > 0"),
                        ({"path": "x", "max": 0}, "max must be >= 1")]:
        with pytest.raises(ConfigError, match=needle):
            build(Source, bad, "sft.data[0]")
