"""Gather what one pipeline run recorded into a :class:`Card` (plain data, no drawing).

In: the stage runs of a pipeline run (:mod:`.runs`) and the stage output folders DVC
holds in the workspace. A file of an output folder is read only when that folder's
manifest names the same MLflow run, so the card never mixes two runs. Out: the data
funnel, language mix, tokenizer compression, curves, evaluation, samples and lineage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat import lineage, paths
from crawl2chat.errors import StageError
from crawl2chat.report.runs import StageRecord


@dataclass
class Card:
    """Everything the report shows for one pipeline run."""

    pipeline_run: str
    stages: dict[str, StageRecord]
    funnel: list[dict[str, Any]] = field(default_factory=list)  # step, docs_in, docs_out
    reasons: dict[str, int] = field(default_factory=dict)  # removal reason -> documents
    language_mix: list[tuple[str, float, float]] = field(default_factory=list)
    compression: dict[str, float] = field(default_factory=dict)  # tokenizer -> bytes/token
    training: list[dict[str, Any]] = field(default_factory=list)  # per trained stage
    evaluation: list[tuple[str, str, str]] = field(default_factory=list)  # stage, what, value
    samples: list[tuple[str, str, str]] = field(default_factory=list)  # prompt, base, SFT
    lineage: list[dict[str, Any]] = field(default_factory=list)


def _own_file(record: StageRecord, root: Path, name: str) -> Path | None:
    """``name`` in the stage's output folder, if that folder is the record's run's."""
    folder = paths.stage_output(record.stage, root)
    try:
        manifest = lineage.read_manifest(folder)
    except StageError:
        return None
    file = folder / name
    return file if manifest.get("mlflow_run_id") == record.run_id and file.is_file() else None


def collect(pipeline_run: str, stages: dict[str, StageRecord], root: Path) -> Card:
    card = Card(pipeline_run=pipeline_run, stages=stages)
    if "text" in stages:
        _text(card, stages["text"], root)
    if "tokens" in stages:
        metrics = stages["tokens"].metrics
        for name, key in (("crawl2chat", "val_bytes_per_token_ours"),
                          ("GPT-2", "val_bytes_per_token_gpt2"),
                          ("GPT-4 (cl100k)", "val_bytes_per_token_cl100k")):
            if key in metrics:
                card.compression[name] = metrics[key]
    for stage in ("base", "sft"):
        if stage in stages:
            _trained(card, stages[stage])
    _samples(card, stages, root)
    card.lineage = _lineage(stages, root)
    return card


def _text(card: Card, record: StageRecord, root: Path) -> None:
    counts = _own_file(record, root, "counts.json")
    if counts:
        data = json.loads(counts.read_text())
        card.funnel = [{"step": s["name"], "docs_in": s["docs_in"], "docs_out": s["docs_out"]}
                       for s in data.get("steps", [])]
        card.reasons = dict(sorted(data.get("removed", {}).items(), key=lambda kv: -kv[1]))
    prefix = "text.languages."
    targets = {k[len(prefix):]: float(v) for k, v in record.params.items()
               if k.startswith(prefix)}
    achieved = {k[len("mix_"):]: v for k, v in record.metrics.items() if k.startswith("mix_")}
    card.language_mix = [(lang, targets.get(lang, 0.0), achieved.get(lang, 0.0))
                         for lang in sorted(set(targets) | set(achieved))]


_EVAL = {
    "base": [("validation loss (nats/token)", "val_loss", "{:.3f}"),
             ("bits per byte (val)", "val_bits_per_byte", "{:.3f}"),
             ("next-word accuracy", "next_word_accuracy", "{:.1%}"),
             ("next-word baseline (most frequent context word)",
              "next_word_baseline_accuracy", "{:.1%}")],
    "sft": [("held-out assistant loss, base model", "base_heldout_loss", "{:.3f}"),
            ("held-out assistant loss, SFT model", "heldout_loss", "{:.3f}"),
            ("format compliance", "format_compliance", "{:.1%}"),
            ("refusal rate, harmful prompts", "refusal_harmful", "{:.1%}"),
            ("refusal rate, benign prompts", "refusal_benign", "{:.1%}")],
}


def _trained(card: Card, record: StageRecord) -> None:
    m = record.metrics
    card.training.append({
        "stage": record.stage, "steps": m.get("steps"), "tokens_per_s": m.get("tokens_per_s"),
        "mfu": m.get("mfu"), "train_time_s": m.get("train_time_s"),
        "precision": record.params.get("resolved.precision", "")})
    for what, key, form in _EVAL[record.stage]:
        if key in m:
            card.evaluation.append((record.stage, what, form.format(m[key])))


def _samples(card: Card, stages: dict[str, StageRecord], root: Path) -> None:
    """Base and SFT generations by prompt: the SFT stage's own record of its base model
    answering ``sft.eval.prompts`` before fine-tuning when there is one (the same prompts
    and sampling), else the base stage's samples of its prompts."""
    base: dict[str, str] = {}
    sft: dict[str, str] = {}
    if "base" in stages and (file := _own_file(stages["base"], root, "samples.json")):
        base = {s["prompt"]: s["continuation"] for s in json.loads(file.read_text())}
    if "sft" in stages and (file := _own_file(stages["sft"], root, "base_replies.json")):
        base = {s["prompt"]: s["reply"] for s in json.loads(file.read_text())}
    if "sft" in stages and (file := _own_file(stages["sft"], root, "replies.jsonl")):
        for line in file.read_text().splitlines():
            reply = json.loads(line)
            if reply.get("kind") == "prompt":  # the fixed prompts of sft.eval.prompts
                sft[reply["prompt"]] = reply["reply"]
    prompts = list(dict.fromkeys([*base, *sft]))
    card.samples = [(p, base.get(p, ""), sft.get(p, "")) for p in prompts]


def _lineage(stages: dict[str, StageRecord], root: Path) -> list[dict[str, Any]]:
    """Per stage: its run, output digest, git revision and the digests of its inputs."""
    chain = []
    for stage, record in stages.items():
        manifest_file = _own_file(record, root, paths.MANIFEST)
        manifest = json.loads(manifest_file.read_text()) if manifest_file else {}
        chain.append({
            "stage": stage, "run_id": record.run_id, "rebuilt": record.rebuilt,
            "status": record.status, "output": paths.STAGE_OUTPUTS[stage],
            "output_digest": record.tags.get("output.digest", ""),
            "git_revision": record.tags.get("git.revision", ""),
            "inputs": {name: info.get("digest", "")
                       for name, info in manifest.get("inputs", {}).items()}})
    return chain
