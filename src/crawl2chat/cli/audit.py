"""Render the audit (:mod:`crawl2chat.audit`) for people (a table, the first break named)
or for programs (JSON); exit status 1 when any check fails.

Besides the chain, both list the data sources at its roots: every input that is not an
upstream stage (WARC files and URLs, Parquet files, a Hugging Face dataset with its
config, split and revision), with the stage that read it."""

from __future__ import annotations

import dataclasses
import json

from crawl2chat import paths
from crawl2chat.audit import chain as chains
from crawl2chat.audit.checks import Report, verify


def data_sources(report: Report) -> list[dict[str, str]]:
    """Every non-stage input of the chain: stage, name, kind, digest and, for a hub
    dataset, its id, config, split and revision."""
    return [{"stage": link.stage, "name": name, **info} for link in report.chain
            for name, info in link.manifest.get("inputs", {}).items()
            if info.get("kind") != "stage"]


def describe_source(source: dict[str, str]) -> str:
    if source.get("kind") == "dataset":
        return (f"Hugging Face dataset {source.get('hf')} (config {source.get('config') or '-'}, "
                f"split {source.get('split')}, revision {source.get('revision') or 'main'})")
    return f"{source.get('kind')}, sha256 {source.get('digest', '')[:16]}"


def report_json(target: str, report: Report) -> dict[str, object]:
    return {"model": target, "verified": report.verified,
            "first_break": str(report.breaks[0]) if report.breaks else None,
            "breaks": [dataclasses.asdict(b) for b in report.breaks],
            "notes": report.notes,
            "chain": [{"stage": link.stage, "where": link.where,
                       "mlflow_run_id": link.manifest.get("mlflow_run_id", ""),
                       "git_revision": link.manifest.get("git_revision", ""),
                       "params_hash": link.manifest.get("params_hash", ""),
                       "output_digest": link.manifest.get("output", {}).get("digest", ""),
                       "inputs": link.manifest.get("inputs", {}),
                       "ok": not any(b.stage == link.stage for b in report.breaks)}
                      for link in report.chain],
            "sources": data_sources(report)}


def print_audit(target: str, as_json: bool = False, quick: bool = False) -> int:
    """Check the chain behind ``target`` (a folder, an MLflow run id or ``name/version``)
    and print it; 1 if any link fails a check."""
    from rich.console import Console
    from rich.table import Table

    root = paths.project_root()
    report = verify(chains.load(target, root), root, quick=quick)
    if as_json:
        print(json.dumps(report_json(target, report), indent=2))
        return 0 if report.verified else 1
    table = Table(title=f"Data and runs behind {target}", show_lines=True)
    for column in ("stage", "output", "MLflow run", "git revision", "inputs", "sha256", "check"):
        table.add_column(column, no_wrap=column != "inputs")
    for link in report.chain:
        inputs = link.manifest.get("inputs", {})
        failed = [b.check for b in report.breaks if b.stage == link.stage]
        table.add_row(link.stage, link.where, link.manifest.get("mlflow_run_id", "")[:12],
                      link.manifest.get("git_revision", "")[:12], "\n".join(inputs),
                      "\n".join(info["digest"][:16] for info in inputs.values()),
                      "ok" if not failed else "FAILED: " + ", ".join(dict.fromkeys(failed)))
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)
    sources = data_sources(report)
    print(f"Data sources ({len(sources)}):")
    for source in sources:
        print(f"  {source['stage']}: {source['name']} ({describe_source(source)})")
    for note in report.notes:
        print(f"note: {note}")
    if report.verified:
        print("verified: every link and MLflow run matches, every file "
              + ("checked (--quick: see the notes)" if quick else "re-hashed"))
        return 0
    print(f"NOT verified: first broken link: {report.breaks[0]}")
    for extra in report.breaks[1:]:
        print(f"  also: {extra}")
    return 1


def print_document(target: str, doc: str, as_json: bool = False) -> int:
    """Say whether one page (URL or doc id) made it into the model behind ``target``."""
    from crawl2chat.audit.document import trace

    root = paths.project_root()
    answer = trace(chains.load(target, root), doc, root)
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        for key, value in answer.items():
            print(f"{key:>10}: {value}")
    return 0 if answer["found"] else 1
