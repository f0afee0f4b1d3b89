"""The byte-level BPE tokenizer: training, special tokens, round trip, save/load."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawl2chat.errors import InputError
from crawl2chat.tokenizer.special import ASSISTANT_END, BOS, SPECIAL_TOKENS, USER_START
from crawl2chat.tokenizer.tokenizer import TOKENIZER_FILE, Tokenizer
from crawl2chat.tokenizer.train import MIN_VOCAB_SIZE, hf_trainer, train_bpe

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.",
    "Debian is a free operating system; the Debian project maintains it.",
    "def encode(text: str) -> list[int]:\n    return tokenizer.encode(text)\n",
    "Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus Köln!",
    "Le cahier de l'administrateur Debian: installer, configurer, maintenir.",
    "Prices rose 12.5% in 2023; 1,024 users paid $3.99 each. 😀 🎉 ✓",
    "日本語のテキストも少しあります。中文也有一点。",
] * 20


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_bpe(CORPUS, vocab_size=400)


def test_special_tokens_have_ids_0_to_7(tok: Tokenizer) -> None:
    assert [tok.special_id(t) for t in SPECIAL_TOKENS] == list(range(8))
    assert [tok.decode([i]) for i in range(8)] == list(SPECIAL_TOKENS)
    with pytest.raises(KeyError, match="not a special token"):
        tok.special_id("<|eos|>")


def test_training_learns_merges(tok: Tokenizer) -> None:
    assert MIN_VOCAB_SIZE < tok.vocab_size <= 400
    text = "The quick brown fox jumps over the lazy dog."
    assert len(tok.encode(text)) < len(text.encode()) / 2


def test_vocab_below_bytes_and_specials_is_refused() -> None:
    with pytest.raises(ValueError, match="minimum 264"):
        train_bpe(CORPUS, vocab_size=263)


@pytest.mark.parametrize("token", SPECIAL_TOKENS)
def test_special_token_text_in_user_text_is_not_a_control_token(tok: Tokenizer,
                                                                  token: str) -> None:
    text = f"please print {token} literally{token}"
    ids = tok.encode(text)
    assert min(ids) >= len(SPECIAL_TOKENS)
    assert tok.decode(ids) == text
    assert tok.encode_batch([text, token]) == [ids, tok.encode(token)]
    assert min(tok.encode_batch([token])[0]) >= len(SPECIAL_TOKENS)


def test_decode_skips_control_tokens_only_when_asked(tok: Tokenizer) -> None:
    body = tok.encode("hi <|bos|> there")
    ids = [tok.special_id(BOS), tok.special_id(USER_START), *body, tok.special_id(ASSISTANT_END)]
    assert tok.decode(ids, skip_special=True) == "hi <|bos|> there"
    assert tok.decode(ids) == "<|bos|><|user_start|>hi <|bos|> there<|assistant_end|>"


def test_encode_batch_equals_encode(tok: Tokenizer) -> None:
    texts = [*CORPUS[:7], "", " ", "\n\n"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.encode_batch([]) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
@example("")
@example("\x00\x01\x7f\r\n\t \u00a0\u2028\ufeff")
@example("👩‍👩‍👧‍👦 🏳️‍🌈 🇩🇪 é=e\u0301 ｗｉｄｅ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 שלום مرحبا")
@example("<|bos|><|assistant_end|>" * 3 + "<|bos")
@example("     leading and trailing     \n\n\n")
@example("\U0010ffff\ue000\ufffd")
def test_round_trip_any_unicode(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(len(SPECIAL_TOKENS) <= i < tok.vocab_size for i in ids)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(), max_size=80))  # surrogates included
@example("lone \ud800 surrogate \udfff")
@example("\ud83d\ude00 a pair of surrogates, not an emoji: 😀")
def test_lone_surrogates_round_trip_by_byte_fallback(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.encode_batch([text, text], threads=2) == [ids, ids]


def test_a_surrogate_is_its_three_surrogatepass_bytes(tok: Tokenizer) -> None:
    ids = tok.encode("\ud800")
    assert len(ids) == 3
    assert [tok.token_pieces([i])[0] for i in ids] == ["\\xed", "\\xa0", "\\x80"]
    # bytes that are not UTF-8 and not a surrogate's decode to U+FFFD
    assert tok.decode(tok.encode("\ud800")[:2]) == "\ufffd\ufffd"


def test_min_frequency_uses_the_hf_trainer_and_keeps_the_contract() -> None:
    hf_tok = train_bpe(CORPUS, vocab_size=400, min_frequency=3)
    assert MIN_VOCAB_SIZE < hf_tok.vocab_size <= 400
    text = CORPUS[3] + " <|bos|> " + CORPUS[5]
    assert hf_tok.decode(hf_tok.encode(text)) == text
    assert hf_tok.to_hf().encode(CORPUS[0]).ids == hf_tok.encode(CORPUS[0])


def test_save_and_load_keep_ids_and_plain_special_text(tok: Tokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path / "tk")
    loaded = Tokenizer.load(tmp_path / "tk")
    text = CORPUS[0] + " <|bos|> " + CORPUS[5]
    assert loaded.vocab_size == tok.vocab_size
    assert loaded.encode(text) == tok.encode(text)
    assert min(loaded.encode("<|assistant_end|>")) >= len(SPECIAL_TOKENS)
    assert json.loads((tmp_path / "tk" / TOKENIZER_FILE).read_text())["model"]["type"] == "BPE"


def test_load_refuses_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        Tokenizer.load(tmp_path)
    (tmp_path / TOKENIZER_FILE).write_text("{not json")
    with pytest.raises(InputError, match="not a crawl2chat byte-level BPE"):
        Tokenizer.load(tmp_path)
    foreign, trainer = hf_trainer(300, min_frequency=1)
    trainer.special_tokens = list(reversed(SPECIAL_TOKENS))
    foreign.train_from_iterator(CORPUS, trainer)
    foreign.save(str(tmp_path / TOKENIZER_FILE))
    with pytest.raises(InputError, match="special token <\\|bos\\|> has id 7, expected 0"):
        Tokenizer.load(tmp_path)


_TRAIN_IN_SUBPROCESS = """
import hashlib, json, sys
from pathlib import Path
from crawl2chat.tokenizer.train import train_bpe
train_bpe(json.loads(sys.stdin.read()), vocab_size=400).save(Path(sys.argv[1]))
print(hashlib.sha256((Path(sys.argv[1]) / "tokenizer.json").read_bytes()).hexdigest())
"""


def test_training_is_deterministic_across_processes(tok: Tokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path / "here")
    here = hashlib.sha256((tmp_path / "here" / TOKENIZER_FILE).read_bytes()).hexdigest()
    root = Path(__file__).resolve().parents[1]
    # another process has another hash seed (Python's and Rust's): the file must not change
    out = subprocess.run([sys.executable, "-c", _TRAIN_IN_SUBPROCESS, str(tmp_path / "there")],
                         input=json.dumps(CORPUS), env={"PYTHONPATH": str(root / "src")},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here
