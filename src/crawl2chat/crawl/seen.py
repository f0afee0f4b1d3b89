"""The record ids a crawl has copied, kept on disk so memory does not grow with the crawl.

In: record ids, one at a time. Out: whether an id was added before. A SQLite table keyed
by the id (no row ids) in a file the caller names, written in one transaction with no
journal: SQLite holds a bounded page cache (``CACHE_KIB``), so millions of records cost
megabytes of memory where a Python set of them costs hundreds. The file is scratch:
:meth:`SeenIds.close` deletes it, and a killed run leaves it inside its temporary
output folder, which the next run sweeps.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

CACHE_KIB = 8192  # SQLite's page cache for the table


class SeenIds:
    """A set of strings on disk: ``id in seen``, ``seen.add(id)``, ``len(seen)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{CACHE_KIB}"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")
        self._count = 0

    def __contains__(self, record_id: object) -> bool:
        return self._db.execute("SELECT 1 FROM ids WHERE id = ?",
                                (record_id,)).fetchone() is not None

    def add(self, record_id: str) -> None:
        self._count += self._db.execute("INSERT OR IGNORE INTO ids VALUES (?)",
                                        (record_id,)).rowcount

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Forget every id and delete the file."""
        self._db.close()
        self.path.unlink(missing_ok=True)
