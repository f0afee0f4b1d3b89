"""Re-run the SFT evaluation on a trained chat model: format, identity and refusal rates.

In:  a chat model folder (e.g. ``models/sft``) and Hydra overrides of ``conf/`` naming the
     ``sft.data`` sources it was trained on (their held-out split is what format
     compliance is judged on) and the prompt sets (``sft.eval.*``).
Out: one JSON line on stdout: the rates of chat_eval/evaluate.py ``rates`` and the CPU.

The judges and prompt sets are the current ones, so a model trained before a change to the
data is measured the same way as one trained after it (the README's ablation table)::

    PYTHONPATH=src:. .venv/bin/python scripts/eval_chat_model.py models/sft [OVERRIDE ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from benchmarks._machine import machine
from crawl2chat import config
from crawl2chat.chat.data import load_sources, split
from crawl2chat.chat_eval.evaluate import evaluate, rates
from crawl2chat.chat_eval.refusal import load_prompts
from crawl2chat.model.checkpoint import load_model
from crawl2chat.stages import sft

ROOT = Path(__file__).resolve().parents[1]


def main(model_dir: str, *overrides: str) -> int:
    cfg = config.build(sft.Cfg, config.compose(ROOT, list(overrides))["sft"], "sft")
    model, tok = load_model(Path(model_dir))
    torch.manual_seed(0)
    _, heldout = split(load_sources(cfg.data, ROOT).conversations, cfg.heldout_fraction)
    prompt_sets = {k: load_prompts(ROOT / f)[: cfg.eval.refusal_prompts]
                   for k, f in cfg.eval.prompt_files().items()}
    replies = evaluate(model, tok, heldout, cfg.data, cfg.eval, model.config.block_size,
                       prompt_sets)
    print(json.dumps({"model": model_dir, **rates(replies), "machine": machine()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
