"""Content digests of files and folders (sha256), the identity used by lineage."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def folder_digest(folder: Path) -> str:
    """Digest over every file's relative path and content, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(b"\0")
        h.update(file_digest(path).encode())
    return h.hexdigest()


def path_digest(path: Path) -> str:
    return folder_digest(path) if path.is_dir() else file_digest(path)
