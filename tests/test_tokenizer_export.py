"""The exported tokenizer: same ids in tiktoken, tokenizers and transformers; chat template;
offline GPT-2 / cl100k references and the compression comparison."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import tokenizers
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transformers import PreTrainedTokenizerFast

from crawl2chat.chat import template
from crawl2chat.tokenizer import hf_export, reference
from crawl2chat.tokenizer.special import BOS, SPECIAL_TOKENS
from crawl2chat.tokenizer.tokenizer import Tokenizer
from crawl2chat.tokenizer.train import train_bpe

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.\n",
    "Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus Köln!\r\n",
    "Prices rose 12.5% in 2023; 1,024 users paid $3.99 each. 😀 🎉 ✓ 👩‍👩‍👧",
    "日本語のテキストも少しあります。中文也有一点。 Привет, мир! שלום مرحبا",
    "def encode(text: str) -> list[int]:\n    return tokenizer.encode(text)  # ok\n\n\n",
    "I'm sure they'll say we've done what's right; DON'T SHOUT!!! ... --- ***",
    "\t\ttabs\t and   spaces   \u00a0non-breaking\u2028line sep 1234567890 ٣٤٥",
] * 30
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi! What's 2+2?"},
    {"role": "assistant", "content": "4.\n\nAnything else?"},
    {"role": "user", "content": "  no thanks  "},
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_bpe(CORPUS, vocab_size=900)


@pytest.fixture(scope="module")
def folder(tok: Tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    tok.save(out)
    return out


@pytest.fixture(scope="module")
def hf(folder: Path) -> tokenizers.Tokenizer:
    loaded = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    loaded.encode_special_tokens = True  # compare on ordinary text, as Tokenizer.encode
    return loaded


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=120)
       | st.lists(st.sampled_from([*CORPUS[:7], " ", "\n", "  ", "'s", "x"]),
                  max_size=6).map("".join))
@example("  leading\n\n  \n trailing   ")
@example("abc   \n")
@example("x\u0085y\u1680z\u180e\u200b\u3000w\ufeff")
def test_tiktoken_and_tokenizers_json_give_the_same_ids(tok: Tokenizer,
                                                       hf: tokenizers.Tokenizer,
                                                       text: str) -> None:
    assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text)


def test_transformers_loads_it_with_the_same_ids_and_specials(tok: Tokenizer,
                                                              folder: Path) -> None:
    fast = PreTrainedTokenizerFast.from_pretrained(str(folder))
    assert (fast.bos_token, fast.eos_token, fast.pad_token) == (
        "<|bos|>", "<|assistant_end|>", "<|pad|>")
    assert fast.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(8))
    assert len(fast) == tok.vocab_size
    for text in CORPUS[:7]:
        ids = fast.encode(text, add_special_tokens=False)
        assert ids == tok.encode(text)
        assert fast.decode(ids) == text
    # transformers itself turns special-token text into control tokens; ours never does
    assert fast.encode("a<|bos|>", add_special_tokens=False)[-1] == tok.special_id(BOS)
    assert tok.special_id(BOS) not in tok.encode("a<|bos|>")


def test_chat_template_renders_exactly_like_crawl2chat(tok: Tokenizer, folder: Path) -> None:
    assert hf_export.TURNS == template.TURN_TOKENS
    fast = PreTrainedTokenizerFast.from_pretrained(str(folder))
    ids, _ = template.render(MESSAGES, tok)
    assert fast.apply_chat_template(MESSAGES, tokenize=True, return_dict=False) == ids
    prompt = template.render_prompt(MESSAGES, tok)
    assert fast.apply_chat_template(MESSAGES, tokenize=True, return_dict=False,
                                    add_generation_prompt=True) == prompt
    assert fast.apply_chat_template(MESSAGES[1:2], tokenize=False) == (
        "<|bos|><|user_start|>Hi! What's 2+2?<|user_end|>")
    with pytest.raises(Exception, match="unknown role tool"):
        fast.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_references_load_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a reference tokenizer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))  # empty: no cached copy
    reference.gpt2.cache_clear()
    reference.cl100k.cache_clear()
    # ids published for these encodings
    assert reference.gpt2().encode_ordinary("Hello world!") == [15496, 995, 0]
    assert reference.cl100k().encode_ordinary("Hello world!") == [9906, 1917, 0]
    assert reference.gpt2().n_vocab == 50257


def test_bytes_per_token_compares_on_the_same_text(tok: Tokenizer) -> None:
    texts = CORPUS[:7] * 3
    out = reference.bytes_per_token(iter(texts), tok, max_bytes=10**9)
    assert set(out) == {"ours", "gpt2", "cl100k"}
    total = sum(len(t.encode()) for t in texts)
    assert out["ours"] == round(total / sum(map(len, tok.encode_batch(texts))), 4)
    assert out["cl100k"] > out["gpt2"] > 1.0  # the larger, newer vocabulary compresses more
    # max_bytes stops early: only the first text is measured
    first = reference.bytes_per_token(iter(texts), tok, max_bytes=1)
    assert first["ours"] == round(len(texts[0].encode()) / len(tok.encode(texts[0])), 4)


def test_cli_tokenize_prints_ids_and_pieces(tok: Tokenizer, folder: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from crawl2chat.cli import main

    text = "The dog <|bos|> 😀"
    with pytest.raises(SystemExit) as exit_info:  # a folder without a tokenizer
        main(["tokenize", "--model", str(folder.parent), text])
    assert exit_info.value.code == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    assert main(["tokenize", "--model", str(folder), text, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ids"] == tok.encode(text)
    assert "".join(out["pieces"]).startswith("The dog <|bos|> ")
    assert main(["tokenize", "--model", str(folder), "The dog"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "ids: " + " ".join(map(str, tok.encode("The dog")))
    assert [line.split(None, 1)[1] for line in lines[2:]] == ["'The'", "' dog'"]
