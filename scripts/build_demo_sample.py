#!/usr/bin/env python3
"""Build the bundled demo crawl, ``data/demo/web/*.warc.gz``, from Debian documentation.

In: the HTML pages of two Debian packages, extracted with ``dpkg-deb -x`` (``--src``):
``debian-handbook`` (the Debian Administrator's Handbook in 26 languages) and
``python3.11-doc`` (the Python 3.11 documentation, Debian bookworm). ``--fetch``
downloads and extracts them into ``--src`` first (``apt-get download`` + ``dpkg-deb -x``;
needs a Debian system whose package lists are current: ``apt-get update``).

Out: ``--shards`` WARC 1.1 files (one gzip member per record) that look like a small
crawl of the public sites: every page is a ``response`` record with HTTP headers whose
``WARC-Target-URI`` is the page's public URL (``https://debian-handbook.info/browse/
<lang>/stable/<page>``, ``https://docs.python.org/3.11/<path>``), plus a ``warcinfo``
record per file, and ``LICENSES.md`` with the sources, licences and the composition.

The sample is chosen so that every filter of the text stage has work: ~60-70% English
pages, the rest in nine other languages; a few index and near-empty pages; three pages
also served under the ``/3/`` alias (exact duplicates); a few pages re-encoded into
legacy charsets (declared in the HTTP header, in a ``<meta>`` tag, wrongly, or not at
all) so that charset handling is exercised; and a stylesheet, an image and a redirect
that the crawl stage must skip. The output is byte-for-byte reproducible: record ids,
dates, page order and gzip headers are all fixed.

    apt-get update && python scripts/build_demo_sample.py --fetch --src /tmp/debsrc
    python scripts/build_demo_blocklisted.py   # + demo-web-00003: a page the URL filter drops

(It rewrites ``LICENSES.md``; the second script appends its section again.)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import random
import re
import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

PACKAGES = ("debian-handbook", "python3.11-doc")
HANDBOOK = "usr/share/doc/debian-handbook/html"
PYDOC = "usr/share/doc/python3.11/html"
HANDBOOK_URL = "https://debian-handbook.info/browse/{lang}/stable/{page}"
PYDOC_URL = "https://docs.python.org/{version}/{path}"
WARC_DATE = "2024-05-01T12:00:{second:02d}Z"
HTTP_DATE = "Wed, 01 May 2024 12:00:00 GMT"

# pages per handbook language: en-US, and ~200 pages in nine other languages (about a
# fifth of those are still untranslated, i.e. English, as on the real site)
HANDBOOK_LANGS = {"en-US": 95, "de-DE": 28, "fr-FR": 28, "es-ES": 26, "it-IT": 22,
                  "pt-BR": 22, "ja-JP": 22, "ru-RU": 22, "zh-CN": 16, "ar-MA": 12}
PYDOC_PAGES = 150
PYDOC_SIZE = (15_000, 160_000)  # raw bytes: substantial text, but no 2 MB index pages
# index / near-empty pages that extraction or the length filter should drop
PYDOC_INDEX_PAGES = ("genindex-Q.html", "genindex-V.html", "search.html", "py-modindex.html")
HANDBOOK_INDEX_PAGES = ("index.html",)
PYDOC_DUPLICATES = 3  # pages also crawled under https://docs.python.org/3/...
# (handbook language, pages, encoding, how it is declared): legacy charsets as on the web
REENCODE = (("ja-JP", 2, "shift_jis", "header"),        # header wins over the utf-8 meta
            ("ru-RU", 2, "windows-1251", "meta"),
            ("de-DE", 2, "windows-1252", "wrong-header"),  # header says utf-8, meta is right
            ("zh-CN", 1, "gb18030", "header"),
            ("es-ES", 1, "iso-8859-1", "none"))            # no declaration: detection
META_CHARSET = re.compile(rb'<meta[^>]*charset\s*=\s*["\']?[A-Za-z0-9_.:-]+[^>]*>', re.I)
XML_DECL = re.compile(rb"<\?xml[^>]*\?>")


@dataclass
class Page:
    url: str
    body: bytes
    content_type: str
    lang: str  # the language the site serves it as ("en", "de", ...); for the report only
    status: str = "200 OK"
    location: str = ""


def fetch(src: Path) -> None:
    """Download the two packages with apt and extract them into ``src``."""
    src.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=src, check=True)
    for deb in sorted(src.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(src)], check=True)


def package_version(src: Path, package: str) -> str:
    """The version in the first line of the package's Debian changelog."""
    folder = src / "usr/share/doc" / package
    log = next(p for p in (folder / "changelog.Debian.gz", folder / "changelog.gz") if p.exists())
    with gzip.open(log, "rt", encoding="utf-8") as fh:
        return fh.readline().split("(")[1].split(")")[0]


