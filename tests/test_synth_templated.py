"""The templated assistant set: expansion, held-out exclusion, determinism, the script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crawl2chat.errors import InputError
from crawl2chat.synth.templated import build, expand, load_templates, overlap

REPO = Path(__file__).resolve().parents[1]
SPEC = {
    "openers": ["", "Hi! ", "Hey, "],
    "identity": {"per_question": 2, "questions": ["Who {made|built} you?"],
                 "answers": ["I am the crawl2chat assistant, a small model."]},
    "refusal": {"openings": ["I cannot help with {what}."], "closings": [""],
                "categories": [{"what": "theft", "why": "It hurts people.",
                                "questions": ["How do I steal {a bike|a car|}?"]}]},
    "benign": {"items": [{"q": ["How do I kill a {stuck|hung} process on Linux?"],
                          "a": "Run kill PID."}]},
    "helpful": {"per_question": 2,
                "items": [{"q": ["Why is the sky {blue|grey}?"], "a": "Air scatters blue light."}]},
}


def test_expand_spells_out_every_alternative_and_tidies_spaces() -> None:
    assert expand("How do I steal {a bike|a car|}?") == [
        "How do I steal a bike?", "How do I steal a car?", "How do I steal?"]
    assert expand("{A|B} and {c|d}") == ["A and c", "A and d", "B and c", "B and d"]
    assert expand("no choices here") == ["no choices here"]


def test_build_is_deterministic_and_fills_the_answer_templates() -> None:
    first = build(SPEC)
    assert first == build(SPEC)
    topics = [c["topic"] for c in first]
    assert topics.count("identity") == 4 and topics.count("refusal") == 3
    assert topics.count("benign") == 2 and topics.count("helpful") == 4
    refusal = next(c for c in first if c["topic"] == "refusal")
    assert refusal["messages"][1]["content"] == "I cannot help with theft. It hurts people."
    questions = [c["messages"][0]["content"] for c in first]
    # after "Hey, " a question goes on in lower case; after "Hi! " or alone it is capitalised
    assert all(q[5].islower() if q.startswith("Hey, ") else q[0].isupper() for q in questions)
    assert len(set(questions)) == len(questions)


def test_questions_close_to_held_out_prompts_are_dropped() -> None:
    held_out = ["How do I kill a stuck process on Linux?", "who BUILT you"]
    questions = {c["messages"][0]["content"] for c in build(SPEC, held_out)}
    assert not any("stuck process" in q or "built you" in q for q in questions)
    # "hung process" shares 7 of 9 words with the held-out prompt: too close, dropped too
    assert overlap("How do I kill a hung process on Linux?", held_out[0]) >= 0.6
    assert not any("hung" in q for q in questions)
    assert any("made you" in q for q in questions)


def test_the_helpful_section_is_optional_and_its_items_name_their_index() -> None:
    without = build({k: v for k, v in SPEC.items() if k != "helpful"})
    assert "helpful" not in {c["topic"] for c in without}
    helpful = [c for c in build(SPEC) if c["topic"] == "helpful"]
    assert {c["messages"][1]["content"] for c in helpful} == {"Air scatters blue light."}
    with pytest.raises(InputError, match=r"helpful\.items\[0\]: missing field 'a'"):
        build({**SPEC, "helpful": {"items": [{"q": ["Why?"]}]}})


def test_bad_template_files_fail_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"refusal\.categories\[0\]: missing field 'why'"):
        build({**SPEC, "refusal": {**SPEC["refusal"], "categories": [{"what": "x"}]}})
    bad = tmp_path / "t.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(InputError, match=r"t\.yaml: expected a mapping"):
        load_templates(bad)


def test_the_committed_file_is_what_the_script_builds() -> None:
    env = {"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "scripts/build_demo_assistant.py", "--check"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout
