"""Case-insensitive access to HTTP headers kept as a tuple of (name, value) pairs."""

from __future__ import annotations


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
