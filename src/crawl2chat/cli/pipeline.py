"""Commands that build the pipeline's outputs and name their lineage: run, compose,
stage, audit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from crawl2chat import paths, runtime


def _flow(file_name: str, flow_name: str, root: Path) -> Any:
    """The flow ``flow_name`` of the project's ``flows/FILE_NAME.py``, loaded from the file
    as Prefect loads a deployment's entrypoint: the flows belong to the project (as
    dvc.yaml does), not to the installed package."""
    from prefect.flows import load_flow_from_entrypoint

    file = paths.flow_file(file_name, root)
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: run crawl2chat inside its project")
    return load_flow_from_entrypoint(f"{file}:{flow_name}", use_placeholder_flow=False)


def _cmd_run(args: argparse.Namespace) -> int:
    from crawl2chat import config

    root = paths.project_root()
    config.write_overrides(root, args.overrides)
    config.write_params(root, config.compose(root))
    pipeline = _flow("pipeline", "pipeline", root)
    runtime.quiet_libraries()
    pipeline(force=args.force)
    print("\nDone. Talk to the model:  crawl2chat chat models/sft")
    print("Data behind it:           crawl2chat audit models/sft")
    return 0


def _cmd_compose(args: argparse.Namespace) -> int:
    from crawl2chat import config

    root = paths.project_root()
    if not args.saved:
        config.write_overrides(root, args.overrides)
    tree = config.compose(root)
    file = config.write_params(root, tree)
    print(f"wrote {file.relative_to(root)} (overrides: {config.read_overrides(root) or 'none'})")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    stage_flow = _flow("stages", args.name, paths.project_root())
    runtime.quiet_libraries()
    metrics = stage_flow()
    print(json.dumps({args.name: metrics}, indent=2, sort_keys=True))
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
