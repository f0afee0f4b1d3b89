"""From an HTML payload to its main text.

In: the raw bytes of an HTML response and its Content-Type header (for the step: a
:class:`~crawl2chat.text.steps.Doc` that carries them).
Out: :func:`decode_html` gives the page as ``str`` plus how its charset was found (a
byte-order mark, the HTTP header, a ``<meta>`` tag, else detection by
charset-normalizer), or a drop reason (``encoding:undecodable``,
``encoding:unknown:<label>``). :func:`main_text` runs trafilatura tuned for precision
(boilerplate, navigation and comments out; ``fast`` skips the recall-oriented fallback
extractors). :class:`Extraction`, the stage's ``extract`` step, chains both with the
size and length rules: it sets the document's text and encoding and answers None or why
it drops the page (``too_large:<bytes>``, ``empty``, ``short:<chars>``, or the
decoding's reason), as every step does (:mod:`crawl2chat.text.steps`). A declared
charset that is not a text encoding (``rot13``, ``base64``) counts as unknown.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from crawl2chat.crawl.headers import text_encoding
from crawl2chat.text.steps import Doc

_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([^\s\"';,]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
_SOURCE_INDENT = re.compile(r"^\t+|[ \t]+$", re.M)
_META_WINDOW = 4096  # browsers look for <meta charset> in the first 1024 bytes; be lenient
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))


def header_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header value, if any."""
    match = _CHARSET_PARAM.search(content_type or "")
    return match.group(1) if match else None


def meta_charset(payload: bytes) -> str | None:
    """The charset a ``<meta charset>`` or ``<meta http-equiv>`` tag declares, if any."""
    match = _META_CHARSET.search(payload[:_META_WINDOW])
    return match.group(1).decode("ascii") if match else None


def decode_html(payload: bytes, content_type: str | None) -> tuple[str | None, str]:
    """Decode ``payload``; return (html, how) or (None, drop reason).

    Order as browsers do: a byte-order mark, then the HTTP header, then ``<meta>``; a
    declaration that is unknown or does not decode strictly (a server that says utf-8
    and sends cp1252) passes on to the next, and detection is the last resort.
    """
    for bom, encoding in _BOMS:
        if payload.startswith(bom):
            try:
                return payload[len(bom):].decode(encoding), f"bom:{encoding}"
            except UnicodeDecodeError:
                break
    unknown = None
    for source, label in (("header", header_charset(content_type)),
                          ("meta", meta_charset(payload))):
        if not label:
            continue
        name = text_encoding(label)
        if name is None:  # unknown, or a transform like rot13 or base64 that bytes refuse
            unknown = unknown or label
            continue
        try:
            return payload.decode(name), f"{source}:{name}"
        except UnicodeError:  # UnicodeDecodeError, or the plain UnicodeError idna raises
            continue
    detected = _detect(payload)
    if detected is not None:
        return detected
    if unknown:
        return None, f"encoding:unknown:{unknown.lower()}"
    return None, "encoding:undecodable"


def _detect(payload: bytes) -> tuple[str, str] | None:
    if not payload:
        return "", "empty"
    try:
        return payload.decode("utf-8"), "detected:utf-8"  # the common case, and cheap
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(payload).best()
    if best is None or best.encoding is None:
        return None
    return str(best), f"detected:{best.encoding}"


def main_text(html: str, url: str = "") -> str:
    """The main text of ``html`` (paragraphs separated by newlines); '' if none is found."""
    import trafilatura

    text = trafilatura.extract(
        html, url=url or None, output_format="txt", favor_precision=True, fast=False,
        include_comments=False, include_tables=True, include_images=False,
        include_links=False, deduplicate=False, with_metadata=False)
    # tabs that open a line are the HTML source's indentation, which a browser collapses
    # (code blocks indent with spaces, which stay); trailing blanks carry nothing
    return _SOURCE_INDENT.sub("", text or "").strip()


@dataclass
class Extraction:
    """Step ``extract``: charset decoding, trafilatura main text, size and length rules.

    The page's HTML is released here (``doc.html`` emptied): the later steps read the
    text, and a removed page is kept with its text only.
    """

    min_chars: int
    max_html_bytes: int
    name: str = field(default="extract", init=False)

    def __call__(self, doc: Doc) -> str | None:
        payload, doc.html = doc.html, b""
        if len(payload) > self.max_html_bytes:
            return f"too_large:{len(payload)}"
        html, how = decode_html(payload, doc.content_type)
        if html is None:
            return how
        doc.encoding = how
        doc.text = main_text(html, doc.url)
        if not doc.text:
            return "empty"
        if len(doc.text) < self.min_chars:
            return f"short:{len(doc.text)}"
        return None
