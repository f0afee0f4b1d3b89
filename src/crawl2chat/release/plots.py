"""Plot data for DVC: each stage's curves as small files in ``metrics/`` (committed to
git beside the metrics, so ``dvc plots show`` and ``dvc plots diff REV`` draw any two
runs side by side).

In: a finished stage's output folder. Out: for ``base`` and ``sft``,
``metrics/STAGE_train_loss.csv`` (step, loss) and ``metrics/STAGE_val_loss.csv``
(step, val_loss) from ``train_log.jsonl``; for ``text``, ``metrics/text_funnel.json``
(one row per filter step: documents in and out). Nothing for the other stages.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from crawl2chat import paths
from crawl2chat.model.config import TRAIN_LOG

COUNTS = "counts.json"  # the text stage's per-step counts


def plot_files(stage: str, root: Path) -> list[Path]:
    """The plot data files ``stage`` writes (the names dvc.yaml lists)."""
    folder = root / paths.METRICS_DIR
    if stage in ("base", "sft"):
        return [folder / f"{stage}_train_loss.csv", folder / f"{stage}_val_loss.csv"]
    return [folder / "text_funnel.json"] if stage == "text" else []


def write_plot_data(stage: str, out_dir: Path, root: Path) -> list[Path]:
    """Write the plot data of a finished ``stage``; return the files written."""
    files = plot_files(stage, root)
    if not files:
        return []
    files[0].parent.mkdir(exist_ok=True)
    if stage == "text":
        steps = json.loads((out_dir / COUNTS).read_text())["steps"]
        rows = [{"step": s["name"], "docs_in": s["docs_in"], "docs_out": s["docs_out"]}
                for s in steps]
        files[0].write_text(json.dumps(rows, indent=1) + "\n")
        return files
    log = [json.loads(line) for line in (out_dir / TRAIN_LOG).read_text().splitlines()
           if line.strip()]
    for file, key in zip(files, ("loss", "val_loss"), strict=True):
        with file.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", key])
            writer.writerows([row["step"], row[key]] for row in log if key in row)
    return files
