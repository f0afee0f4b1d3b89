"""Quality gate of the ``sft`` stage: the chat model ends its turns and learned something.

In:  the stage's output folder (``eval.json``, ``replies.jsonl``, the model files) and its
     ``Cfg`` (the thresholds: ``min_train_conversations`` and those of ``sft.eval``).
Out: tables with expectations, validated by the runner.
The identity and refusal rates are always checked to be rates in [0, 1] and to come from
every prompt of their set; ``eval.min_identity`` / ``eval.min_refusal_harmful`` /
``eval.max_refusal_benign`` gate them only when set (the defaults, 0, 0 and 1, report
without gating).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd

from crawl2chat import paths
from crawl2chat.chat_eval.evaluate import KINDS, EvalCfg
from crawl2chat.model.checkpoint import CONFIG, TOKENIZER_DIR, WEIGHTS
from crawl2chat.model.config import LOSS_CURVE
from crawl2chat.quality.suite import Table
from crawl2chat.stages.sft import EVAL_FILE, REPLIES_FILE
from crawl2chat.tokenizer.special import SPECIAL_TOKENS
from crawl2chat.tokenizer.tokenizer import TOKENIZER_FILE, Tokenizer

E = gx.expectations
MODEL_FILES = (WEIGHTS, CONFIG, f"{TOKENIZER_DIR}/{TOKENIZER_FILE}", paths.REPORT,
               LOSS_CURVE, EVAL_FILE, REPLIES_FILE)
_CONTROL_TEXT = "|".join(t.replace("|", r"\|") for t in SPECIAL_TOKENS)


def tables(out_dir: Path, cfg: Any) -> list[Table]:
    limits: EvalCfg = cfg.eval
    metrics = json.loads((out_dir / EVAL_FILE).read_text())["metrics"]
    summary = pd.DataFrame([metrics])
    replies = pd.read_json(out_dir / REPLIES_FILE, lines=True, dtype=False) \
        if (out_dir / REPLIES_FILE).stat().st_size else pd.DataFrame(
            columns=["kind", "prompt", "reply", "new_tokens", "ended", "refused"])
    files = pd.DataFrame({"file": list(MODEL_FILES),
                          "bytes": [(out_dir / f).stat().st_size if (out_dir / f).is_file()
                                    else 0 for f in MODEL_FILES]})
    config = json.loads((out_dir / CONFIG).read_text())
    tokenizer = Tokenizer.load(out_dir / "tokenizer")
    shapes = pd.DataFrame([{"model_vocab": config["vocab_size"],
                            "tokenizer_vocab": tokenizer.vocab_size}])
    return [
        Table("summary", summary, [
            E.ExpectColumnValuesToBeBetween(column="format_compliance",
                                            min_value=limits.min_format_compliance, max_value=1.0),
            E.ExpectColumnValuesToBeBetween(column="format_judged", min_value=1),
            E.ExpectColumnValuesToNotBeNull(column="heldout_loss"),  # NaN counts as null
            E.ExpectColumnValuesToBeBetween(column="heldout_loss", min_value=0.0,
                                            max_value=limits.max_heldout_loss),
            # fine-tuning must lower the loss on conversations it never saw
            E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="base_heldout_loss",
                                                      column_B="heldout_loss"),
            E.ExpectColumnValuesToBeBetween(column="records",
                                            min_value=cfg.min_train_conversations),
            E.ExpectColumnValuesToBeBetween(column="tokens", min_value=1),
        ]),
        *_refusal_tables(metrics, replies, limits),
        Table("replies", replies, [
            E.ExpectColumnValuesToBeInSet(column="kind", value_set=list(KINDS)),
            E.ExpectColumnValuesToBeInSet(column="refused", value_set=[True, False]),
            E.ExpectColumnValuesToNotBeNull(column="reply"),
            # a model that gives every prompt the same answer has collapsed, however well
            # it ends its turns
            E.ExpectColumnProportionOfUniqueValuesToBeBetween(
                column="reply", min_value=limits.min_distinct_replies),
            # a reply shows text only: control tokens end a turn, they are never printed
            E.ExpectColumnValuesToNotMatchRegex(column="reply", regex=_CONTROL_TEXT),
            E.ExpectColumnValuesToBeBetween(column="new_tokens", min_value=0,
                                            max_value=limits.max_new_tokens),
        ]),
        Table("eval_prompts", replies[replies["kind"] == "prompt"], [
            E.ExpectTableRowCountToEqual(value=len(limits.prompts)),  # every one answered
        ]),
        Table("files", files, [
            E.ExpectColumnValuesToBeBetween(column="bytes", min_value=1),
        ]),
        Table("shapes", shapes, [
            # every token id must have a row in the embedding
            E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="model_vocab",
                                                      column_B="tokenizer_vocab", or_equal=True),
        ]),
    ]


def _refusal_tables(metrics: dict[str, float], replies: pd.DataFrame, cfg: EvalCfg
                    ) -> list[Table]:
    """One table per prompt set the stage measured (a set set to null is not)."""
    tables = []
    for kind, name, low, high in (("identity", "identity", cfg.min_identity, 1.0),
                                  ("harmful", "refusal_harmful", cfg.min_refusal_harmful, 1.0),
                                  ("benign", "refusal_benign", 0.0, cfg.max_refusal_benign)):
        if getattr(cfg, kind) is None:
            continue
        asked = int((replies["kind"] == kind).sum())
        rate = pd.DataFrame([{"rate": metrics.get(name),
                              "prompts": metrics.get(f"{name}_prompts")}])
        tables.append(Table(name, rate, [
            E.ExpectColumnValuesToNotBeNull(column="rate"),
            E.ExpectColumnValuesToBeBetween(column="rate", min_value=max(0.0, low),
                                            max_value=min(1.0, high)),
            E.ExpectColumnValuesToBeBetween(column="prompts", min_value=max(asked, 1),
                                            max_value=max(asked, 1)),
        ]))
    return tables
