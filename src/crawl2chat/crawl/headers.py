"""HTTP headers: case-insensitive access to (name, value) pairs; the media types kept.

In: a record's headers as a tuple of (name, value) pairs, or a charset label. Out:
:class:`HeaderLookup` gives a header's value and the media type; :data:`HTML_TYPES` are
the media types the crawl fetches and keeps; :func:`text_encoding` says whether a
charset label names a text encoding Python can decode bytes with.
"""

from __future__ import annotations

import codecs

HTML_TYPES = ("text/html", "application/xhtml+xml")


class HeaderLookup:
    """Mixin for records with a ``headers: tuple[tuple[str, str], ...]`` field."""

    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def mime_type(self) -> str:
        """The media type without parameters, lower case (``text/html``); '' if absent."""
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()


def text_encoding(label: str) -> str | None:
    """The codec name of charset ``label``, or None when it is unknown or not a text
    encoding (``rot13``, ``base64``, ``zlib_codec``, ``hex`` are bytes or str transforms,
    and ``bytes.decode`` refuses them)."""
    try:
        info = codecs.lookup(label.strip())
    except (LookupError, ValueError, TypeError):  # ValueError: a label with a NUL in it
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None
