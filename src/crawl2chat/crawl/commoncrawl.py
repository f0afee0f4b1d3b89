"""Common Crawl by crawl id: which WARC files of a crawl to read.

In: :class:`CommonCrawlCfg` (the crawl id such as ``CC-MAIN-2024-10``, how many files, a
seed, the server's base URL and optionally where the crawl's ``warc.paths.gz`` is: a
local path or any URL). Out: :func:`pick_sources` reads the paths file (gzip or plain
text, one path per line), picks ``files`` of them deterministically and gives their URLs
under ``base_url`` as :class:`~crawl2chat.crawl.sources.Source`, in paths-file order, plus
what was read of the paths file (for the stage's ``sources.json``). The pick ranks every
path by sha256 of seed and path, so it depends on the seed and the set of paths only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from crawl2chat.crawl.http_stream import HttpCfg
from crawl2chat.crawl.sources import Source, file_digest, is_url, open_remote
from crawl2chat.errors import ConfigError, InputError

BASE_URL = "https://data.commoncrawl.org/"
_CRAWL_ID = re.compile(r"CC-MAIN-\d{4}-\d{2}")


@dataclass
class CommonCrawlCfg:
    """Which Common Crawl crawl to read, how many of its WARC files, and from where."""

    crawl: str | None = None  # e.g. CC-MAIN-2024-10
    files: int = 1  # WARC files picked from the crawl's list (about 1 GB each)
    seed: int = 0  # another seed, another pick
    base_url: str = BASE_URL  # where the crawl's paths are served
    paths_url: str | None = None  # the crawl's warc.paths.gz (local path or URL);
    # null: <base_url>crawl-data/<crawl>/warc.paths.gz

    def __post_init__(self) -> None:
        if self.crawl is not None and not _CRAWL_ID.fullmatch(self.crawl):
            raise ConfigError(f"crawl.common_crawl.crawl: a crawl id like CC-MAIN-2024-10, "
                              f"got {self.crawl!r}")
        if self.files < 1:
            raise ConfigError(f"crawl.common_crawl.files: must be >= 1, got {self.files}")
        if not is_url(self.base_url):
            raise ConfigError(f"crawl.common_crawl.base_url: a URL, got {self.base_url!r}")

    def paths_location(self) -> str:
        """Where the crawl's list of WARC paths is read from."""
        base = self.base_url.rstrip("/")
        return self.paths_url or f"{base}/crawl-data/{self.crawl}/warc.paths.gz"


def local_paths_file(cfg: CommonCrawlCfg, root: Path) -> Path | None:
    """The paths file if it is on this machine (for DVC and the manifest), else None."""
    where = cfg.paths_location()
    if is_url(where) and not where.startswith("file://"):
        return None
    path = Path(where.removeprefix("file://"))
    return path if path.is_absolute() else root / path


def read_paths(cfg: CommonCrawlCfg, root: Path, http: HttpCfg) -> tuple[list[str], dict]:
    """The WARC paths the crawl lists, and the paths file's entry for ``sources.json``."""
    where, local = cfg.paths_location(), local_paths_file(cfg, root)
    if local is not None:
        if not local.is_file():
            raise InputError(f"crawl.common_crawl.paths_url: {local} does not exist")
        blob = local.read_bytes()
        sha256, size = file_digest(local)
        entry = {"source": str(local), "kind": "file", "bytes": size, "sha256": sha256}
    else:
        with open_remote(where, http) as stream:
            blob = stream.read()
        entry = {"source": where, "kind": "url", "bytes": stream.size, "sha256": stream.sha256}
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.GzipFile(fileobj=io.BytesIO(blob)).read()
        except (OSError, EOFError) as err:
            raise InputError(f"{where}: not a readable gzip file: {err}") from err
    paths = [line.strip() for line in blob.decode("utf-8", "replace").splitlines()
             if line.strip()]
    if not paths:
        raise InputError(f"{where}: lists no WARC path")
    return paths, {**entry, "role": "paths", "complete": True, "dump": cfg.crawl or ""}


def pick(paths: list[str], files: int, seed: int) -> list[str]:
    """``files`` of ``paths``, chosen by rank of sha256(seed, path), in their list order."""
    if files > len(paths):
        raise InputError(f"crawl.common_crawl.files: {files} asked, the crawl lists "
                         f"{len(paths)}")
    rank = sorted(paths, key=lambda p: hashlib.sha256(f"{seed}\0{p}".encode()).digest())
    chosen = set(rank[:files])
    return [p for p in paths if p in chosen]


def pick_sources(cfg: CommonCrawlCfg, root: Path, http: HttpCfg) -> tuple[list[Source], dict]:
    """The picked WARC files as URLs under ``base_url``, and the paths file's entry."""
    if cfg.crawl is None:
        raise ConfigError("crawl.common_crawl.crawl: name the crawl, e.g. CC-MAIN-2024-10")
    paths, entry = read_paths(cfg, root, http)
    base = cfg.base_url.rstrip("/")
    return [Source(url=f"{base}/{p.lstrip('/')}") for p in pick(paths, cfg.files, cfg.seed)], entry
