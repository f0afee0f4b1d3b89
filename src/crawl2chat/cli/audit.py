"""Render ``lineage.audit`` for people (a table) or for programs (JSON).

Besides the chain, both list the data sources at its roots: every input that is not an
upstream stage (WARC files and URLs, Parquet files, a Hugging Face dataset with its
config, split and revision), with the stage that read it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from crawl2chat.lineage import AuditLink, audit


def data_sources(chain: list[AuditLink]) -> list[dict[str, str]]:
    """Every non-stage input of the chain: stage, name, kind, digest and, for a hub
    dataset, its id, config, split and revision."""
    return [{"stage": link.stage, "name": name, **info} for link in chain
            for name, info in link.inputs.items() if info.get("kind") != "stage"]


def describe_source(source: dict[str, str]) -> str:
    if source.get("kind") == "dataset":
        return (f"Hugging Face dataset {source.get('hf')} (config {source.get('config') or '-'}, "
                f"split {source.get('split')}, revision {source.get('revision') or 'main'})")
    return f"{source.get('kind')}, sha256 {source.get('digest', '')[:16]}"


def print_audit(model_dir: Path, as_json: bool = False) -> int:
    """Print the chain behind ``model_dir``; exit status 1 if any link fails its check."""
    from rich.console import Console
    from rich.table import Table

    chain = audit(model_dir)
    ok = all(link.run_found and link.inputs_match for link in chain)
    if as_json:
        print(json.dumps({"model": str(model_dir), "verified": ok,
                          "chain": [dataclasses.asdict(link) for link in chain],
                          "sources": data_sources(chain)}, indent=2))
        return 0 if ok else 1
    table = Table(title=f"Data and runs behind {model_dir}", show_lines=True)
    for column in ("stage", "output", "MLflow run", "git revision", "inputs", "sha256", "check"):
        table.add_column(column, no_wrap=column != "inputs")
    for link in chain:
        names = "\n".join(link.inputs)
        digests = "\n".join(info["digest"][:16] for info in link.inputs.values())
        check = ("ok" if link.run_found and link.inputs_match
                 else "run missing" if not link.run_found else "digest mismatch")
        table.add_row(link.stage, link.folder, link.mlflow_run_id[:12],
                      link.git_revision[:12], names, digests, check)
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)
    sources = data_sources(chain)
    print(f"Data sources ({len(sources)}):")
    for source in sources:
        print(f"  {source['stage']}: {source['name']} ({describe_source(source)})")
    print("verified: every link matches its MLflow run" if ok
          else "NOT verified: see the check column")
    return 0 if ok else 1
