"""Command-line checks of single documents: extraction, language ID, PII redaction.

In: a file or standard input. Out on standard output: :func:`extract_file` the main text
of one HTML file; :func:`langid_lines` one JSON object per input line
(``{"lang": "en", "score": 0.97}``); :func:`pii_lines` each line redacted. They use the
same components, with the same defaults, as the text stage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from crawl2chat.errors import InputError


def extract_file(path: Path, out: TextIO) -> int:
    """Print the main text of ``path``; exit status 1 when no main text is found."""
    from crawl2chat.text.extract import decode_html, main_text

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    html, how = decode_html(path.read_bytes(), None)
    if html is None:
        raise InputError(f"{path}: cannot decode as HTML ({how})")
    text = main_text(html)
    if text:
        out.write(text + "\n")
    return 0 if text else 1


def langid_lines(lines: Iterable[str], out: TextIO) -> int:
    from crawl2chat.text.langid import LanguageId

    model = LanguageId()
    for line in lines:
        lang, score = model.predict(line)
        out.write(json.dumps({"lang": lang, "score": round(score, 4)}) + "\n")
    return 0


def pii_lines(lines: Iterable[str], out: TextIO, mode: str = "placeholder",
              lang: str | None = None) -> int:
    """Each line redacted. ``lang`` None: each line's language as the text stage finds
    it (fastText), so names are looked for only where the stage looks (ner_models)."""
    from crawl2chat.text.langid import LanguageId
    from crawl2chat.text.pii import PiiRedactor

    redactor = PiiRedactor(mode=mode)
    detect = LanguageId().predict if lang is None and redactor.persons else None
    for line in lines:  # one at a time, so that an interactive session answers each line
        text = line.rstrip("\n")
        text, _ = redactor.redact(text, detect(text)[0] if detect else lang)
        out.write(text + "\n")
        out.flush()
    return 0
