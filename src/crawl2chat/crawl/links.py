"""Links of an HTML page, as the crawler follows them.

In: HTML bytes, the page URL and its charset. Out: absolute, normalised http(s) URLs
(no fragment, lower-case scheme and host, no default port), in page order without
repeats. ``<base href>`` is honoured; ``rel="nofollow"`` links and pages whose meta
robots says ``nofollow`` yield nothing, since the site asked not to be followed there.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit


def normalize(url: str) -> str:
    """The URL without fragment, scheme and host lower case, default port dropped."""
    parts = urlsplit(urldefrag(url)[0])
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


class _Links(HTMLParser):
    """``<a href>`` / ``<area href>`` targets, honouring ``<base>`` and meta robots nofollow."""

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.links: list[str] = []
        self.nofollow = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag == "base" and values.get("href"):
            self.base = urljoin(self.base, values["href"])
        elif tag == "meta" and values.get("name", "").lower() == "robots":
            self.nofollow |= "nofollow" in values.get("content", "").lower()
        elif (tag in ("a", "area") and values.get("href")
              and "nofollow" not in values.get("rel", "").lower()):
            self.links.append(values["href"].strip())


def extract_links(html: bytes, url: str, charset: str = "utf-8") -> list[str]:
    """Absolute http(s) links of a page, normalised, in order, without repeats."""
    parser = _Links(url)
    try:
        text = html.decode(charset, "replace")
    except LookupError:  # an unknown charset name in the header
        text = html.decode("utf-8", "replace")
    parser.feed(text)
    if parser.nofollow:
        return []
    found = (normalize(urljoin(parser.base, link)) for link in parser.links)
    return list(dict.fromkeys(u for u in found if urlsplit(u).scheme in ("http", "https")))


def charset_of(content_type: str) -> str:
    """The charset parameter of a Content-Type header; utf-8 when it names none."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"' ")
    return "utf-8"
