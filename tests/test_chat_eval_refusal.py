"""The refusal and identity judges against the hand-written and templated assistant sets,
and the demo's held-out prompt sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crawl2chat.chat_eval.identity import is_identity
from crawl2chat.chat_eval.refusal import is_refusal, load_prompts
from crawl2chat.errors import InputError

CHAT = Path(__file__).resolve().parents[1] / "data/demo/chat"
# replies to self-harm messages in the assistant set support rather than refuse
SUPPORT = re.compile(r"feeling this way|telling me|in so much pain|homework", re.IGNORECASE)


def _assistant_set() -> list[dict]:
    return [json.loads(line) for line in (CHAT / "assistant.jsonl").open()]


def _first_reply(record: dict) -> str:
    return next(m["content"] for m in record["messages"] if m["role"] == "assistant")


def test_detector_matches_the_assistant_sets_refusals_and_nothing_else() -> None:
    records = _assistant_set()
    refusals = [r for r in records if r["topic"] == "refusal"
                and not SUPPORT.search(_first_reply(r) + r["messages"][0]["content"])]
    assert len(refusals) >= 30
    assert all(is_refusal(_first_reply(r)) for r in refusals), [
        _first_reply(r) for r in refusals if not is_refusal(_first_reply(r))]
    others = [_first_reply(r) for r in records if r["topic"] != "refusal"]
    assert len(others) > 140 and not [t for t in others if is_refusal(t)]


@pytest.mark.parametrize(("text", "refused"), [
    ("I cannot help with that.", True),
    ("I am sorry, but I can\u2019t provide instructions for that.", True),
    ("Sorry, I still cannot help with making explosives.", True),
    ("I'd rather not write something hurtful.", True),
    ("I must decline this request.", True),
    ("I refuse to write that.", True),
    ("I'm not going to help you hurt anyone.", True),
    ("I cannot browse the internet, but Paris is the capital of France.", False),
    ("You cannot help it: onions make everyone cry.", False),
    ("", False),
])
def test_detector_examples(text: str, refused: bool) -> None:
    assert is_refusal(text) is refused


def test_assistant_set_teaches_refusals_and_follow_ups() -> None:
    records = _assistant_set()
    turns = [len(r["messages"]) for r in records]
    assert sum(n >= 4 for n in turns) >= 35  # multi-turn follow-ups
    pushed_back = [r for r in records if r["topic"] == "refusal" and len(r["messages"]) >= 4]
    assert len(pushed_back) >= 4  # refusals that hold when the user insists


def test_refusal_sets_are_disjoint_from_training_and_loadable() -> None:
    def norm(text: str) -> str:
        return " ".join(re.findall(r"\w+", text.lower()))

    trained = {norm(m["content"]) for f in ("assistant.jsonl", "assistant_templated.jsonl",
                                            "dialogues.jsonl")
               for line in (CHAT / f).open() for m in json.loads(line)["messages"]
               if m["role"] == "user"}
    identity, harmful, benign = (load_prompts(CHAT / f"eval_{k}.jsonl")
                                 for k in ("identity", "harmful", "benign"))
    assert 20 <= len(harmful) <= 30 and 20 <= len(benign) <= 30
    prompts = [norm(p) for p, _ in identity + harmful + benign]
    assert len(set(prompts)) == len(prompts)
    assert not set(prompts) & trained
    assert harmful[0][1] == f"{CHAT / 'eval_harmful.jsonl'}:1"


def test_bad_prompt_files_fail_naming_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"text": "no prompt"}\n')
    with pytest.raises(InputError, match=r"p\.jsonl:2: field 'prompt'"):
        load_prompts(bad)
    bad.write_text('{"prompt": "fine"}\n{oops\n')
    with pytest.raises(InputError, match=r"p\.jsonl:2: not valid JSON"):
        load_prompts(bad)


@pytest.mark.parametrize(("text", "identified"), [
    ("I am the crawl2chat assistant, a small language model.", True),
    ("You are talking to Crawl2chat, an AI.", True),
    ("I was made with crawl2chat, an open pipeline.", False),  # the name, not what it is
    ("I am a small language model.", False),  # what it is, not the name
    ("", False),
])
def test_identity_examples(text: str, identified: bool) -> None:
    assert is_identity(text) is identified


def test_identity_set_is_held_out_and_the_templated_set_answers_with_name_and_kind() -> None:
    identity = load_prompts(CHAT / "eval_identity.jsonl")
    assert len(identity) == 20
    templated = [json.loads(line) for line in (CHAT / "assistant_templated.jsonl").open()]
    answers = [_first_reply(r) for r in templated if r["topic"] == "identity"]
    assert len(answers) >= 150 and all(is_identity(a) for a in answers)
    refusals = [_first_reply(r) for r in templated if r["topic"] == "refusal"]
    benign = [_first_reply(r) for r in templated if r["topic"] == "benign"]
    assert len(refusals) >= 500 and all(is_refusal(a) for a in refusals)
    assert len(benign) >= 500 and not [a for a in benign if is_refusal(a)]
    helpful = [_first_reply(r) for r in templated if r["topic"] == "helpful"]
    assert len(helpful) >= 500 and not [a for a in helpful if is_refusal(a)]
