"""PII redaction: e-mail and IP addresses as FineWeb does, plus phone numbers, person
names and postal addresses, in the document's language.

In: text, its language and URL. Out: :meth:`PiiRedactor.redact` gives the text with each
e-mail address, public IPv4/IPv6 address, phone number, person name and postal address
replaced, and how many of each kind it replaced; :meth:`PiiRedactor.find` lists what is
left (the quality gate asks it for the pattern kinds: none may be).

- e-mail: FineWeb's regex (datatrove's ``PIIFormatter``); addresses at the domains
  reserved for examples (RFC 2606: example.com/.net/.org, *.example) are nobody's.
- IP: FineWeb's IPv4 regex plus an IPv6 one; like FineWeb only global (public)
  addresses count, so ``127.0.0.1`` or ``192.168.0.1`` in a how-to stay.
- phone: libphonenumber, international format for any country and national formats of
  the configured regions, the document language's and its URL's, see
  :mod:`crawl2chat.text.pii_phone`.
- person: spaCy NER, see :mod:`crawl2chat.text.pii_names`; a document is read by the
  model ``ner_models`` names for its language (the ``en`` one when it is not known);
  documents of other languages keep their names.
- address: US-style ones confirmed by usaddress (:mod:`crawl2chat.text.pii_address`),
  and UK, German, French, Spanish and Russian ones by their postcode and street formats
  (:mod:`crawl2chat.text.pii_address_intl`), in any document.

Where matches overlap, e-mail/IP/phone win over addresses, and addresses over names.
A replacement can turn what stood beside it into a new e-mail/IP/phone match, so those
kinds are looked for again in the result until none is left (at most ``MAX_PASSES``).
Replacement (``mode``): ``placeholder`` writes ``<EMAIL>``, ``<IP>``, ``<PHONE>``,
``<PERSON>``, ``<ADDRESS>``; ``fake`` writes realistic values that are nobody's
(example.com addresses, documentation IP ranges, 555-01xx numbers, invented names and
streets), chosen by a hash of ``seed`` and the original: the same input gives the same
output in any order, and one person keeps one pseudonym throughout the crawl.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crawl2chat.text.pii_address import STATES, address_spans
from crawl2chat.text.pii_address_intl import intl_address_spans
from crawl2chat.text.pii_phone import phone_spans, regions
from crawl2chat.text.recipe import PiiCfg

if TYPE_CHECKING:
    from crawl2chat.text.steps import Doc

EMAIL = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[A-Za-z0-9]"
    r"(?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]"
    r"|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|"
    r"[A-Za-z0-9-]*[A-Za-z0-9]:)])")
EXAMPLE_DOMAIN = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|net|org)|[\w-]+\.example)$",
                            re.IGNORECASE)
IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}"
                  r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)")
# candidate IPv6 spans (hex groups with colons, '::' allowed); ipaddress validates them
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
KINDS = ("EMAIL", "IP", "PHONE", "ADDRESS", "PERSON")  # overlap priority, first wins
PATTERN_KINDS = ("EMAIL", "IP", "PHONE")  # what the quality gate checks
MAX_PASSES = 8  # of redaction: each pass replaces what the last one's replacements made
FIRST = ("Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn",
         "Robin", "Dana", "Kim", "Lee", "Sam", "Chris", "Pat")
LAST = ("Miller", "Carter", "Brooks", "Hayes", "Porter", "Reed", "Ellis", "Foster", "Grant",
        "Hughes", "Palmer", "Shaw", "Warren", "Lane", "Bishop", "Fleming")
STREETS = ("Maple", "Oak", "Cedar", "Elm", "Pine", "Willow", "Birch", "Chestnut", "Hawthorn",
           "Juniper", "Sycamore", "Laurel")
STREET_TYPES = ("Street", "Avenue", "Road", "Lane", "Drive", "Court")
TOWNS = (("Springfield", "IL", "62704"), ("Riverside", "CA", "92501"),
         ("Franklin", "TN", "37064"), ("Greenville", "SC", "29601"), ("Salem", "OR", "97301"),
         ("Madison", "WI", "53703"), ("Fairview", "NJ", "07022"), ("Clinton", "IA", "52732"))
Span = tuple[int, int, str]


def public_ip(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_global
    except ValueError:
        return False


@dataclass
class PiiRedactor(PiiCfg):
    """Finds and replaces PII. Picklable: the NER model lives in a per-process cache."""

    name: str = field(default="pii", init=False)

    def enabled(self) -> tuple[str, ...]:
        """The kinds switched on, in overlap priority."""
        flags = (self.emails, self.ips, self.phones, self.addresses, self.persons)
        return tuple(kind for kind, on in zip(KINDS, flags, strict=True) if on)

    def _spans_many(self, texts: Sequence[str], langs: Sequence[str | None],
                    urls: Sequence[str | None], kinds: Iterable[str]) -> list[list[Span]]:
        """Per text, (start, end, kind) of every match, in order, without overlaps."""
        kinds = set(kinds) & set(self.enabled())
        names: list[list[tuple[int, int]]] = [[] for _ in texts]
        if "PERSON" in kinds:
            from crawl2chat.text.pii_names import person_spans

            # no language (None, ""): the caller does not know it; the "en" model looks
            by_model: dict[str, list[int]] = {}
            for i, lang in enumerate(langs):
                package = self.ner_models.get(lang or "en")
                if package:
                    by_model.setdefault(package, []).append(i)
            for package, todo in by_model.items():
                for i, spans in zip(todo, person_spans([texts[i] for i in todo], package,
                                                       self.name_min_words, self.chunk_chars),
                                    strict=True):
                    names[i] = spans
        return [self._choose(text, kinds, found, lang, url)
                for text, found, lang, url in zip(texts, names, langs, urls, strict=True)]

    def _choose(self, text: str, kinds: set[str], names: list[tuple[int, int]],
                lang: str | None, url: str | None) -> list[Span]:
        patterns: list[Span] = []
        if "EMAIL" in kinds:
            patterns += [(m.start(), m.end(), "EMAIL") for m in EMAIL.finditer(text)
                         if not EXAMPLE_DOMAIN.search(m.group())]
        if "IP" in kinds:
            patterns += [(m.start(), m.end(), "IP") for rx in (IPV4, IPV6)
                         for m in rx.finditer(text) if public_ip(m.group())]
        if "PHONE" in kinds:
            patterns += [(a, b, "PHONE") for a, b in
                         phone_spans(text, regions(self.phone_regions, lang, url))]
        addresses = (address_spans(text) + intl_address_spans(text)
                     if "ADDRESS" in kinds else [])
        return without_overlaps([patterns, [(a, b, "ADDRESS") for a, b in addresses],
                                 [(a, b, "PERSON") for a, b in names]])

    def find(self, text: str, lang: str | None = None, kinds: Iterable[str] = KINDS,
             url: str | None = None) -> list[tuple[str, str]]:
        """What would be replaced: (kind, matched text) pairs, of the enabled ``kinds``."""
        return [(kind, text[a:b])
                for a, b, kind in self._spans_many([text], [lang], [url], kinds)[0]]

    def redact(self, text: str, lang: str | None = None,
               url: str | None = None) -> tuple[str, Counter[str]]:
        """The text with PII replaced, and counts per kind. ``lang``: see ``ner_models``."""
        return self.redact_many([text], [lang], [url])[0]

    def redact_many(self, texts: Sequence[str], langs: Sequence[str | None] | None = None,
                    urls: Sequence[str | None] | None = None,
                    ) -> list[tuple[str, Counter[str]]]:
        """:meth:`redact` for many texts at once: the NER reads them in one batch."""
        langs = list(langs) if langs is not None else [None] * len(texts)
        urls = list(urls) if urls is not None else [None] * len(texts)
        if not len(langs) == len(urls) == len(texts):
            raise ValueError(f"redact_many: {len(texts)} texts but {len(langs)} languages "
                             f"and {len(urls)} URLs")
        out = []
        for text, spans, lang, url in zip(texts, self._spans_many(texts, langs, urls, KINDS),
                                          langs, urls, strict=True):
            counts: Counter[str] = Counter()
            for _ in range(MAX_PASSES):
                # a replacement can make a new match of what was beside it ("0 2021-08-09
                # 02:02 0 2021-08-09" loses a phone number, and its first half reads as
                # another): the pattern kinds are looked for again until none is left
                text = self._replace(text, spans, counts)
                spans = self._choose(text, set(PATTERN_KINDS) & set(self.enabled()), [],
                                     lang, url) if spans else []
                if not spans:
                    break
            out.append((text, counts))
        return out

    def _replace(self, text: str, spans: list[Span], counts: Counter[str]) -> str:
        pieces: list[str] = []
        last = 0
        for start, end, kind in spans:
            pieces += [text[last:start], self._replacement(kind, text[start:end])]
            counts[kind] += 1
            last = end
        pieces.append(text[last:])
        return "".join(pieces)

    def _replacement(self, kind: str, original: str) -> str:
        if self.mode == "placeholder":
            return f"<{kind}>"
        digest = hashlib.blake2b(f"{self.seed}\0{kind}\0{original}".encode(),
                                 digest_size=8).digest()
        return fake_value(kind, original, int.from_bytes(digest, "big"))

    def __call__(self, doc: Doc) -> str | None:
        """As a step: rewrite ``doc.text`` (names only if ``doc.lang`` allows); never drops."""
        doc.text = self.redact(doc.text, doc.lang, doc.url)[0]
        return None


def without_overlaps(groups: Iterable[list[Span]]) -> list[Span]:
    """The spans, sorted, none overlapping: an earlier group wins, and within a group the
    earlier, then the longer span."""
    chosen: list[Span] = []
    for group in groups:
        starts = [a for a, _, _ in chosen]
        fresh: list[Span] = []
        for span in sorted(group, key=lambda s: (s[0], -s[1])):
            before = bisect.bisect_left(starts, span[1])  # chosen spans starting before its end
            if (fresh and span[0] < fresh[-1][1]) or (before and chosen[before - 1][1] > span[0]):
                continue
            fresh.append(span)
        chosen = sorted(chosen + fresh)
    return chosen


def fake_value(kind: str, original: str, n: int) -> str:
    """A realistic stand-in for ``original`` that is nobody's; the number ``n`` picks it."""
    def pick(options: Sequence[str]) -> str:
        nonlocal n
        n, i = divmod(n, len(options))
        return options[i]

    first, last = pick(FIRST), pick(LAST)
    if kind == "EMAIL":
        return f"{first}.{last}@example.{pick(('com', 'org', 'net'))}".lower()
    if kind == "IP":  # the ranges reserved for documentation (RFC 5737, RFC 3849)
        if ":" in original:
            return f"2001:db8::{n % 0xFFFF + 1:x}"
        return f"{pick(('192.0.2', '198.51.100', '203.0.113'))}.{n % 254 + 1}"
    if kind == "PHONE":
        return f"+1 {pick(('202', '212', '312', '415', '617'))}-555-01{n % 100:02d}"
    if kind == "PERSON":
        return last if len(original.split()) == 1 else f"{first} {last}"
    if kind == "ADDRESS":
        street = f"{n % 9800 + 100} {pick(STREETS)} {pick(STREET_TYPES)}"
        if not re.search(rf",.*\b(?:{STATES})\b", original):  # a street alone stays alone
            return street
        town, state, zip_code = TOWNS[n % len(TOWNS)]
        return f"{street}, {town}, {state} {zip_code}"
    raise ValueError(f"unknown PII kind {kind!r}")
