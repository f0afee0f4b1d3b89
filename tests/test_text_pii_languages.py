"""PII beyond English: the README's table of support per language, held to by examples.

The table under "PII by language" in README.md says, per language and kind, ``yes``
(redacted) or ``no`` (stays); each cell is checked on a sentence of that language with
one item of that kind: a ``yes`` item must be replaced, a ``no`` item must stay.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crawl2chat.text.pii import PiiRedactor
from crawl2chat.text.pii_address_intl import intl_address_spans
from crawl2chat.text.pii_phone import language_region, regions, url_region

README = Path(__file__).resolve().parents[1] / "README.md"
COLUMNS = {"e-mail, IP": "EMAIL", "phone numbers": "PHONE", "person names": "PERSON",
           "postal addresses": "ADDRESS"}
# language -> kind -> (sentence, the item in it)
CASES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {"EMAIL": ("Write to jane.doe@gmail.com today.", "jane.doe@gmail.com"),
           "PHONE": ("Call us on (202) 456-1111 after nine.", "(202) 456-1111"),
           "PERSON": ("Yesterday we met John Smith at the station.", "John Smith"),
           "ADDRESS": ("Write to 10 Downing Street, London SW1A 2AA today.",
                       "10 Downing Street, London SW1A 2AA")},
    "es": {"EMAIL": ("Escriba a maria.garcia@gmail.com mañana.", "maria.garcia@gmail.com"),
           "PHONE": ("Llame al 912 345 678 por la mañana.", "912 345 678"),
           "PERSON": ("Ayer vimos a María García Fernández en el mercado.",
                      "María García Fernández"),
           "ADDRESS": ("La oficina está en la Calle de Alcalá, 48, 28014 Madrid.",
                       "Calle de Alcalá, 48, 28014 Madrid")},
    "ru": {"EMAIL": ("Пишите на ivan.petrov@mail.ru в любое время.", "ivan.petrov@mail.ru"),
           "PHONE": ("Звоните по телефону 8 (495) 123-45-67 днём.", "8 (495) 123-45-67"),
           "PERSON": ("Вчера мы встретили Ивана Петрова на вокзале.", "Ивана Петрова"),
           "ADDRESS": ("Он живёт по адресу: ул. Тверская, д. 7, кв. 12, в центре.",
                       "ул. Тверская, д. 7, кв. 12")},
    "fr": {"EMAIL": ("Écrivez à marie.dupont@orange.fr demain.", "marie.dupont@orange.fr"),
           "PHONE": ("Vous pouvez nous joindre au 01 42 68 53 00 le matin.",
                     "01 42 68 53 00"),
           "PERSON": ("Hier, nous avons rencontré Marie Dupont à la gare.", "Marie Dupont"),
           "ADDRESS": ("Il habite 55 rue du Faubourg Saint-Honoré, 75008 Paris depuis 2010.",
                       "55 rue du Faubourg Saint-Honoré, 75008 Paris")},
    "de": {"EMAIL": ("Schreiben Sie an anna.schmidt@web.de bitte.", "anna.schmidt@web.de"),
           "PHONE": ("Rufen Sie uns unter 030 901820 an.", "030 901820"),
           "PERSON": ("Gestern haben wir Anna Schmidt am Bahnhof getroffen.", "Anna Schmidt"),
           "ADDRESS": ("Schreiben Sie an Hauptstraße 5, 80331 München.",
                       "Hauptstraße 5, 80331 München")},
    "pt": {"EMAIL": ("Escreva para joao.silva@gmail.com amanhã.", "joao.silva@gmail.com"),
           "PHONE": ("Ligue para o número (11) 3456-7890 de manhã.", "(11) 3456-7890"),
           "PERSON": ("Ontem encontramos João Silva na estação.", "João Silva"),
           "ADDRESS": ("A loja fica na Rua Augusta, 123, 1100-053 Lisboa.",
                       "Rua Augusta, 123, 1100-053 Lisboa")},
    "zh": {"EMAIL": ("请发邮件到wang.xiaoming@gmail.com联系我们。", "wang.xiaoming@gmail.com"),
           "PHONE": ("请拨打电话010-6552-9988联系我们。", "010-6552-9988"),
           "PERSON": ("昨天我们在车站见到了王小明。", "王小明"),
           "ADDRESS": ("我们的地址是北京市朝阳区建国路88号。", "北京市朝阳区建国路88号")},
    "ja": {"EMAIL": ("yamada.taro@gmail.comまでご連絡ください。", "yamada.taro@gmail.com"),
           "PHONE": ("03-1234-5678までお電話ください。", "03-1234-5678"),
           "PERSON": ("昨日、駅で山田太郎さんに会いました。", "山田太郎"),
           "ADDRESS": ("住所は東京都千代田区丸の内1-1-1です。", "東京都千代田区丸の内1-1-1")},
}


def readme_table() -> dict[str, dict[str, str]]:
    """language -> kind -> the cell's text, from the README's "PII by language" table."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("PII by language"):]
    rows = [line for line in section.splitlines()[1:40] if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table = {}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        table[cells[0].strip("`")] = {COLUMNS[h]: c for h, c in zip(header, cells, strict=True)
                                      if h in COLUMNS}
    return table


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor()


def test_the_table_covers_every_language_and_kind() -> None:
    table = readme_table()
    assert set(table) == set(CASES)
    for lang, cells in table.items():
        assert set(cells) == set(COLUMNS.values()), lang
        for cell in cells.values():
            assert re.match(r"^(yes|no)\b", cell), (lang, cell)


@pytest.mark.parametrize("lang", sorted(CASES))
def test_each_cell_of_the_table_holds(redactor: PiiRedactor, lang: str) -> None:
    for kind, cell in readme_table()[lang].items():
        sentence, item = CASES[lang][kind]
        redacted, counts = redactor.redact(sentence, lang)
        if cell.startswith("yes"):
            assert item not in redacted and counts[kind] == 1, (lang, kind, redacted)
        else:
            assert item in redacted and not counts, (lang, kind, redacted)


def test_phone_regions_come_from_language_and_domain() -> None:
    assert language_region("es") == "ES" and language_region("pt") == "BR"
    assert language_region("ja") == "JP" and language_region("xx") is None
    assert url_region("https://www.example.co.uk/a") == "GB"
    assert url_region("https://example.de:8080/") == "DE" and url_region("https://a.com/") is None
    assert regions(["US", "DE"], "de", "https://shop.at/") == ("US", "DE", "AT")
    # a Portuguese number is found on a .pt site, not on a Brazilian-default page
    text = "Ligue para 213 456 789 hoje."
    assert PiiRedactor().find(text, "pt", kinds=["PHONE"], url="https://loja.pt/") == [
        ("PHONE", "213 456 789")]
    assert PiiRedactor().find(text, "pt", kinds=["PHONE"]) == []


@pytest.mark.parametrize("text", [
    "Python 3.11 came out on 24 October 2022; String 5 and Ring 0 and Keyring 2.",
    "Am 24. Oktober 2022 kamen 42 Leute. Version 2.4.1 und Python 3.11. Kapitel 12, Seite 3.",
    "Le 14 juillet 1789, 600 personnes. Chapitre 12, page 5. Route 66 et la version 3.2.",
    "El 12 de octubre de 1492, capítulo 3, página 45. Calle mojada en 2020.",
    "В 1999 году 25 человек прочитали главу 12 на странице 5.",
    "We met in London in 2020 and flew to Paris 75008 times."])
def test_no_address_in_dates_versions_and_places(text: str) -> None:
    assert intl_address_spans(text) == []
