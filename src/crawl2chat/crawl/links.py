"""Links of an HTML page, as the crawler follows them.

In: HTML bytes, the page URL and its charset. Out: absolute, normalised http(s) URLs
(no fragment or user info, lower-case scheme, host in IDNA ASCII form, no default port,
path and query percent-encoded), in page order without repeats, and the links that do
not parse (a port out of range, a broken IPv6 literal, a host IDNA rejects), which the
crawler counts and skips. ``<base href>`` is honoured; ``rel="nofollow"`` links and
pages whose meta robots says ``nofollow`` yield nothing, since the site asked not to be
followed there.
"""

from __future__ import annotations

import ipaddress
import re
from html.parser import HTMLParser
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from crawl2chat.crawl.headers import text_encoding

# RFC 3986 characters a path or query keeps as they are ("%" too: escapes already made)
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?)+$")


class BadUrl(ValueError):
    """A URL that cannot be requested as it is written."""


def _ascii_host(host: str, url: str) -> str:
    """``host`` lower case in ASCII (IDNA for names), IPv6 literals in brackets."""
    if not host:
        raise BadUrl(f"{url!r}: no host")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{ip.compressed}]" if ip.version == 6 else str(ip)
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError as err:
        raise BadUrl(f"{url!r}: host {host!r} is not a valid name ({err})") from None
    if not _HOST_NAME.match(name):
        raise BadUrl(f"{url!r}: host {name!r} is not a valid name")
    return name


def normalize(url: str) -> str:
    """The URL without fragment or user info, scheme lower case, host in ASCII, default
    port dropped, path and query percent-encoded; :class:`BadUrl` if it does not parse."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        hostname = parts.hostname or ""
    except ValueError as err:  # "Invalid IPv6 URL", "Port out of range 0-65535"
        raise BadUrl(f"{url!r}: {err}") from None
    scheme = parts.scheme.lower()
    host = _ascii_host(hostname, url)
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    # non-ASCII and blanks in the path would make the request line invalid
    path = quote(parts.path or "/", safe=_PATH_SAFE, errors="surrogatepass")
    query = quote(parts.query, safe=_QUERY_SAFE, errors="surrogatepass")
    return urlunsplit((scheme, netloc, path, query, ""))


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


def extract_links(html: bytes, url: str, charset: str = "utf-8") -> tuple[list[str], list[str]]:
    """Absolute http(s) links of a page, normalised, in order, without repeats; and the
    links that do not parse, as written."""
    parser = _Links(url)
    # an unknown or non-text charset label (rot13, base64) in the header: read as utf-8
    parser.feed(html.decode(text_encoding(charset) or "utf-8", "replace"))
    if parser.nofollow:
        return [], []
    good: list[str] = []
    bad: list[str] = []
    for link in parser.links:
        try:
            absolute = urljoin(parser.base, link)
            if urlsplit(absolute).scheme.lower() in ("http", "https"):
                good.append(normalize(absolute))
        except ValueError:  # BadUrl, or urljoin on a broken base or IPv6 literal
            bad.append(link)
    return list(dict.fromkeys(good)), bad


def charset_of(content_type: str) -> str:
    """The charset parameter of a Content-Type header; utf-8 when it names none."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"' ")
    return "utf-8"
