"""Opening lists from the chambers (IHK, HWK) and the employers' association (VSB) as CSV.

UTF-8 (a byte-order mark is fine), ``;`` or ``,`` between fields (the header line
decides), one header line naming the columns below in any order, German dates.
A wrong header fails the whole file naming the column; a bad row is rejected with
its line number, reference and reason while the good rows are imported.
The columns are documented in ``docs/imports.md``; keep both in step.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from lotse_shared.contracts.common import OpeningType, Sector
from lotse_shared.contracts.partner import OpeningReportedV1

from .common import (
    FeedError,
    ParsedFeed,
    RecordError,
    Rejection,
    build_report,
    clip,
    locate,
    parse_date,
)
from .german import GermanLevel, from_text, level_of_degree
from .occupations import kldb_in, sector_for


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    meaning: str


COLUMNS: tuple[Column, ...] = (
    Column("Referenz", True, "your reference number; the same again updates the opening"),
    Column("Art", True, "Praktikum, EQ (Einstiegsqualifizierung), Ausbildung, Beschäftigung"),
    Column("Titel", True, "title of the opening"),
    Column("Betrieb", True, "employer"),
    Column("Ort", True, "town or municipality (may be empty if Breite/Länge are given)"),
    Column("PLZ", False, "postcode, five digits"),
    Column("Breite", False, "latitude, e.g. 51,3127"),
    Column("Länge", False, "longitude, e.g. 9,4797"),
    Column("Beruf", False, "occupation name; decides the sector if KldB is empty"),
    Column("KldB", False, "KldB 2010 code, five digits"),
    Column("Branche", False, "sector (logistik, handwerk, ...); overrides KldB/Beruf"),
    Column("Beginn", False, "start date, 01.08.2027"),
    Column("Plätze", False, "number of seats, default 1"),
    Column("Deutsch", False, "required German: A1..C2 or words (gute Kenntnisse)"),
    Column("Beschreibung", False, "description; German level read from it if Deutsch is empty"),
    Column("Link", False, "URL of the posting"),
)
_SPELLINGS = {"laenge": "länge", "plaetze": "plätze"}
_BY_KEY = {c.name.casefold(): c for c in COLUMNS}

TYPES: dict[str, OpeningType] = {
    "praktikum": OpeningType.PRAKTIKUM,
    "eq": OpeningType.EINSTIEGSQUALIFIZIERUNG,
    "einstiegsqualifizierung": OpeningType.EINSTIEGSQUALIFIZIERUNG,
    "ausbildung": OpeningType.AUSBILDUNG,
    "beschäftigung": OpeningType.BESCHAEFTIGUNG,
    "beschaeftigung": OpeningType.BESCHAEFTIGUNG,
    "arbeit": OpeningType.BESCHAEFTIGUNG,
    "job": OpeningType.BESCHAEFTIGUNG,
}
FIELD_NAMES = {
    "source_ref": "Referenz",
    "title": "Titel",
    "employer": "Betrieb",
    "occupation_code": "KldB",
    "location": "Ort",
    "location.postcode": "PLZ",
    "start_date": "Beginn",
    "seats": "Plätze",
    "description": "Beschreibung",
    "source_url": "Link",
}


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedError(
            "file", f"not UTF-8 (byte {exc.start}); export the list as 'CSV UTF-8'"
        ) from None


def _header(names: list[str]) -> list[str]:
    """The canonical column names in file order; FeedError naming a wrong column."""
    seen: list[str] = []
    for raw in names:
        key = raw.strip().casefold()
        key = _SPELLINGS.get(key, key)
        column = _BY_KEY.get(key)
        if column is None:
            expected = ", ".join(c.name for c in COLUMNS)
            raise FeedError(
                f"header.{raw.strip() or '(empty)'}", f"unknown column; expected: {expected}"
            )
        if column.name in seen:
            raise FeedError(f"header.{column.name}", "column appears twice")
        seen.append(column.name)
    for column in COLUMNS:
        if column.required and column.name not in seen:
            raise FeedError(f"header.{column.name}", "required column is missing")
    return seen


def parse_csv(text: str | bytes) -> ParsedFeed:
    if isinstance(text, bytes):
        text = decode(text)
    text = text.removeprefix("\ufeff")
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise FeedError("header", "the file is empty or starts with an empty line")
    delimiter = ";" if ";" in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = _header(next(reader))
    feed = ParsedFeed()
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        row = dict(zip(columns, (v.strip() for v in values), strict=False))
        ref = row.get("Referenz") or None
        try:
            if len(values) != len(columns):
                raise RecordError("row", f"{len(values)} fields, the header has {len(columns)}")
            feed.accept_first(_opening(row), line, "Referenz")
        except RecordError as exc:
            feed.rejected.append(Rejection(ref, line, str(exc)))
    return feed


def _german(row: dict[str, str]) -> GermanLevel:
    given = row.get("Deutsch", "")
    if given:
        level = level_of_degree(given)
        if level is not None:
            return GermanLevel(level, f"Spalte Deutsch: '{given}'")
        read = from_text(given, where="Spalte Deutsch")
        if read.rule is None:
            raise RecordError("Deutsch", f"{given!r} is not a level (A1..C2, gute Kenntnisse ...)")
        return read
    return from_text(row.get("Beschreibung", ""))


def _opening(row: dict[str, str]) -> OpeningReportedV1:
    for column in COLUMNS:
        if column.required and column.name != "Ort" and not row.get(column.name):
            raise RecordError(column.name, "empty")
    kind = TYPES.get(row["Art"].casefold())
    if kind is None:
        raise RecordError("Art", f"{row['Art']!r} is not one of {', '.join(sorted(TYPES))}")
    code = row.get("KldB") or None
    if code is not None and kldb_in(code) != code:
        raise RecordError("KldB", f"{code!r} is not a five-digit KldB 2010 code")
    sector_given = row.get("Branche", "").casefold()
    if sector_given and sector_given not in Sector.__members__.values():
        raise RecordError("Branche", f"{row['Branche']!r} is not one of {', '.join(Sector)}")
    seats = row.get("Plätze") or "1"
    if not seats.isdigit():
        raise RecordError("Plätze", f"{seats!r} is not a whole number")
    german = _german(row)
    return build_report(
        {
            "source_ref": row["Referenz"],
            "opening_type": kind,
            "title": row["Titel"],
            "employer": row["Betrieb"],
            "occupation_code": code,
            "sector": Sector(sector_given)
            if sector_given
            else sector_for(code, row.get("Beruf"), row["Titel"]),
            "required_german_level": german.level,
            "german_level_rule": german.rule,
            "location": locate(
                municipality=row.get("Ort"),
                postcode=row.get("PLZ"),
                lat=row.get("Breite"),
                lon=row.get("Länge"),
                fields=("Ort", "PLZ", "Breite/Länge"),
            ),
            "start_date": parse_date(row.get("Beginn"), "Beginn"),
            "seats": int(seats),
            "description": clip(row.get("Beschreibung")),
            "source_url": row.get("Link") or None,
        },
        FIELD_NAMES,
    )
