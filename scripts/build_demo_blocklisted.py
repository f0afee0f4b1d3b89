#!/usr/bin/env python3
"""Add one page on a blocklisted host to the demo crawl, so the URL filter has work.

In: ``data/demo/web/demo-web-00000.warc.gz`` (built by ``build_demo_sample.py``). Out:
``data/demo/web/demo-web-00003.warc.gz``, one ``response`` record: the first English
Python documentation page of the sample, served again under a host on FineWeb's URL
blocklist (datatrove's UT1-derived list; a throwaway dynamic-DNS name listed there), and
a section about it in ``LICENSES.md``. The text stage drops it with ``url:domain``.
Byte-for-byte reproducible (fixed record id and date; gzip headers carry no time).

    python scripts/build_demo_blocklisted.py     # after build_demo_sample.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from crawl2chat.crawl.urlfilter import UrlFilter, load_blocklist  # noqa: E402
from crawl2chat.crawl.warc import WarcShardWriter, iter_responses  # noqa: E402

WEB = ROOT / "data" / "demo" / "web"
SOURCE = WEB / "demo-web-00000.warc.gz"
OUT = WEB / "demo-web-00003.warc.gz"
HOST = "stdykungeduationaldeveloper15investmenqg.duckdns.org"
RECORD_ID = "<urn:uuid:00000000-0000-4000-8000-0000000b10c1>"
DATE = "2024-05-01T12:00:59Z"
SECTION = "## Page on a blocklisted host"


def main() -> None:
    page = next(r for r in iter_responses(SOURCE)
                if r.url.startswith("https://docs.python.org/3.11/") and r.mime_type == "text/html")
    url = re.sub(r"^https://docs\.python\.org", f"https://{HOST}", page.url)
    reason = UrlFilter(load_blocklist({HOST})).check(url)
    if reason != "domain":
        raise SystemExit(f"{HOST} is no longer on datatrove's blocklist ({reason}): pick another")
    with WarcShardWriter(OUT) as writer:
        writer.write(url, page.payload, status=page.status, headers=page.headers,
                     record_id=RECORD_ID, date=DATE)
    licences = WEB / "LICENSES.md"
    text = licences.read_text().split(f"\n{SECTION}\n")[0].rstrip("\n")
    licences.write_text(
        f"{text}\n\n{SECTION}\n\n`{OUT.name}` (written by `scripts/build_demo_blocklisted.py`) "
        f"holds one record: the Python documentation page {page.url} (PSF License, as "
        f"above), unchanged, served under\n{url}\nThe host is on FineWeb's URL blocklist "
        f"(datatrove's UT1-derived list), so the text stage drops the page with "
        f"`url:domain`; nothing was fetched from it.\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {url}")


if __name__ == "__main__":
    main()
