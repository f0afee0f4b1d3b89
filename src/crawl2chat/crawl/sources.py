"""Where WARC input comes from: local paths and globs, or URLs read through fsspec.

In: the crawl stage's ``sources`` patterns: a path or glob (relative to the project
root, or absolute), ``file://`` URLs, or any URL whose fsspec protocol package is
installed (``http(s)://`` with aiohttp, ``s3://`` with s3fs, ``memory://`` in tests;
globs where the file system can list, e.g. ``s3://bucket/crawl/*.warc.gz``).
Out: :func:`resolve` lists the files as :class:`Source` (local ones as paths, so DVC and
lineage can fingerprint them), sorted and without repeats; :func:`local_copy` gives a
readable local file for any source plus the sha256 and size of the bytes read. A remote
file is streamed once into a temporary file: the reader needs to seek (to resynchronise
after damage), which plain HTTP without range requests cannot do, and the bytes read are
exactly the ones hashed.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crawl2chat.errors import InputError
from crawl2chat.redact import redact, redact_url

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One input file: ``path`` if it is on this machine, else its ``url``."""

    path: Path | None = None
    url: str | None = None

    def name(self, root: Path) -> str:
        """What reports call it: the path relative to ``root`` if inside it, else as given."""
        if self.path is None:
            return redact_url(str(self.url))  # credentials in a URL stay out of every record
        try:
            return self.path.relative_to(root.resolve()).as_posix()
        except ValueError:
            return str(self.path)


def is_url(pattern: str) -> bool:
    return "://" in pattern


def _local(pattern: str, root: Path) -> list[Source]:
    if pattern.startswith("file://"):
        pattern = unquote(urlsplit(pattern).path)
    full = pattern if os.path.isabs(pattern) else str(root / pattern)
    found = sorted(Path(m).resolve() for m in glob.glob(full, recursive=True)
                   if Path(m).is_file())
    return [Source(path=p) for p in found]


def _remote(pattern: str) -> list[Source]:
    import fsspec

    try:
        fs, _, found = fsspec.core.get_fs_token_paths(pattern)
    except (ImportError, ValueError) as err:  # unknown protocol or its package missing
        raise InputError(f"crawl.sources: cannot read {pattern!r}: {err}") from err
    if not any(c in pattern for c in "*?["):
        return [Source(url=pattern)]  # one named file: its absence shows when it is read
    return [Source(url=fs.unstrip_protocol(p)) for p in sorted(found)]


def resolve(patterns: list[str], root: Path) -> list[Source]:
    """Every file the patterns name, in pattern order, each sorted; no repeats."""
    files: dict[Source, None] = {}
    for pattern in patterns:
        local = not is_url(pattern) or pattern.startswith("file://")
        matches = _local(pattern, root) if local else _remote(pattern)
        if not matches:
            raise InputError(f"crawl.sources: no WARC file matches {pattern!r}"
                             + (f" (looked in {root})" if local else ""))
        files.update(dict.fromkeys(matches))
    return list(files)


@contextlib.contextmanager
def local_copy(source: Source) -> Iterator[tuple[Path, str, int]]:
    """(a local file with the source's bytes, their sha256, their count); temp files go."""
    if source.path is not None:
        digest, size = hashlib.sha256(), 0
        with source.path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        yield source.path, digest.hexdigest(), size
        return
    import fsspec

    url = str(source.url)
    # block_size 0: one sequential HTTP stream, no range requests the server may not serve
    options = {"block_size": 0} if url.startswith(("http://", "https://")) else {}
    with tempfile.TemporaryDirectory(prefix="crawl2chat-warc-") as tmp:
        copy = Path(tmp) / (url.rstrip("/").rsplit("/", 1)[-1] or "source.warc")
        digest, size = hashlib.sha256(), 0
        try:
            with fsspec.open(url, "rb", **options) as src, copy.open("wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
        except (OSError, ValueError) as err:  # fsspec maps 404 and friends to these
            raise InputError(f"crawl.sources: cannot read {redact(url)}: {redact(str(err))}"
                             ) from err
        yield copy, digest.hexdigest(), size
