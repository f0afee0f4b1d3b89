"""Postal addresses, US style: a strict pattern proposes, usaddress confirms.

In: text. Out: :func:`address_spans` gives the (start, end) of each street address
("1600 Pennsylvania Avenue NW, Washington, DC 20500", "221B Baker Street") and post
office box ("P.O. Box 1234, Austin, TX 78701").

A candidate needs a house number, one to four capitalised street-name words and a
street type (Street, Ave, Road, ...), optionally a direction, a unit (Apt 4B, Suite 100)
and a city with a state code and ZIP. usaddress, a CRF parser trained on US addresses,
must then tag it as house number + street name + street type (or box type + box
number); its tags also trim what it does not read as part of the address. So "Python
3.11", "chapter 12", "24 October 2022" or "42 apples" never qualify, and a place name
stays unless it follows a street in the form ", City, ST" (", London" alone stays).
"""

from __future__ import annotations

import re

STREET_TYPES = (
    "Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
    "Square|Sq|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Way|Circle|Cir|Trail|Trl|Plaza|Plz|"
    "Loop|Alley|Aly|Crescent|Cres|Row|Pike|Turnpike|Expressway|Freeway")
STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|"
    "NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI")
_DIRECTION = r"(?:N|S|E|W|NE|NW|SE|SW)\.?"
_NAME = r"(?:[A-Z][a-z]+(?:['-][A-Za-z]+)?|\d{1,3}(?:st|nd|rd|th))"
_UNIT = (r"(?:,?\s(?:(?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|Floor|Fl|Bldg)\.?\s?#?|#)"
         r"\s?[A-Za-z0-9-]{1,6}\b)?")
_PLACE = (rf"(?:,?\s+[A-Z][a-z]+(?:[ -][A-Z][a-z]+){{0,2}},?\s(?:{STATES})\b"
          r"(?:\s\d{5}(?:-\d{4})?\b)?)?")
CANDIDATE = re.compile(
    rf"\b(?:\d{{1,6}}[A-Z]?(?:-\d{{1,5}})?\s(?:{_DIRECTION}\s)?{_NAME}(?:\s{_NAME}){{0,3}}"
    rf"\s(?:{STREET_TYPES})\b\.?(?:\s{_DIRECTION}(?!\w))?"
    rf"|(?:P\.\s?O\.|PO|Post\sOffice)\sBox\s\d{{1,6}}\b){_UNIT}{_PLACE}")
# usaddress tags that belong to an address; the span ends before any other tag
PARTS = frozenset({
    "AddressNumber", "AddressNumberPrefix", "AddressNumberSuffix", "StreetNamePreDirectional",
    "StreetNamePreModifier", "StreetNamePreType", "StreetName", "StreetNamePostType",
    "StreetNamePostDirectional", "StreetNamePostModifier", "OccupancyType",
    "OccupancyIdentifier", "SubaddressType", "SubaddressIdentifier", "USPSBoxType",
    "USPSBoxID", "PlaceName", "StateName", "ZipCode"})
STREET = frozenset({"AddressNumber", "StreetName", "StreetNamePostType"})
BOX = frozenset({"USPSBoxType", "USPSBoxID"})


def address_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each address usaddress confirms, in order."""
    if not any(ch.isdigit() for ch in text):
        return []
    spans = []
    for m in CANDIDATE.finditer(text):
        end = _confirmed_end(m.group())
        if end:
            spans.append((m.start(), m.start() + end))
    return spans


def _confirmed_end(candidate: str) -> int:
    """Length of the part of ``candidate`` usaddress tags as one address; 0 if none."""
    import usaddress

    tags: set[str] = set()
    end = cursor = 0
    for token, tag in usaddress.parse(candidate):
        start = candidate.find(token, cursor)
        cursor = start + len(token)
        if tag not in PARTS or (not tags and tag not in {"AddressNumber", "USPSBoxType"}):
            break
        tags.add(tag)
        token = token.rstrip(",;")
        # a full stop after a whole word ends the sentence; after "St." it is the address's
        end = start + len(token) - (token.endswith(".") and len(token) > 5)
    return end if tags >= STREET or tags >= BOX else 0
