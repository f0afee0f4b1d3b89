"""`crawl2chat generate` and `next-token` through the real command line, in a subprocess,
on a tiny random model saved to disk; few-shot prompt files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crawl2chat.errors import InputError
from crawl2chat.model.checkpoint import save_model
from crawl2chat.model.few_shot import load_few_shot
from crawl2chat.model.gpt import GPT, GPTConfig
from crawl2chat.tokenizer.train import train_bpe

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["the cat sat on the mat. " * 20, "a dog ran in the park, then sat down. " * 20]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = GPT(GPTConfig(vocab_size=320, block_size=32, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():  # larger weights than the init: peaked, prompt-dependent logits
        for p in net.parameters():
            p.mul_(3.0)
    folder = tmp_path_factory.mktemp("model")
    save_model(net, train_bpe(TEXTS, vocab_size=300, min_frequency=1), folder)
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "crawl2chat.cli", *args],
                            capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def _generate(model_dir: Path, *options: str, prompt: str = "the cat") -> tuple[str, int]:
    result = _cli("generate", str(model_dir), "--prompt", prompt, "--max-new-tokens", "24",
                  "--temperature", "1.0", "--top-k", "200", *options)
    seed = re.search(r"^seed: (\d+)$", result.stderr, re.MULTILINE)
    assert seed, result.stderr
    return result.stdout, int(seed.group(1))


def test_a_random_seed_is_printed_and_repeats_the_run(model_dir: Path) -> None:
    first, seed = _generate(model_dir)
    second, other_seed = _generate(model_dir)
    assert seed != other_seed and first != second  # random by default
    again, same = _generate(model_dir, "--seed", str(seed))
    assert (again, same) == (first, seed)


def test_num_samples_draws_sample_i_with_seed_plus_i(model_dir: Path) -> None:
    out, _ = _generate(model_dir, "--seed", "10", "--num-samples", "3")
    samples = out.split("---\n")
    assert len(samples) == 3
    for i, text in enumerate(samples):
        assert text == _generate(model_dir, "--seed", str(10 + i))[0]


def test_stop_cuts_before_the_earliest_stop_string(model_dir: Path) -> None:
    full, _ = _generate(model_dir, "--seed", "4")
    continuation = full[len("the cat"):-1]
    spots = [m.start() for m in re.finditer(r"[a-z ]{2}", continuation) if m.start() >= 2]
    assert spots, continuation
    stop = continuation[spots[0]:spots[0] + 2]
    later = continuation[spots[0] + 1:spots[0] + 3]  # overlaps, begins later: loses
    cut, _ = _generate(model_dir, "--seed", "4", "--stop", later, "--stop", stop)
    assert cut == "the cat" + continuation[:continuation.find(stop)] + "\n"


def test_prompt_file_is_the_prompt(model_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "prompt.txt"
    file.write_text("the dog", encoding="utf-8")
    from_file = _cli("generate", str(model_dir), "--prompt-file", str(file), "--seed", "2")
    assert from_file.stdout == _cli("generate", str(model_dir), "-p", "the dog",
                                    "--seed", "2").stdout


def test_show_probs_lists_the_candidates_and_the_drawn_token(model_dir: Path) -> None:
    out = _cli("generate", str(model_dir), "-p", "the cat", "--max-new-tokens", "5",
               "--temperature", "0", "--show-probs", "3").stdout
    lines = out.splitlines()
    table, text = lines[:5], "\n".join(lines[5:])
    assert text == _cli("generate", str(model_dir), "-p", "the cat", "--max-new-tokens", "5",
                        "--temperature", "0").stdout.rstrip("\n")
    for line in table:  # greedy: the drawn token is the most likely one
        drawn, candidates = line.split(" | ")
        assert drawn.startswith("drawn ")
        probs = [float(p) for p in re.findall(r" (\d\.\d{3})(?:  |$)", candidates)]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert candidates.startswith(drawn.removeprefix("drawn "))


def test_next_token_prints_the_distribution_greedy_decoding_follows(model_dir: Path) -> None:
    out = _cli("next-token", str(model_dir), "--prompt", "the cat", "--top", "4").stdout
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    probs = [float(r[2]) for r in rows]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    greedy = _cli("generate", str(model_dir), "-p", "the cat", "--max-new-tokens", "1",
                  "--temperature", "0").stdout
    assert f"'{greedy[len('the cat'):-1]}'" == out.splitlines()[2].split(None, 3)[3]


def test_few_shot_answers_after_the_built_prompt_and_stops_at_the_separator(
        model_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "pairs.jsonl"
    file.write_text('{"input": "cat", "output": "dog"}\n{"input": "sat", "output": "ran"}\n',
                    encoding="utf-8")
    few_shot = load_few_shot(file)
    assert few_shot.prompt(" mat ") == "cat: dog\nsat: ran\nmat:" and few_shot.stop == ["\n"]
    answer, _ = _generate(model_dir, "--few-shot", str(file), "--seed", "3", prompt="mat")
    plain, _ = _generate(model_dir, "--seed", "3", "--stop", "\n", prompt=few_shot.prompt("mat"))
    assert answer == plain[len(few_shot.prompt("mat")):]  # the answer alone


def test_shipped_few_shot_prompts() -> None:
    assistant = load_few_shot(REPO / "prompts/few_shot/assistant.yaml")
    assert assistant.stop == ["\nHuman:"]
    prompt = assistant.prompt("What is a cat?")
    assert prompt.endswith("\n\nHuman: What is a cat?\n\nAssistant:")
    assert prompt.count("Human:") == len(assistant.examples) + 1 >= 3
    words = load_few_shot(REPO / "prompts/few_shot/en_ko_words.yaml")
    assert 8 <= len(words.examples) <= 10 and ("teacher", "선생님") in words.examples
    assert words.stop == ["\n"] and words.prompt("student").endswith("\nstudent:")


@pytest.mark.parametrize(("name", "text", "message"), [
    ("a.yaml", "examples: []\n", "at least one example"),
    ("a.yaml", "examples: [{input: x}]\n", "an input and an output"),
    ("a.yaml", "template: '{input}'\nexamples: [{input: x, output: y}]\n", "end with"),
    ("a.yaml", "tempalte: x\nexamples: [{input: x, output: y}]\n", "unknown key"),
    ("a.txt", "x", ".yaml, .yml or .jsonl"),
])
def test_bad_few_shot_files_are_named(tmp_path: Path, name: str, text: str,
                                      message: str) -> None:
    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_few_shot(file)
