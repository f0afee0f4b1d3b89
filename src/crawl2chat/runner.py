"""Run one stage under the stage contract.

``execute(stage)``: read the stage's params section into its ``Cfg`` (bound to the
project by the stage's ``resolve`` where it has one), run the pure core into a
temporary folder, run the stage's quality gate on it, write ``manifest.json``,
then swap the temporary folder into place (so an interrupted or failed stage never
leaves a half output for DVC to cache), write the DVC metrics file and close the
MLflow run that records all of it. A run killed before it could clean up is cleaned up
by the next one: its temporary folders swept, its MLflow run marked failed, the
processes it started (Prefect's temporary API server, workers) stopped. The gate's
results (``quality/``) go to MLflow passed or failed; with ``$CRAWL2CHAT_KEEP_FAILED``
set a failed run's folder is kept as ``NAME.failed`` for inspection.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from crawl2chat import config, dvcfile, lineage, orphans, paths, registry, runtime, stages
from crawl2chat.digest import file_digest
from crawl2chat.errors import StageError
from crawl2chat.quality import gate
from crawl2chat.quality.suite import RESULTS_DIR
from crawl2chat.release.plots import write_plot_data

log = logging.getLogger("crawl2chat")


def execute(stage: str, root: Path | None = None) -> dict[str, float]:
    """Run ``stage`` end to end; return its metrics."""
    with orphans.own_children():  # what it starts can be found if it is killed
        return _execute(stage, root)


def _execute(stage: str, root: Path | None) -> dict[str, float]:
    root = (root or paths.project_root()).resolve()
    module = stages.load(stage)
    section = config.load_params(root).get(stage)
    if section is None:
        raise StageError(f"params.yaml has no '{stage}' section: run `crawl2chat compose`")
    cfg = config.build(module.Cfg, section, stage)
    bind = getattr(module, "resolve", None)
    if bind:  # project-relative paths in the config are read from root
        cfg = bind(cfg, root)
    runtime.quiet_libraries()  # the stage module's imports may have reset log levels

    in_dir = paths.stage_input(stage, root)
    needs_input = getattr(module, "needs_input", None)
    if needs_input is not None and not needs_input(cfg):  # e.g. text from its own source
        in_dir = None
    inputs: dict[str, dict[str, str]] = {}
    if in_dir is not None:
        inputs[paths.STAGE_OUTPUTS[paths.STAGES[paths.STAGES.index(stage) - 1]]] = \
            _upstream_input(in_dir)
    external = getattr(module, "external_inputs", None)
    local_files = external(cfg, root) if external else []
    dvcfile.check_inputs_are_deps(root, stage, local_files)
    for file in local_files:
        rel = os.path.relpath(file, root)
        inputs[rel] = {"digest": file_digest(file), "kind": "file"}

    out_dir = paths.stage_output(stage, root)
    if runtime.process_rank() > 0:
        return _run_as_helper_rank(module, cfg, in_dir, out_dir)
    sweep_leftovers(out_dir)
    orphans.stop_orphans()
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise _write_error(stage, err, tmp) from err
    started = time.time()
    orphans.fail_dead_runs(lineage.EXPERIMENT)  # runs a SIGKILL left RUNNING
    with lineage.stage_run(stage, section, inputs, root) as run:
        orphans.claim()
        try:
            metrics = module.run(cfg, in_dir, tmp)
            # inputs only known once read (a remote WARC's sha256): recorded like the rest
            discovered = getattr(module, "discovered_inputs", None)
            late = discovered(tmp) if discovered else {}
            run.datasets += lineage.log_inputs(late, root)
            inputs.update(late)
            gate(stage, tmp, cfg)
            _write_model_card(tmp, stage, run.run_id, section, metrics, in_dir, root)
            # what the stage decided at run time (e.g. the precision it trained in)
            details = {k: v for k, v in metrics.items() if isinstance(v, str)}
            manifest = {
                "stage": stage,
                "params_hash": config.section_hash(section),
                "git_revision": lineage.git_revision(root),
                "inputs": inputs,
                "records": metrics.get("records"),
                "tokens": metrics.get("tokens"),
                "wall_time_s": round(time.time() - started, 3),
                "details": details,
                "mlflow_run_id": run.run_id,
                "created_unix": int(time.time()),
                "output": lineage.output_record(tmp),
            }
            lineage.write_manifest(tmp, manifest)
            lineage.carry_chain(tmp, manifest, in_dir, root)
        except BaseException as err:
            _log_quality_results(tmp)
            _discard_failed(tmp, out_dir)
            if isinstance(err, OSError) and err.errno in _WRITE_ERRNOS:
                raise _write_error(stage, err, tmp) from err
            raise
        _swap_into_place(tmp, out_dir)
        _committed(module, cfg, in_dir, out_dir)
        _log_quality_results(out_dir)
        metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        metrics["wall_time_s"] = manifest["wall_time_s"]
        run.finish(metrics, out_dir, details)
        _register_model(run, out_dir, metrics, root)
    metrics_file = paths.metrics_file(stage, root)
    metrics_file.parent.mkdir(exist_ok=True)
    config.write_atomic(metrics_file, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    write_plot_data(stage, out_dir, root)
    return metrics


KEEP_FAILED_ENV = "CRAWL2CHAT_KEEP_FAILED"  # `--keep-failed`: DVC passes it down to stages
FAILED_SUFFIX = ".failed"


def _discard_failed(tmp: Path, out_dir: Path) -> None:
    """Remove a failed run's folder, or keep it as ``NAME.failed`` (replacing an older one)
    when ``$CRAWL2CHAT_KEEP_FAILED`` is set, so that its gate results can be read."""
    if not os.environ.get(KEEP_FAILED_ENV):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    kept = out_dir.with_name(out_dir.name + FAILED_SUFFIX)
    shutil.rmtree(kept, ignore_errors=True)
    tmp.rename(kept)
    log.warning("kept the failed output of %s in %s", out_dir.name, kept)


def _log_quality_results(folder: Path) -> None:
    """Log the gate's validation results (JSON, Data Docs HTML) to the active MLflow run."""
    import mlflow

    results = folder / RESULTS_DIR
    if results.is_dir() and mlflow.active_run() is not None:
        mlflow.log_artifacts(str(results), artifact_path=RESULTS_DIR)


