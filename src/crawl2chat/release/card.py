"""The model card of an exported model: ``hf/README.md``, written with
``huggingface_hub.ModelCard`` (YAML front matter + Markdown).

In: the stage (base or sft), its params section, its metrics, and the manifests of the
chain below it (newest first, as :func:`crawl2chat.lineage.upstream_folder` walks it).
Out: a card naming the data lineage down to the WARC sha256s, the token counts, the
training settings, the evaluation figures, intended use and limits, and the licence of
the data (the ``LICENSES.md`` beside local WARC sources, quoted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crawl2chat import lineage

CARD = "README.md"
LICENCES = "LICENSES.md"  # beside WARC files: who wrote the pages and under which licence
# figures shown in the card, in this order, when the stage measured them
_FIGURES = ("val_loss", "val_bits_per_byte", "train_loss", "heldout_loss", "unigram_entropy",
            "next_word_accuracy", "format_compliance", "refusal_rate", "benign_refusal_rate",
            "params", "tokens", "steps")
_USE = {
    "base": "A base language model: it continues text in the style of the crawled pages. "
            "It was trained for research and teaching on a small crawl; it is not "
            "instruction-tuned and not safe to put in front of users.",
    "sft": "A chat model: it answers in the chat template's turns and stops at "
           "`<|assistant_end|>`. It is small and was tuned on few conversations, so it "
           "states wrong facts confidently; use it to study the pipeline, not for advice.",
}


def _sources(chain: list[dict[str, Any]], root: Path) -> tuple[list[str], list[str]]:
    """Rows of (source, sha256) and the licence notes found beside local sources."""
    rows, licences = [], []
    seen: set[Path] = set()
    for manifest in chain:
        for name, info in manifest.get("inputs", {}).items():
            if info.get("kind") in ("file", "url"):
                rows.append(f"| {manifest['stage']} | `{name}` | `{info['digest']}` |")
                notes = (root / name).parent / LICENCES
                if info["kind"] == "file" and notes.is_file() and notes not in seen:
                    seen.add(notes)
                    licences.append(f"From `{notes.relative_to(root)}`:\n\n"
                                    + notes.read_text().strip())
    return rows, licences


def card_text(stage: str, run_id: str, section: dict[str, Any], metrics: dict[str, Any],
              chain: list[dict[str, Any]], root: Path) -> str:
    """The card's Markdown body (the front matter is added by :func:`write_card`)."""
    rows, licences = _sources(chain, root)
    runs = [f"| {m['stage']} | `{m.get('mlflow_run_id', '')}` | "
            f"`{m.get('output', {}).get('digest', '')[:16]}` | {m.get('records')} | "
            f"{m.get('tokens')} |" for m in chain]
    figures = [f"| {k} | {metrics[k]:.4g} |" for k in _FIGURES
               if isinstance(metrics.get(k), int | float)]
    settings = [f"| `{k}` | `{v}` |" for k, v in lineage.flatten({stage: section}).items()]
    return "\n".join([
        f"# crawl2chat {stage} model", "",
        "## Intended use and limits", "", _USE.get(stage, _USE["base"]), "",
        "## Data lineage", "",
        "Each stage below consumed the output of the one beneath it; `crawl2chat audit` "
        f"re-checks every digest (the manifests are in `lineage/`). This model's own run: "
        f"MLflow run `{run_id}`.", "",
        "| stage | MLflow run | output sha256 | records | tokens |", "|---|---|---|---|---|",
        *runs, "",
        "Sources (WARC files, conversation files) and their sha256:", "",
        "| stage | source | sha256 |", "|---|---|---|", *rows, "",
        "## Evaluation", "", "| figure | value |", "|---|---|", *figures, "",
        "## Training settings", "", "| setting | value |", "|---|---|", *settings, "",
        "## Licence of the data", "",
        *(licences or ["No licence notes were found beside the sources: the crawled pages "
                       "keep their authors' rights; check them before any reuse."]), "",
    ])


def write_card(hf_dir: Path, stage: str, run_id: str, section: dict[str, Any],
               metrics: dict[str, Any], chain: list[dict[str, Any]], root: Path) -> Path:
    """Write ``hf_dir/README.md``; return its path."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        library_name="transformers", pipeline_tag="text-generation",
        license="other", license_name="data-licences-in-card",
        tags=["crawl2chat", stage, "chat" if stage == "sft" else "base-model"],
        crawl2chat={"stage": stage, "sources": {
            name: info["digest"] for m in chain for name, info in m.get("inputs", {}).items()
            if info.get("kind") in ("file", "url")}})
    body = card_text(stage, run_id, section, metrics, chain, root)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    card.save(hf_dir / CARD)
    return hf_dir / CARD
