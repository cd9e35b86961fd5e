"""Which sector an occupation belongs to: by KldB 2010 code, else by words in its name.

KldB's first digits name the occupational area (``51`` traffic and logistics, ``293``
cooking ...); the longest listed prefix decides. Without a code, the first matching
word of the occupation's name (or the title) decides; nothing known is ``sonstige``.
"""

from __future__ import annotations

import csv
import re
from functools import cache
from importlib.resources import files

from lotse_shared.contracts.common import Sector

# longest prefix wins; two digits = Berufshauptgruppe, three = Berufsgruppe
KLDB_PREFIXES: dict[str, Sector] = {
    "11": Sector.LANDWIRTSCHAFT,  # Land-, Tier-, Forstwirtschaft
    "12": Sector.LANDWIRTSCHAFT,  # Gartenbau, Floristik
    "21": Sector.INDUSTRIE,  # Rohstoffgewinnung, Glas, Keramik
    "22": Sector.HANDWERK,  # Holz, Farb- und Lacktechnik
    "221": Sector.INDUSTRIE,  # Kunststoff
    "23": Sector.INDUSTRIE,  # Papier, Druck
    "24": Sector.INDUSTRIE,  # Metallerzeugung und -bearbeitung
    "244": Sector.HANDWERK,  # Metallbau, Schweißtechnik
    "245": Sector.HANDWERK,  # Feinwerktechnik
    "25": Sector.INDUSTRIE,  # Maschinenbau
    "252": Sector.HANDWERK,  # Fahrzeugtechnik (Kfz)
    "26": Sector.INDUSTRIE,  # Mechatronik, Elektrotechnik
    "262": Sector.HANDWERK,  # Energietechnik (Elektroniker/in)
    "27": Sector.INDUSTRIE,  # technische Entwicklung, Produktionssteuerung
    "28": Sector.INDUSTRIE,  # Textil, Leder
    "29": Sector.HANDWERK,  # Lebensmittelherstellung (Bäcker, Fleischer)
    "293": Sector.GASTRONOMIE,  # Speisenzubereitung (Koch, Küchenhilfe)
    "31": Sector.BAU,  # Bauplanung, Vermessung
    "32": Sector.BAU,  # Hoch- und Tiefbau
    "33": Sector.BAU,  # (Innen-)Ausbau
    "34": Sector.HANDWERK,  # Gebäude- und Versorgungstechnik (SHK)
    "51": Sector.LOGISTIK,  # Verkehr, Logistik
    "52": Sector.LOGISTIK,  # Fahrzeugführung
    "54": Sector.REINIGUNG,  # Reinigung
    "61": Sector.HANDEL,  # Einkauf, Vertrieb
    "62": Sector.HANDEL,  # Verkauf
    "63": Sector.GASTRONOMIE,  # Tourismus, Hotel, Gaststätten
    "71": Sector.BUERO,  # Unternehmensorganisation
    "72": Sector.BUERO,  # Finanzen, Rechnungswesen
    "73": Sector.BUERO,  # Recht, Verwaltung
    "813": Sector.PFLEGE,  # Gesundheits- und Krankenpflege
    "821": Sector.PFLEGE,  # Altenpflege
    "823": Sector.HANDWERK,  # Körperpflege (Friseur/in)
}

# first match wins: specific words before general ones ("Metallbauer" before "bau")
NAME_WORDS: list[tuple[str, Sector]] = [
    (
        r"metallbau|tischler|schreiner|elektroniker|anlagenmechaniker|sanitär|heizung|kfz"
        r"|mechatroniker|bäcker|baecker|fleischer|metzger|friseur|maler|lackierer|klempner"
        r"|schweiß|schweiss|installateur|zimmerer|dachdecker|handwerk",
        Sector.HANDWERK,
    ),
    (
        r"lager|logistik|kommissionier|berufskraftfahrer|kraftfahrer|lkw|fahrer|stapler"
        r"|zusteller|kurier|versand|spedition",
        Sector.LOGISTIK,
    ),
    (
        r"koch|köchin|küche|kueche|gastronom|restaurant|hotel|servicekraft|kellner"
        r"|systemgastronomie|spülkraft",
        Sector.GASTRONOMIE,
    ),
    (r"landwirt|gärtner|gaertner|garten|forst|tierpfleg|ernte", Sector.LANDWIRTSCHAFT),
    (
        r"maurer|bauhelfer|bauarbeiter|hochbau|tiefbau|straßenbau|strassenbau|beton|gerüst"
        r"|trockenbau|fliesen|baugewerbe|\bbau\b",
        Sector.BAU,
    ),
    (r"pflege|altenpfleg|krankenpfleg|betreuungskraft", Sector.PFLEGE),
    (r"reinigung|reiniger|raumpfleg|hauswirtschaft", Sector.REINIGUNG),
    (r"verkäufer|verkaeufer|verkauf|einzelhandel|kassierer|handel", Sector.HANDEL),
    (r"büro|buero|verwaltung|sachbearbeit|industriekaufm", Sector.BUERO),
    (
        r"produktion|maschinen|industriemechaniker|fertigung|chemikant|verfahrens"
        r"|montage|helfer.*industrie",
        Sector.INDUSTRIE,
    ),
]
_NAME_PATTERNS = [(re.compile(words, re.IGNORECASE), sector) for words, sector in NAME_WORDS]
_KLDB = re.compile(r"(?<!\d)(\d{5})(?!\d)")


def kldb_in(text: str | None) -> str | None:
    """A five-digit KldB code written in a field ("51322", "B 51322", "51322 Fachkraft")."""
    match = _KLDB.search(text or "")
    return match.group(1) if match else None


def sector_for(code: str | None, *names: str | None) -> Sector:
    if code:
        for length in (3, 2):
            sector = KLDB_PREFIXES.get(code[:length])
            if sector is not None:
                return sector
    for name in names:
        if not name:
            continue
        for pattern, sector in _NAME_PATTERNS:
            if pattern.search(name):
                return sector
    return Sector.SONSTIGE


DKZ_TABLE = "dkz_kldb2010.csv"


@cache
def dkz_table() -> dict[str, str]:
    """hauptDkz -> KldB 2010, from ``data/dkz_kldb2010.csv`` (partial; its header says
    where each pair comes from)."""
    text = files(__package__).joinpath("data", DKZ_TABLE).read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row["dkz"].strip(): row["kldb2010"].strip() for row in rows}


def kldb_for_dkz(dkz: str) -> str | None:
    """The KldB 2010 code of an agency occupation code, if the table knows it."""
    return dkz_table().get(dkz.strip().lstrip("0") or "0")
