"""The crawl's record ids on disk: set semantics, a bounded memory, the scratch file gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crawl2chat.crawl.seen import SeenIds


def test_ids_are_remembered_once_and_the_file_is_deleted(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "ids.sqlite")
    assert "<urn:uuid:a>" not in seen
    seen.add("<urn:uuid:a>")
    seen.add("<urn:uuid:a>")
    seen.add("<urn:uuid:b>")
    assert "<urn:uuid:a>" in seen and "<urn:uuid:b>" in seen and "<urn:uuid:c>" not in seen
    assert len(seen) == 2
    seen.close()
    assert not (tmp_path / "ids.sqlite").exists()


FILL = """
import sys, tempfile
from pathlib import Path
from crawl2chat.crawl.seen import SeenIds
folder = Path(tempfile.mkdtemp())
seen = SeenIds(folder / "ids.sqlite") if sys.argv[1] == "disk" else set()
for i in range(500_000):
    seen.add(f"<urn:uuid:{i:036d}>")
assert len(seen) == 500_000 and f"<urn:uuid:{123_456:036d}>" in seen
# this process's own peak (ru_maxrss would carry the parent's across exec)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def _peak_kib(kind: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", FILL, kind], env=env, check=True,
                          capture_output=True, text=True)
    return int(done.stdout.split()[-1])


def test_half_a_million_ids_hold_memory_to_the_page_cache() -> None:
    """500,000 ids of 47 characters, each in a fresh process: a Python set of them raises
    the peak resident memory by tens of MiB; on disk it stays near the page cache."""
    on_disk, in_memory = _peak_kib("disk"), _peak_kib("set")
    assert in_memory - on_disk > 30 * 1024, (on_disk, in_memory)
