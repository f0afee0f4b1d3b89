"""Build data/demo/chat/assistant_templated.jsonl from prompts/assistant_set.yaml.

In:  the templates (prompts/assistant_set.yaml) and the held-out prompt sets
     (data/demo/chat/eval_identity.jsonl, eval_harmful.jsonl, eval_benign.jsonl), whose
     prompts are never written as training questions.
Out: one JSONL file, one conversation a line, ``{"messages": [...], "topic": ...}``.

Deterministic (crawl2chat.synth.templated seeds its generator), so re-running the script
reproduces the committed file byte for byte; ``--check`` says whether it still does::

    PYTHONPATH=src:. .venv/bin/python scripts/build_demo_assistant.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from crawl2chat.chat_eval.refusal import load_prompts
from crawl2chat.synth.templated import build, load_templates

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "prompts/assistant_set.yaml"
OUT = ROOT / "data/demo/chat/assistant_templated.jsonl"
HELDOUT = [ROOT / f"data/demo/chat/eval_{name}.jsonl" for name in ("identity", "harmful", "benign")]


def render() -> str:
    exclude = [prompt for path in HELDOUT for prompt, _ in load_prompts(path)]
    conversations = build(load_templates(TEMPLATES), exclude)
    return "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in conversations)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed file differs from a fresh build")
    text = render()
    if parser.parse_args().check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.relative_to(ROOT)}: {'up to date' if same else 'differs from a fresh build'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    topics = Counter(json.loads(line)["topic"] for line in text.splitlines())
    print(f"wrote {OUT.relative_to(ROOT)}: {dict(topics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
