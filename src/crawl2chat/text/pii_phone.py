"""Phone numbers: Google's libphonenumber, in the regions a document's numbers are from.

In: text, its language (lid.176 code) and URL. Out: :func:`regions` names the regions
whose national formats to look for -- the configured ones, the language's main region
(CLDR's likely subtags via Babel: ``es`` -> ES, ``pt`` -> BR, ``ja`` -> JP) and the
region of the URL's country-code domain (``.de`` -> DE, ``.co.uk`` -> GB);
:func:`phone_spans` the (start, end) of each number found. Numbers in international
format (``+7 495 123-45-67``) are found whatever the regions. libphonenumber only
accepts numbers valid for their country, which keeps dates, version numbers and
ordinary numbers; the US range kept for fiction (555-0100..0199) is nobody's.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from urllib.parse import urlsplit

# country-code domains that are not the region's ISO 3166 code
_TLD_REGION = {"uk": "GB"}


@cache
def language_region(lang: str) -> str | None:
    """The main region of a language, from CLDR (``es`` -> ``ES``); None if unknown."""
    from babel.core import get_global

    subtags = get_global("likely_subtags").get(lang.replace("-", "_"))
    region = subtags.split("_")[-1] if subtags else None
    return region if region and _supported(region) else None


def url_region(url: str) -> str | None:
    """The region of the URL's country-code top-level domain, if it has one."""
    host = urlsplit(url).hostname or ""
    tld = host.rsplit(".", 1)[-1].lower()
    region = _TLD_REGION.get(tld, tld.upper())
    return region if len(tld) == 2 and _supported(region) else None


def _supported(region: str) -> bool:
    import phonenumbers

    return region in phonenumbers.SUPPORTED_REGIONS


def regions(configured: Iterable[str], lang: str | None, url: str | None) -> tuple[str, ...]:
    """The configured regions, then the language's and the URL's, without repeats."""
    found = list(dict.fromkeys(configured))
    for extra in (language_region(lang) if lang else None, url_region(url) if url else None):
        if extra and extra not in found:
            found.append(extra)
    return tuple(found)


def phone_spans(text: str, in_regions: Iterable[str]) -> list[tuple[int, int]]:
    """(start, end) of every phone number valid in one of the regions (or international)."""
    import phonenumbers

    if sum(ch.isdigit() for ch in text) < 6:  # no phone number is shorter
        return []
    spans: set[tuple[int, int]] = set()
    for region in in_regions:
        for m in phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID):
            national = str(m.number.national_number)
            fiction = m.number.country_code == 1 and national[3:8] == "55501"
            if not fiction:
                spans.add((m.start, m.end))
    return sorted(spans)
