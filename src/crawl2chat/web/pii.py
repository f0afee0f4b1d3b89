"""PII redaction: e-mail and IP addresses as FineWeb does, plus phone numbers.

In: text. Out: :meth:`PiiRedactor.redact` gives the text with each e-mail address,
public IPv4/IPv6 address and phone number replaced, and how many of each it replaced;
:meth:`PiiRedactor.find` lists what is left (the quality gate uses it: nothing may be).

- e-mail: FineWeb's regex (datatrove's ``PIIFormatter``).
- IP: FineWeb's IPv4 regex plus an IPv6 one; like FineWeb only global (public)
  addresses count, so ``127.0.0.1`` or ``192.168.0.1`` in a how-to stay.
- phone: Google's libphonenumber (``phonenumbers``) finds numbers written in
  international format (``+49 30 901820``) for any country, and national formats for
  the configured regions; it only accepts numbers valid for their country, which keeps
  dates, version numbers and ordinary numbers.

Replacement (``mode``): ``placeholder`` writes ``<EMAIL>``, ``<IP>``, ``<PHONE>``;
``fake`` writes FineWeb's example addresses and IPs and numbers from the range
reserved for fiction (555-01xx), taken in turn.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import cycle

EMAIL = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[A-Za-z0-9]"
    r"(?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]"
    r"|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|"
    r"[A-Za-z0-9-]*[A-Za-z0-9]:)])")
IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}"
                  r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)")
# candidate IPv6 spans (hex groups with colons, '::' allowed); ipaddress validates them
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
FAKE = {
    "EMAIL": ("email@example.com", "firstname.lastname@example.org"),
    "IP": ("22.214.171.124", "126.96.36.199", "188.8.131.52", "184.108.40.206",
           "220.127.116.11", "18.104.22.168"),
    "PHONE": ("+1 202-555-0100", "+1 202-555-0123", "+1 202-555-0147"),
}
MODES = ("placeholder", "fake")


def public_ip(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_global
    except ValueError:
        return False


@dataclass
class PiiRedactor:
    """Finds and replaces PII; one instance per process (the phone matcher is reused)."""

    name: str = field(default="pii", init=False)
    mode: str = "placeholder"
    emails: bool = True
    ips: bool = True
    phones: bool = True
    phone_regions: list[str] = field(default_factory=lambda: ["US", "GB", "DE", "FR"])

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            from crawl2chat.config import ConfigError

            raise ConfigError(f"text.pii.mode: one of {MODES}, got {self.mode!r}")
        self._fakes = {kind: cycle(values) for kind, values in FAKE.items()}
        self._keep = {v for values in FAKE.values() for v in values}

    def _spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, kind) of every PII match, earliest first, without overlaps."""
        found: list[tuple[int, int, str]] = []
        if self.emails:
            found += [(m.start(), m.end(), "EMAIL") for m in EMAIL.finditer(text)]
        if self.ips:
            found += [(m.start(), m.end(), "IP") for rx in (IPV4, IPV6)
                      for m in rx.finditer(text) if public_ip(m.group())]
        if self.phones:
            found += self._phone_spans(text)
        found = [s for s in found if text[s[0]:s[1]] not in self._keep]
        spans: list[tuple[int, int, str]] = []
        for span in sorted(found):
            if not spans or span[0] >= spans[-1][1]:
                spans.append(span)
        return spans

    def _phone_spans(self, text: str) -> list[tuple[int, int, str]]:
        import phonenumbers

        if not any(ch.isdigit() for ch in text):
            return []
        spans: dict[tuple[int, int], str] = {}
        for region in self.phone_regions:
            for m in phonenumbers.PhoneNumberMatcher(text, region,
                                                     phonenumbers.Leniency.VALID):
                spans[(m.start, m.end)] = "PHONE"
        return [(a, b, kind) for (a, b), kind in spans.items()]

    def find(self, text: str) -> list[tuple[str, str]]:
        """What would be replaced: (kind, matched text) pairs."""
        return [(kind, text[a:b]) for a, b, kind in self._spans(text)]

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """The text with PII replaced, and counts per kind."""
        counts: Counter[str] = Counter()
        pieces: list[str] = []
        last = 0
        for start, end, kind in self._spans(text):
            pieces += [text[last:start], self._replacement(kind)]
            counts[kind] += 1
            last = end
        pieces.append(text[last:])
        return "".join(pieces), counts

    def _replacement(self, kind: str) -> str:
        return next(self._fakes[kind]) if self.mode == "fake" else f"<{kind}>"

    def __call__(self, doc: object) -> str | None:
        """As a step: rewrite ``doc.text``; never drops."""
        doc.text = self.redact(doc.text)[0]  # type: ignore[attr-defined]
        return None
