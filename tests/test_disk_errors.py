"""A full disk, a file-size limit or a read-only output folder stops a stage with one line
naming the path (real processes: RLIMIT_FSIZE everywhere; a tiny or read-only tmpfs where
this user may mount one), and leaves no temporary folder behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from crawl2chat import paths

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import resource, signal, sys
from pathlib import Path
limit = int(sys.argv[2])
if limit:  # writes beyond `limit` bytes fail with EFBIG instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from crawl2chat.errors import report_errors
from crawl2chat.runner import execute
with report_errors():
    execute("crawl", Path(sys.argv[1]))
"""


def _project(root: Path) -> Path:
    (root / "warc").mkdir(parents=True)
    for source in sorted((REPO / "data/demo/web").glob("*.warc.gz")):
        shutil.copy(source, root / "warc" / source.name)
    # one shard of all records: a file of some MB
    (root / paths.PARAMS_FILE).write_text(yaml.safe_dump(
        {"crawl": {"sources": ["warc/*.warc.gz"], "records_per_shard": 100_000}}))
    return root


def _store(state: Path) -> str:
    """A fresh MLflow store with its tables made (about 1 MB), for the child to log to."""
    uri = f"sqlite:///{state / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def _crawl(root: Path, state: Path, limit: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
           # its own MLflow store, made here: the size limit must hit the output, not it
           "MLFLOW_TRACKING_URI": _store(state)}
    return subprocess.run([sys.executable, "-c", CHILD, str(root), str(limit)], env=env,
                          capture_output=True, text=True, timeout=300)


def _one_line_naming(done: subprocess.CompletedProcess[str], folder: Path, needle: str
                     ) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("crawl2chat: error:")]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert str(folder) in line and needle in line, line
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]


def test_a_file_size_limit_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    root = _project(tmp_path / "project")
    store = _store(tmp_path)  # the limit: room for the store to grow, not for the shard
    limit = Path(store.removeprefix("sqlite:///")).stat().st_size + 512 * 1024
    done = _crawl(root, tmp_path, limit=limit)
    _one_line_naming(done, root / "data", "File too large")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs; skipped where this user may not mount one (needs root)."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_naming_the_folder(tmp_path: Path, tmpfs: Path) -> None:
    root = _project(tmp_path / "project")
    (root / "data").symlink_to(tmpfs)
    _one_line_naming(_crawl(root, tmp_path), root / "data", "No space left on device")


def test_a_read_only_output_folder_is_one_line_naming_it(tmp_path: Path, tmpfs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    root = _project(tmp_path / "project")
    (root / "data").symlink_to(tmpfs)
    _one_line_naming(_crawl(root, tmp_path), root / "data", "Read-only file system")
