"""Re-check every link of a chain (:mod:`.chain`); the first break is the answer.

Per link, three checks: (1) bytes: each output file re-hashed equals the manifest's
record, no file missing or added, and the record's digest is the one over its files;
(2) link: the downstream manifest's recorded input digest (and manifest sha256) equals
the upstream's output digest (and manifest file); (3) MLflow: the run the manifest names
exists, not deleted, with the same input digests, output digest and manifest sha256.
External inputs (WARC files, conversation files) are re-hashed where they are; a URL is
not re-fetched, and ``quick`` compares sizes instead of re-hashing files of
``QUICK_MIN_BYTES`` or more. Everything skipped is said in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawl2chat import lineage, paths
from crawl2chat.audit.chain import Link
from crawl2chat.digest import file_digest

QUICK_MIN_BYTES = 1 << 20


@dataclass
class Break:
    """A failed check: which stage, which check, which file, expected vs found."""

    stage: str
    check: str  # bytes, link, source or mlflow
    subject: str
    expected: str
    found: str

    def __str__(self) -> str:
        return (f"{self.stage}: {self.check} check failed for {self.subject}: "
                f"expected {self.expected}, found {self.found}")


@dataclass
class Report:
    chain: list[Link]
    breaks: list[Break] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.breaks


def verify(chain: list[Link], root: Path, quick: bool = False) -> Report:
    """Every check of every link, newest first (the first break is the first listed)."""
    report = Report(chain)
    for index, link in enumerate(chain):
        report.notes += [f"{link.stage}: {n}" for n in link.notes]
        if "output" not in link.manifest:
            report.breaks.append(Break(link.stage, "bytes", f"{link.where}/{paths.MANIFEST}",
                                       "an output record", "none (written before audits "
                                       "re-hashed: rerun the stage)"))
        elif link.files_at is not None:
            report.breaks += _bytes(link, quick, report.notes)
        else:
            report.notes.append(f"{link.stage}: output bytes not here ({link.where}): "
                                f"checked by digests only")
        upstream = chain[index + 1] if index + 1 < len(chain) else None
        report.breaks += _link(link, upstream)
        report.breaks += _sources(link, root, quick, report.notes)
        report.breaks += _mlflow(link)
    return report


def _short(digest: str) -> str:
    return digest[:16] if len(digest) == 64 else digest


def _bytes(link: Link, quick: bool, notes: list[str]) -> list[Break]:
    record = link.manifest["output"]
    files: dict[str, dict[str, Any]] = record.get("files", {})
    where = link.files_at
    assert where is not None
    breaks = []
    if lineage.files_digest(files) != record.get("digest"):
        breaks.append(Break(link.stage, "bytes", f"{link.where}/{paths.MANIFEST}",
                            f"output digest {_short(str(record.get('digest')))}",
                            f"{_short(lineage.files_digest(files))} over its own file list "
                            f"(the manifest was edited)"))
    wanted = {name.removeprefix(link.prefix): info for name, info in files.items()
              if name.startswith(link.prefix)}
    present = {p.relative_to(where).as_posix() for p in where.rglob("*")
               if p.is_file() and p.name != paths.MANIFEST}
    sized = 0
    for name, info in sorted(wanted.items()):
        file = where / name
        if name not in present:
            breaks.append(Break(link.stage, "bytes", f"{link.where}/{name}",
                                f"sha256 {_short(info['sha256'])}", "no such file"))
        elif quick and info["bytes"] >= QUICK_MIN_BYTES:
            sized += 1
            if file.stat().st_size != info["bytes"]:
                breaks.append(Break(link.stage, "bytes", f"{link.where}/{name}",
                                    f"{info['bytes']} bytes", f"{file.stat().st_size} bytes"))
        elif (found := file_digest(file)) != info["sha256"]:
            breaks.append(Break(link.stage, "bytes", f"{link.where}/{name}",
                                f"sha256 {_short(info['sha256'])}", f"sha256 {_short(found)}"))
    for name in sorted(present - set(wanted)):
        breaks.append(Break(link.stage, "bytes", f"{link.where}/{name}",
                            "no such file (not in the manifest)", "a file"))
    if sized:
        notes.append(f"{link.stage}: --quick: {sized} file(s) of {QUICK_MIN_BYTES >> 20} MiB "
                     f"or more compared by size, not re-hashed")
    return breaks


def _link(link: Link, upstream: Link | None) -> list[Break]:
    stage_inputs = {name: info for name, info in link.manifest.get("inputs", {}).items()
                    if info.get("kind") == "stage"}
    if upstream is None:
        return [Break(link.stage, "link", name, f"an upstream {paths.MANIFEST}", "none")
                for name in stage_inputs]
    breaks = []
    for name, info in stage_inputs.items():
        found = upstream.manifest.get("output", {}).get("digest", "none")
        if info.get("digest") != found:
            breaks.append(Break(link.stage, "link", f"input {name}",
                                f"digest {_short(info.get('digest', ''))} (as trained on)",
                                f"{_short(found)} in {upstream.where} (rerun or replaced "
                                f"since)"))
        if info.get("manifest_sha256") and info["manifest_sha256"] != upstream.manifest_sha256:
            breaks.append(Break(link.stage, "link", f"{upstream.where}/{paths.MANIFEST}",
                                f"sha256 {_short(info['manifest_sha256'])} (as trained on)",
                                f"sha256 {_short(upstream.manifest_sha256)}"))
    return breaks


def _sources(link: Link, root: Path, quick: bool, notes: list[str]) -> list[Break]:
    breaks = []
    for name, info in link.manifest.get("inputs", {}).items():
        kind = info.get("kind")
        if kind == "url":
            notes.append(f"{link.stage}: {name} is a URL: its recorded sha256 is checked "
                         f"against MLflow, the bytes are not re-fetched")
            continue
        if kind != "file":
            continue
        file = root / name
        if not file.is_file():
            notes.append(f"{link.stage}: source {name} is not in {root}: not re-hashed")
        elif quick and file.stat().st_size >= QUICK_MIN_BYTES:
            notes.append(f"{link.stage}: --quick: source {name} not re-hashed")
        elif (found := file_digest(file)) != info.get("digest"):
            breaks.append(Break(link.stage, "source", name,
                                f"sha256 {_short(info.get('digest', ''))}",
                                f"sha256 {_short(found)}"))
    return breaks


def _mlflow(link: Link) -> list[Break]:
    import mlflow
    from mlflow.exceptions import MlflowException

    run_id = link.manifest.get("mlflow_run_id", "")
    subject = f"run {run_id or '(none)'}"
    try:
        run = mlflow.get_run(run_id) if run_id else None
    except MlflowException:
        run = None
    if run is None or run.info.lifecycle_stage == "deleted":
        return [Break(link.stage, "mlflow", subject, "the run named in the manifest",
                      "deleted" if run is not None else "no such run")]
    breaks = []
    logged = {d.dataset.name: d.dataset.digest for d in (run.inputs.dataset_inputs or [])}
    expected = {name: info["digest"][:36] for name, info in link.manifest.get("inputs", {}).items()}
    for name in sorted(set(logged) | set(expected)):
        if logged.get(name) != expected.get(name):
            breaks.append(Break(link.stage, "mlflow", f"{subject} input {name}",
                                f"digest {expected.get(name, 'no such input')} (manifest)",
                                f"{logged.get(name, 'no such input')} (MLflow)"))
    tags = run.data.tags
    for tag, value in (("output.digest", link.manifest.get("output", {}).get("digest")),
                       ("manifest.sha256", link.manifest_sha256)):
        if tags.get(tag) != value:
            breaks.append(Break(link.stage, "mlflow", f"{subject} tag {tag}",
                                f"{_short(str(value))} (manifest)",
                                f"{_short(tags.get(tag, 'none'))} (MLflow)"))
    return breaks
