#!/usr/bin/env python3
"""Add the original non-English articles to the demo crawl, so the language mix has prose.

In: ``data/demo/articles/<lang>-<slug>.txt`` (title line, blank line, paragraphs; text
written for this project). Out: ``data/demo/web/demo-web-00004.warc.gz``, one HTML
``response`` record per article under ``https://articles.crawl2chat.example/<lang>/``
(a name reserved for examples, RFC 2606: nothing lives there), and a section about them
in ``LICENSES.md``. Byte-for-byte reproducible (record ids and dates from the file name;
gzip headers carry no time).

    python scripts/build_demo_articles.py
"""

from __future__ import annotations

import hashlib
import html
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from crawl2chat.crawl.warc import WarcShardWriter  # noqa: E402

ARTICLES = ROOT / "data" / "demo" / "articles"
WEB = ROOT / "data" / "demo" / "web"
OUT = WEB / "demo-web-00004.warc.gz"
HOST = "articles.crawl2chat.example"
DATE = "2024-05-02T12:00:00Z"
SECTION = "## Original articles"
BEFORE = "## Page on a blocklisted host"  # build_demo_blocklisted.py rewrites from there


def page(lang: str, text: str) -> bytes:
    """The article as a small HTML page: title, heading, one <p> per paragraph."""
    title, *paragraphs = [p.strip() for p in text.strip().split("\n\n")]
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head>\n<body><main><article>\n"
            f"<h1>{html.escape(title)}</h1>\n{body}\n</article></main></body>\n</html>\n"
            ).encode()


def main() -> None:
    paths = sorted(ARTICLES.glob("*.txt"))
    counts: dict[str, int] = {}
    with WarcShardWriter(OUT) as writer:
        for path in paths:
            lang, slug = path.stem.split("-", 1)
            record_id = f"<urn:uuid:{uuid.UUID(hashlib.md5(path.name.encode()).hexdigest())}>"
            writer.write(f"https://{HOST}/{lang}/{slug}.html",
                         page(lang, path.read_text(encoding="utf-8")), record_id=record_id,
                         date=DATE)
            counts[lang] = counts.get(lang, 0) + 1
    rows = ", ".join(f"{lang} {n}" for lang, n in sorted(counts.items()))
    section = (f"{SECTION}\n\n`{OUT.name}` (written by `scripts/build_demo_articles.py`) holds "
               f"{len(paths)} HTML pages ({rows}) made from `data/demo/articles/*.txt`: "
               f"original articles on general topics written for crawl2chat, under the "
               f"project's own licence (Apache-2.0), served under https://{HOST}/ (a "
               f"reserved example name; nothing was fetched). They give the language mix "
               f"clean prose in each language and are the clean articles of "
               f"`tests/test_text_languages.py`.\n")
    licences = WEB / "LICENSES.md"
    text = licences.read_text()
    if f"\n{SECTION}\n" in text:  # replace our section, keep what follows it
        head, rest = text.split(f"\n{SECTION}\n", 1)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else ""
        text = head.rstrip("\n") + "\n" + tail
    if f"\n{BEFORE}\n" in text:
        head, tail = text.split(f"\n{BEFORE}\n", 1)
        text = f"{head.rstrip()}\n\n{section}\n{BEFORE}\n{tail}"
    else:
        text = f"{text.rstrip()}\n\n{section}"
    licences.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(paths)} pages")


if __name__ == "__main__":
    main()