def _upstream_input(in_dir: Path) -> dict[str, str]:
    """The upstream stage folder as an input: its bytes re-hashed now (so a folder
    changed since its manifest was written shows up as a mismatch in the audit), its
    manifest's sha256 and its MLflow run."""
    upstream = lineage.read_manifest(in_dir)
    return {"digest": lineage.output_record(in_dir)["digest"], "kind": "stage",
            "manifest_sha256": file_digest(in_dir / paths.MANIFEST),
            "mlflow_run_id": upstream.get("mlflow_run_id", "")}


def _register_model(run: lineage.StageRun, out_dir: Path, metrics: dict[str, float],
                    root: Path) -> None:
    """A model stage's output as a new version in the MLflow registry (champion by the
    rule in ``params.yaml``'s ``registry``)."""
    if run.stage in registry.REGISTERED:
        rule = registry.ChampionRule.from_params(config.load_params(root), run.stage)
        registry.register(run.stage, run.run_id, out_dir, metrics, run.datasets, rule)


def _write_model_card(out_dir: Path, stage: str, run_id: str, section: dict[str, Any],
                      metrics: dict[str, Any], in_dir: Path | None, root: Path) -> None:
    """A model card in the stage's Hugging Face export, if it wrote one."""
    from crawl2chat.release.card import write_card

    hf = out_dir / "hf"
    if hf.is_dir():
        write_card(hf, stage, run_id, section, metrics, lineage.chain_below(in_dir, root), root)


def _run_as_helper_rank(module: Any, cfg: Any, in_dir: Path | None,
                        out_dir: Path) -> dict[str, float]:
    """A rank above 0 of a multi-process (DDP) stage: it trains alongside rank 0 but owns
    no output, so it writes into a scratch folder that is thrown away, and records no
    MLflow run, manifest or metrics: rank 0 does all of that once."""
    scratch = out_dir.with_name(f"{out_dir.name}.tmp-rank{runtime.process_rank()}-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        module.run(cfg, in_dir, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {}


# what a killed run leaves beside its output: NAME.tmp-PID, NAME.tmp-rankR-PID, NAME.old-PID
# (not NAME.tmp-ckpt-DIGEST: those are resumable checkpoints)
_LEFTOVER = re.compile(r"\.(?:tmp-(?:rank\d+-)?|old-)(\d+)")


def sweep_leftovers(out_dir: Path) -> list[Path]:
    """Remove the temporary folders of runs of this stage whose process is gone."""
    swept = []
    for folder in sorted(out_dir.parent.glob(f"{out_dir.name}.*")):
        found = _LEFTOVER.fullmatch(folder.name[len(out_dir.name):])
        if found and folder.is_dir() and not _alive(int(found[1])):
            shutil.rmtree(folder, ignore_errors=True)
            swept.append(folder)
    if swept:
        log.info("removed %d folder(s) left by killed runs: %s", len(swept),
                 ", ".join(f.name for f in swept))
    return swept


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier attempt of this very process: stale as well
    return orphans.alive(pid)


# a full disk, a quota, a read-only or unwritable folder, a file-size limit, a file in the way
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                           errno.EPERM, errno.EFBIG, errno.ENOTDIR, errno.EEXIST})


def _write_error(stage: str, err: OSError, tmp: Path) -> StageError:
    """One line naming the path: the file the system named, else the folder written to."""
    where = err.filename or tmp
    return StageError(f"{stage}: cannot write {where}: {err.strerror or err} (the output "
                      f"goes to {tmp.parent}; free space there or make it writable)")


def _committed(module: Any, cfg: Any, in_dir: Path | None, out_dir: Path) -> None:
    """The stage's own clean-up once its output is in place (the base stage's resume
    checkpoints): not earlier, so that a failed gate or a kill before the rename can
    still resume."""
    hook = getattr(module, "committed", None)
    if hook:
        hook(cfg, in_dir, out_dir)


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp``; the old output is removed only after the rename."""
    old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
