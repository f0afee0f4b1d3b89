"""Where WARC input comes from: local paths and globs, or URLs read through fsspec.

In: the crawl stage's ``sources`` patterns: a path or glob (relative to the project
root, or absolute), ``file://`` URLs, or any URL whose fsspec protocol package is
installed (``http(s)://`` with aiohttp, ``s3://`` with s3fs, ``memory://`` in tests;
globs where the file system can list, e.g. ``s3://bucket/crawl/*.warc.gz``).
Out: :func:`resolve` lists the files as :class:`Source` (local ones as paths, so DVC and
lineage can fingerprint them), sorted and without repeats; :func:`open_remote` gives a
read-once stream of a remote file that hashes and counts the bytes read through it
(:class:`Hashing`): remote files are streamed, never copied whole to disk.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from crawl2chat.crawl.http_stream import HttpCfg, HttpStream, StreamFailed
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


class Hashing(io.RawIOBase):
    """A read-once view of ``raw`` that counts and hashes the bytes read through it: the
    file's size and sha256 once read to its end, else those of the part read."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw, self.size, self._digest = raw, 0, hashlib.sha256()
        self._failed: OSError | None = None

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` whole unless the file ends: how much a reader has consumed when
        it stops early then depends on the file alone, not on how the network cut it."""
        if self._failed is not None:
            raise self._failed
        n = 0
        while n < len(buffer):
            try:
                chunk = self.raw.read(len(buffer) - n)
            except OSError as err:
                if not n:
                    raise
                self._failed = err  # hand out what arrived first; fail on the next read
                break
            if not chunk:
                break
            buffer[n:n + len(chunk)] = chunk
            self._digest.update(chunk)
            n += len(chunk)
        self.size += n
        return n


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256, size) of a local file, read in pieces."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@contextlib.contextmanager
def open_remote(url: str, http: HttpCfg) -> Iterator[Hashing]:
    """``url`` as a read-once stream that hashes what it hands out; nothing is copied to
    disk. HTTP(S) goes through :class:`HttpStream` (retries, Range resumes); any other
    fsspec URL is read sequentially. A missing file is an InputError naming the URL."""
    if url.startswith(("http://", "https://")):
        raw: BinaryIO = HttpStream(url, http)  # type: ignore[assignment]
    else:
        import fsspec

        try:
            raw = fsspec.open(url, "rb").open()
        except (OSError, ValueError) as err:  # fsspec maps a missing file to these
            raise InputError(f"crawl.sources: cannot read {redact(url)}: {redact(str(err))}"
                             ) from err
    try:
        yield Hashing(raw)
    except StreamFailed as err:
        if err.fatal:
            raise InputError(f"crawl.sources: cannot read {redact(url)}: "
                             f"{redact(err.detail)}") from err
        raise
    finally:
        raw.close()