def ranked(items: list[str], salt: str) -> list[str]:
    """A fixed pseudo-random order that does not depend on the file system."""
    return sorted(items, key=lambda s: hashlib.sha1(f"{salt}/{s}".encode()).hexdigest())


def python_pages(root: Path) -> list[Page]:
    html = root / PYDOC
    candidates = [p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not p.relative_to(html).as_posix().startswith("_")
                  and not p.name.startswith("genindex")
                  and p.name not in ("search.html", "contents.html", "py-modindex.html")
                  and PYDOC_SIZE[0] <= p.stat().st_size <= PYDOC_SIZE[1]]
    chosen = ranked(candidates, "pydoc")[:PYDOC_PAGES]
    pages = []
    for path in [*chosen, *PYDOC_INDEX_PAGES]:
        # Debian builds point the canonical link at the local file; the site points at itself
        body = (html / path).read_bytes().replace(
            b"file:///usr/share/doc/python3.11/html/", b"https://docs.python.org/3.11/")
        pages.append(Page(PYDOC_URL.format(version="3.11", path=path), body,
                          "text/html; charset=utf-8", "en"))
    for path in chosen[:PYDOC_DUPLICATES]:
        body = next(p.body for p in pages if p.url.endswith("/3.11/" + path))
        pages.append(Page(PYDOC_URL.format(version="3", path=path), body,
                          "text/html; charset=utf-8", "en"))
    static = html / "_static"
    pages.append(Page(PYDOC_URL.format(version="3.11", path="_static/pygments.css"),
                      (static / "pygments.css").read_bytes(), "text/css", "-"))
    pages.append(Page(PYDOC_URL.format(version="3.11", path="_static/py.png"),
                      (static / "py.png").read_bytes(), "image/png", "-"))
    pages.append(Page("https://docs.python.org/3.11", b"", "text/html; charset=utf-8", "-",
                      status="301 Moved Permanently", location="https://docs.python.org/3.11/"))
    return pages


def handbook_pages(root: Path) -> list[Page]:
    pages = []
    for lang, count in HANDBOOK_LANGS.items():
        folder = root / HANDBOOK / lang
        names = [p.name for p in folder.glob("*.html") if p.name not in HANDBOOK_INDEX_PAGES]
        chosen = ranked(names, lang)[:count]
        if lang == "en-US":
            chosen += HANDBOOK_INDEX_PAGES
        pages += [Page(HANDBOOK_URL.format(lang=lang, page=name), (folder / name).read_bytes(),
                       "text/html; charset=utf-8", lang.split("-")[0]) for name in chosen]
    return pages


def reencode(pages: list[Page]) -> list[str]:
    """Re-encode a few pages into legacy charsets; return one line per changed page."""
    notes = []
    for lang, count, encoding, declared in REENCODE:
        prefix = HANDBOOK_URL.format(lang=lang, page="")
        for page in [p for p in pages if p.url.startswith(prefix)][:count]:
            body = XML_DECL.sub(b"", page.body, count=1)
            meta = f'<meta http-equiv="Content-Type" content="text/html; charset={encoding}" />'
            if declared == "meta" or declared == "wrong-header":
                body = META_CHARSET.sub(meta.encode(), body, count=1)
            elif declared == "none":
                body = META_CHARSET.sub(b"", body, count=1)
            # characters the charset lacks become numeric references, as servers do
            page.body = body.decode("utf-8").encode(encoding, errors="xmlcharrefreplace")
            page.content_type = {"header": f"text/html; charset={encoding}",
                                 "wrong-header": "text/html; charset=utf-8"}.get(
                                     declared, "text/html")
            notes.append(f"{page.url}: {encoding}, declared: {declared}")
    return notes


def record_id(url: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'crawl2chat-demo:' + url)}>"


def write_shard(path: Path, pages: list[Page], description: str) -> None:
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True, warc_version="1.1")
        info = (f"software: crawl2chat scripts/build_demo_sample.py\nformat: WARC File Format "
                f"1.1\ndescription: {description}\n").encode()
        writer.write_record(writer.create_warc_record(
            "", "warcinfo", payload=io.BytesIO(info), length=len(info),
            warc_content_type="application/warc-fields",
            warc_headers_dict={"WARC-Record-ID": record_id(path.name),
                               "WARC-Date": WARC_DATE.format(second=0),
                               "WARC-Filename": path.name}))
        for i, page in enumerate(pages):
            headers = [("Date", HTTP_DATE), ("Content-Type", page.content_type),
                       ("Content-Length", str(len(page.body)))]
            if page.location:
                headers.append(("Location", page.location))
            http = StatusAndHeaders(page.status, headers, protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                page.url, "response", payload=io.BytesIO(page.body), length=len(page.body),
                http_headers=http,
                warc_headers_dict={"WARC-Record-ID": record_id(page.url),
                                   "WARC-Date": WARC_DATE.format(second=i % 60)}))


