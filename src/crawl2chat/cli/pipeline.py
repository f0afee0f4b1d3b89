"""Commands that build the pipeline's outputs and name their lineage: run, compose,
stage, audit, report."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from crawl2chat import orphans, paths, runtime


def _flow(file_name: str, name: str, root: Path) -> Any:
    """The flow (or function) ``name`` of the project's ``flows/FILE_NAME.py``, loaded from
    the file as Prefect loads a deployment's entrypoint: the flows belong to the project
    (as dvc.yaml does), not to the installed package."""
    from prefect.utilities.importtools import import_object

    file = paths.flow_file(file_name, root)
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: run crawl2chat inside its project")
    return import_object(f"{file}:{name}")


def _keep_failed(args: argparse.Namespace) -> None:
    """``--keep-failed``: through the environment, so that stages run by DVC see it too."""
    if args.keep_failed:
        from crawl2chat.runner import KEEP_FAILED_ENV

        os.environ[KEEP_FAILED_ENV] = "1"


def _cmd_run(args: argparse.Namespace) -> int:
    from crawl2chat import config, stages

    root = paths.project_root()
    config.compose_and_save(root, args.overrides, stages.check_params)
    pipeline = _flow("pipeline", "pipeline", root)
    runtime.quiet_libraries()
    _keep_failed(args)
    pipeline(force=args.force)
    print("\nDone. Talk to the model:  crawl2chat chat models/sft")
    print("Data behind it:           crawl2chat audit models/sft")
    return 0


def _cmd_compose(args: argparse.Namespace) -> int:
    from crawl2chat import config, stages

    root = paths.project_root()
    file = config.compose_and_save(root, None if args.saved else args.overrides,
                                   stages.check_params)
    print(f"wrote {file.relative_to(root)} (overrides: {config.read_overrides(root) or 'none'})")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    run_stage = _flow("stages", "run_stage", paths.project_root())
    runtime.quiet_libraries()
    _keep_failed(args)
    with orphans.own_children():  # the flow's API server and workers, if it is killed
        metrics = run_stage(args.name)
    print(json.dumps({args.name: metrics}, indent=2, sort_keys=True))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from crawl2chat.report import write_report

    html_file, md_file = write_report(args.run, Path(args.output) if args.output else None)
    print(f"wrote {html_file} and {md_file}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from crawl2chat.cli.audit import print_audit, print_document

    if args.doc:
        return print_document(args.model_dir, args.doc, as_json=args.json)
    return print_audit(args.model_dir, as_json=args.json, quick=args.quick)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's subcommands."""
    p = sub.add_parser("run", help="compose the config and rebuild every stale stage",
                       description="Save OVERRIDES to conf/overrides.yaml, compose conf/ into "
                       "params.yaml, then run the pipeline flow (`dvc repro`): only stages "
                       "whose code, data or params changed are rebuilt.")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                   help="Hydra overrides, e.g. experiment=smoke base.max_steps=100")
    p.add_argument("--force", action="store_true", help="rebuild every stage")
    _keep_failed_arg(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("compose", help="resolve conf/ (+ overrides) into params.yaml",
                       description="Compose the Hydra config in conf/ with OVERRIDES and write "
                       "the resolved tree to params.yaml (what DVC and the stages read).")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides")
    p.add_argument("--saved", action="store_true",
                   help="use the overrides saved in conf/overrides.yaml (the DVC stage does)")
    p.set_defaults(func=_cmd_compose)

    p = sub.add_parser("stage", help="run one stage as a Prefect flow (what dvc.yaml calls)",
                       description="Run one pipeline stage from params.yaml: "
                       + ", ".join(paths.STAGES) + ". Writes its output folder atomically, "
                       "checks it with its quality gate and logs an MLflow run.")
    p.add_argument("name", choices=paths.STAGES, help="the stage to run")
    _keep_failed_arg(p)
    p.set_defaults(func=_cmd_stage)

    p = sub.add_parser("audit", help="name and re-check the data and runs behind a model",
                       description="Walk the manifest chain from MODEL back to the crawl's "
                       "WARC files: re-hash every output folder and source file, check that "
                       "each stage was trained on its upstream's current output, and that "
                       "the MLflow runs agree. Names the first broken link; exit status 1.")
    p.add_argument("model_dir", metavar="MODEL",
                   help="a stage output folder (models/sft), an exported hf/ folder, an "
                   "MLflow run id or a registered model version (crawl2chat-sft/3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quick", action="store_true",
                   help="compare sizes instead of re-hashing files of 1 MiB or more")
    p.add_argument("--doc", metavar="URL|DOC_ID",
                   help="say whether this page was kept, why or why not, and where its "
                   "tokens went")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("report", help="write the report card of a pipeline run (HTML + Markdown)",
                       description="One self-contained HTML page (and its Markdown beside it) "
                       "from what MLflow and DVC recorded for a pipeline run: data funnel, "
                       "language mix, tokenizer compression, loss curves, throughput and MFU, "
                       "evaluation, sample generations and the lineage chain.")
    p.add_argument("--run", help="the pipeline run id (tag crawl2chat.pipeline_run_id of its "
                   "stage runs; default: the latest)")
    p.add_argument("-o", "--output", help="the HTML file (default: reports/RUN.html)")
    p.set_defaults(func=_cmd_report)


def _keep_failed_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-failed", action="store_true",
                   help="keep a failed stage's output folder as NAME.failed (its quality/ "
                   "holds the gate's results) instead of removing it")
