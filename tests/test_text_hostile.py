"""Hostile pages in the text stage: odd charset labels and steps that raise are drops with
a reason, never the end of the stage; every page read is kept or removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawl2chat.config import build
from crawl2chat.crawl.warc import WarcShardWriter
from crawl2chat.text import recipe
from crawl2chat.text.chunks import Chunk, filter_slice
from crawl2chat.text.extract import decode_html
from crawl2chat.text.steps import Doc

PROSE = ("<html><head><title>Rivers</title></head><body><article><h1>Rivers</h1>"
         + "".join(f"<p>The river number {i} runs through the old town, past the mill and "
                   f"the church, and on towards the sea where the boats wait.</p>"
                   for i in range(12))
         + "</article></body></html>")
NOT_TEXT = ["rot13", "base64", "zlib_codec", "hex", "bz2_codec", "uu", "quopri"]


def cfg() -> recipe.Cfg:
    return build(recipe.Cfg, {"languages": {"en": 1.0}, "min_chars": 50}, "text")


@pytest.mark.parametrize("label", NOT_TEXT)
def test_a_charset_label_that_is_not_a_text_encoding_is_ignored(label: str) -> None:
    page = PROSE.encode()
    html, how = decode_html(page, f"text/html; charset={label}")
    assert (html, how) == (PROSE, "detected:utf-8")
    meta = f"<meta charset='{label}'>".encode() + page
    assert decode_html(meta, "text/html")[1] == "detected:utf-8"


def test_an_unknown_or_non_text_label_is_the_reason_when_nothing_decodes() -> None:
    assert decode_html(b"\xff\xfe\x00\xd8" * 3, "text/html; charset=rot13")[1] in (
        "encoding:unknown:rot13", "detected:utf_16")  # detection may still find something


def _shard(tmp_path: Path, pages: list[tuple[str, str, bytes]]) -> tuple[Path, Chunk]:
    name = "crawl-00000.warc.gz"
    with WarcShardWriter(tmp_path / name) as writer:
        for url, ctype, body in pages:
            writer.write(url, body, headers=[("Content-Type", ctype)])
    size = (tmp_path / name).stat().st_size
    return tmp_path, Chunk(name, 0, size, len(pages))


def test_a_page_with_a_non_text_charset_does_not_stop_the_slice(tmp_path: Path) -> None:
    in_dir, chunk = _shard(tmp_path, [
        ("https://example.org/rot", "text/html; charset=rot13", PROSE.encode()),
        ("https://example.org/b64", "text/html; charset=base64", PROSE.encode()),
        ("https://example.org/ok", "text/html; charset=utf-8", PROSE.encode())])
    work = tmp_path / "work"
    work.mkdir()
    result = filter_slice(chunk, 0, in_dir, cfg(), None, work)
    assert result.kept + len(result.removed) == result.read.responses == 3
    extract = result.stats["extract"]
    assert extract.docs_in == extract.docs_out == 3  # all three decoded and extracted
    assert not [r for r in result.removed if r["reason"].startswith("extract:")]


class Exploding:
    """A step that raises on one page, as a bug or a pathological page would."""

    name = "url"

    def __call__(self, doc: Doc) -> str | None:
        if doc.url.endswith("/boom"):
            raise RecursionError("maximum recursion depth exceeded")
        return None


def test_an_exception_in_a_step_is_a_counted_drop_and_the_slice_goes_on(tmp_path: Path) -> None:
    in_dir, chunk = _shard(tmp_path, [
        ("https://example.org/a", "text/html", PROSE.encode()),
        ("https://example.org/boom", "text/html", PROSE.encode()),
        ("https://example.org/c", "text/html", PROSE.replace("river", "stream").encode())])
    work = tmp_path / "work"
    work.mkdir()
    result = filter_slice(chunk, 0, in_dir, cfg(), Exploding(), work)  # type: ignore[arg-type]
    # every page read is kept or removed
    assert result.kept + len(result.removed) == result.read.responses == 3
    assert [(r["url"], r["reason"]) for r in result.removed if r["reason"].startswith("url:")
            ] == [("https://example.org/boom", "url:error:RecursionError")]
    url = result.stats["url"]
    assert (url.docs_in, url.docs_out) == (3, 2)  # the funnel counts the drop at its step
    assert result.stats["extract"].docs_in == 2