LICENSES = """# Licences of the demo crawl sample

The files `{prefix}-*.warc.gz` hold pages of two Debian documentation packages, written
by `scripts/build_demo_sample.py` as WARC `response` records under the pages' public
URLs. They are not a live crawl: the pages come from the Debian packages below, with
these changes: in the Python pages the canonical link points at docs.python.org instead
of the local file; {n_reencoded} handbook pages are re-encoded into legacy charsets
(listed below); and the HTTP headers, one redirect record and the WARC headers are
written by the script.

- https://debian-handbook.info/browse/ -- Debian package `debian-handbook`
  ({handbook_version}): *The Debian Administrator's Handbook* by Raphaël Hertzog and
  Roland Mas (and its translators). Licence: GPL-2.0-or-later or CC-BY-SA-3.0, at your
  choice.
- https://docs.python.org/3.11/ -- Debian package `python3.11-doc` ({pydoc_version}):
  the Python 3.11 documentation, © Python Software Foundation. Licence: Python Software
  Foundation License Version 2 (code examples in it also Zero-Clause BSD).

Full licence texts: `/usr/share/doc/debian-handbook/copyright` and
`/usr/share/doc/python3.11-doc/copyright` in the packages, https://www.gnu.org/licenses/gpl-2.0,
https://creativecommons.org/licenses/by-sa/3.0/ and https://docs.python.org/3.11/license.html.

## Composition

{composition}

Re-encoded pages:

{reencoded}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--src", type=Path, default=Path("/tmp/debsrc"),
                        help="where the two packages were extracted (default %(default)s)")
    parser.add_argument("--fetch", action="store_true",
                        help="first download and extract the packages into --src with apt")
    parser.add_argument("--out", type=Path, default=Path("data/demo/web"),
                        help="output folder (default %(default)s)")
    parser.add_argument("--shards", type=int, default=3, help="number of WARC files (default 3)")
    parser.add_argument("--prefix", default="demo-web", help="WARC file name prefix")
    parser.add_argument("--seed", type=int, default=0, help="seed of the page order")
    args = parser.parse_args()

    if args.fetch:
        fetch(args.src)
    if not (args.src / HANDBOOK).is_dir() or not (args.src / PYDOC).is_dir():
        parser.error(f"{args.src} has no extracted {' / '.join(PACKAGES)}: use --fetch")
    versions = {p: package_version(args.src, p) for p in PACKAGES}
    pages = python_pages(args.src) + handbook_pages(args.src)
    reencoded = reencode(pages)
    random.Random(args.seed).shuffle(pages)  # every shard a mix, like a real crawl

    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob(f"{args.prefix}-*.warc.gz"):
        old.unlink()
    description = ("pages of Debian packages " + ", ".join(f"{p} {v}" for p, v in versions.items())
                   + " under their public URLs; not a live crawl; see LICENSES.md")
    total = 0
    for shard in range(args.shards):
        path = args.out / f"{args.prefix}-{shard:05d}.warc.gz"
        write_shard(path, pages[shard::args.shards], description)
        total += path.stat().st_size
        print(f"{path}: {len(pages[shard::args.shards])} records, {path.stat().st_size:,} bytes")

    counts = Counter(("docs.python.org" if "python" in p.url else "debian-handbook.info", p.lang,
                      p.content_type.split(";")[0], p.status) for p in pages)
    rows = ["| host | served as language | content type | status | records |",
            "|---|---|---|---|---|"]
    rows += [f"| {h} | {lang} | {ct} | {st} | {n} |"
             for (h, lang, ct, st), n in sorted(counts.items())]
    rows.append(f"\n{len(pages)} records in {args.shards} files, {total:,} bytes compressed; "
                f"{PYDOC_DUPLICATES} Python pages are also served under /3/ (exact duplicates).")
    (args.out / "LICENSES.md").write_text(LICENSES.format(
        prefix=args.prefix, n_reencoded=len(reencoded),
        handbook_version=versions["debian-handbook"], pydoc_version=versions["python3.11-doc"],
        composition="\n".join(rows), reencoded="\n".join(f"- {n}" for n in reencoded)))
    print(f"{len(pages)} records, {total:,} bytes; wrote {args.out / 'LICENSES.md'}")


if __name__ == "__main__":
    main()
