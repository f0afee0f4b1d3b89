"""Postal addresses outside the US: UK, Germany, France, Spain, Portugal/Brazil, Russia.

In: text. Out: :func:`intl_address_spans` gives the (start, end) of each address written
in one of these countries' formats. No parser that ships its model in a package covers
them (usaddress reads US addresses only; libpostal and deepparse download their models
at run time), so each format is a strict pattern that needs the parts a street address
has there, and the postcode formats of each country confirm the longer forms:

- UK: house number, street name and type, optional town, then a postcode of the UK's
  format: ``10 Downing Street, London SW1A 2AA``;
- Germany: street (``Hauptstraße``, ``Berliner Straße``, ``Kurfürstendamm``) and house
  number, optionally ``, 10117 Berlin``; a street without a known ending (``Unter den
  Linden 77``) only with its five-digit postcode and town;
- France: number, type of way (rue, avenue, boulevard ...) and name, optionally a
  postcode and town: ``55 rue du Faubourg Saint-Honoré, 75008 Paris``;
- Spain: type of way (Calle, Avenida, Plaza ...), name and number, optionally postcode
  and town: ``Calle de Alcalá, 48, 28014 Madrid``;
- Portugal/Brazil: ``Rua Augusta, 123, 1100-053 Lisboa``, ``Rua das Flores, 45``;
- Russia: type of street (ул., проспект ...), name and house (``д. 7``), optionally flat,
  city and postal index: ``ул. Тверская, д. 7, кв. 12``.

A place name, a date or a bare number never qualifies: each needs a house number next
to a street name of the country's form.
"""

from __future__ import annotations

import re

_CAP = r"[A-ZÄÖÜÉÈÀÂÎÔÛÇÁÍÓÚÑÃÕ][\w'’.-]*"  # a capitalised word (ASCII and accented)
_TOWN = rf"{_CAP}(?:[ -]{_CAP}){{0,2}}"

UK_POSTCODE = r"(?:[A-Z]{1,2}\d[A-Z\d]?|GIR) ?\d[ABD-HJLNP-UW-Z]{2}"
UK = (rf"\b\d{{1,4}}[A-Z]?,?\s(?:{_CAP}\s){{1,3}}(?:Street|St|Road|Rd|Lane|Avenue|Close|"
      rf"Crescent|Drive|Gardens|Grove|Hill|Mews|Place|Row|Square|Terrace|Walk|Way|Court|"
      rf"Parade)\b\.?(?:,\s{_TOWN})?,?\s{UK_POSTCODE}\b")

_DE_END = r"(?:straße|strasse|str\.|weg|platz|allee|gasse|ufer|chaussee|damm)"
_DE_TYPE = r"(?:Straße|Strasse|Str\.|Weg|Platz|Allee|Gasse|Ufer|Chaussee|Damm)"
_DE_NUMBER = r"\d{1,4}(?: ?[a-z](?!\w))?(?: ?[-–] ?\d{1,4})?(?![\w.,]\d)"
_DE_PLACE = r"\d{5} [A-ZÄÖÜ][a-zäöüß]+(?:[ -][A-ZÄÖÜ][a-zäöüß]+)?"
_DE_CONNECT = r"(?:den|der|des|dem|am|an|im|in|zum|zur|von|vor|\d{1,2}\.)"
DE = (rf"(?:\b[A-ZÄÖÜ][a-zäöüß]+(?:-[A-ZÄÖÜ]?[a-zäöüß]+)*{_DE_END}"
      rf"|\b(?:[A-ZÄÖÜ][a-zäöüß]+(?:-[A-ZÄÖÜ][a-zäöüß]+)*(?:er|e|es) )?{_DE_TYPE}"
      rf"(?: {_DE_CONNECT} [A-ZÄÖÜ][\wäöüß.]*)?)"
      rf" {_DE_NUMBER}(?:, ?{_DE_PLACE}\b)?"
      # no known ending: the words right before the number, not a street's further on
      rf"|\b(?!(?:[A-ZÄÖÜ]?[a-zäöüß]+ ){{1,3}}[A-ZÄÖÜ][a-zäöüß]*{_DE_END} )"
      rf"[A-ZÄÖÜ][a-zäöüß]+(?: (?:{_DE_CONNECT}|[A-ZÄÖÜ][a-zäöüß]+)){{0,3}}"
      rf" {_DE_NUMBER}, ?{_DE_PLACE}\b")

