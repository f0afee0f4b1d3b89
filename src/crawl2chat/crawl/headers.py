"""HTTP headers: case-insensitive access to (name, value) pairs; the media types kept.

In: a record's headers as a tuple of (name, value) pairs. Out: :class:`HeaderLookup`
gives a header's value and the media type; :data:`HTML_TYPES` are the media types the
crawl fetches and keeps.
"""

from __future__ import annotations

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