_FR_TYPE = (r"(?:[Rr]ue|[Aa]venue|[Aa]v\.|[Bb]oulevard|[Bb]d|[Pp]lace|[Cc]hemin|[Aa]llée|"
            r"[Ii]mpasse|[Qq]uai|[Rr]oute|[Cc]ours|[Ss]quare|[Pp]assage|[Vv]oie)")
_FR_LINK = r"(?:de la |de l['’]|du |des |de |d['’]|la |le |les |l['’]|et )"
FR = (rf"\b\d{{1,4}}(?: ?(?:bis|ter|[A-D]))?,? {_FR_TYPE} {_FR_LINK}?{_CAP}"
      rf"(?:[ -]{_FR_LINK}?{_CAP}){{0,4}}(?:,? \d{{5}} {_TOWN})?")

_ES_TYPE = (r"(?:Calle|C/|Avenida|Avda\.|Plaza|Pza\.|Paseo|Camino|Carretera|Ronda|"
            r"Travesía|Glorieta)")
_ES_LINK = r"(?:de la |de los |de las |del |de |la |el |los |las |y )"
ES = (rf"\b{_ES_TYPE} ?{_ES_LINK}?{_CAP}(?: {_ES_LINK}?{_CAP}){{0,3}},? "
      rf"(?:n\.?º ?|núm\. ?)?\d{{1,4}}\b(?:,? \d{{1,2}}º(?: ?[A-Z]\b)?)?(?:,? \d{{5}} {_TOWN})?")

_PT_TYPE = r"(?:Rua|R\.|Avenida|Av\.|Travessa|Praça|Largo|Estrada|Alameda)"
_PT_LINK = r"(?:da |das |do |dos |de |e )"
PT = (rf"\b{_PT_TYPE} {_PT_LINK}?{_CAP}(?: {_PT_LINK}?{_CAP}){{0,3}}, ?(?:n\.?º ?)?"
      rf"\d{{1,5}}\b(?:,? (?:\d{{4}}-\d{{3}}|\d{{5}}-\d{{3}}) {_TOWN})?")

_RU_TYPE = (r"(?:ул\.|улица|пр\.|просп\.|проспект|пер\.|переулок|наб\.|набережная|ш\.|"
            r"шоссе|пл\.|площадь|бульвар|б-р|проезд)")
_RU_NAME = r"[А-ЯЁ0-9][\wа-яё.-]*(?: [А-ЯЁ][\wа-яё.-]*){0,2}"
RU = (rf"(?:\b\d{{6}}, )?(?:г\. ?[А-ЯЁ][а-яё-]+, )?(?<!\w){_RU_TYPE} ?{_RU_NAME},? "
      rf"(?:д\.|дом) ?\d{{1,4}}[а-я]?\b(?:,? (?:корп\.|к\.|стр\.) ?\d{{1,3}}\b)?"
      rf"(?:,? (?:кв\.|квартира|оф\.) ?\d{{1,4}}\b)?")

# per format: a cheap test whether the text can hold one, and the full pattern
FORMATS = [(re.compile(trigger), re.compile(pattern)) for trigger, pattern in (
    (UK_POSTCODE, UK),
    (rf"(?:{_DE_END}|{_DE_TYPE}) \d|\d, ?\d{{5}} [A-ZÄÖÜ]", DE),
    (rf"\d,? {_FR_TYPE} ", FR),
    (rf"{_ES_TYPE} ", ES),
    (rf"{_PT_TYPE} ", PT),
    (_RU_TYPE, RU))]


def intl_address_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each address in one of the formats above, in order, none
    overlapping (the earlier, then the longer wins)."""
    if not any(ch.isdigit() for ch in text):
        return []
    # a town's word may take the sentence's full stop with it
    found = sorted(((m.start(), m.start() + len(m.group().rstrip(" ,.")))
                    for trigger, pattern in FORMATS if trigger.search(text)
                    for m in pattern.finditer(text)), key=lambda s: (s[0], -s[1]))
    spans: list[tuple[int, int]] = []
    for start, end in found:
        if not spans or start >= spans[-1][1]:
            spans.append((start, end))
    return spans
