"""The employment agency's job format (Jobsuche API), as it is, old names included.

Accepted documents: search results ``{"stellenangebote": [...]}``, one job detail, a
list of details, or a list mixing both shapes. Each record becomes an
``OpeningReportedV1`` or a :class:`Rejection` naming the Jobsuche field. See
``docs/imports.md`` for the full mapping.
"""

from __future__ import annotations

import re
from typing import Any

from lotse_shared.contracts.common import OpeningType
from lotse_shared.contracts.partner import OpeningReportedV1

from .common import (
    FeedError,
    Notice,
    ParsedFeed,
    RecordError,
    Rejection,
    agency_time,
    build_report,
    clip,
    locate_all,
    parse_date,
)
from .german import from_sprachkenntnisse, from_text
from .occupations import kldb_for_dkz, kldb_in, sector_for

JOBDETAIL_URL = "https://www.arbeitsagentur.de/jobsuche/jobdetail/{refnr}"

# the query parameter ``angebotsart`` and the detail field ``stellenangebotsart``
ANGEBOTSART_CODES: dict[int, str] = {
    1: "ARBEIT",
    2: "SELBSTAENDIGKEIT",
    4: "AUSBILDUNG",
    34: "PRAKTIKUM_TRAINEE",
}
TYPES: dict[str, OpeningType] = {
    "ARBEIT": OpeningType.BESCHAEFTIGUNG,
    "AUSBILDUNG": OpeningType.AUSBILDUNG,
    "PRAKTIKUM_TRAINEE": OpeningType.PRAKTIKUM,
}
_EQ = re.compile(r"einstiegsqualifizierung|(?-i:\bEQJ?\b)", re.IGNORECASE)
_TITLE_AUSBILDUNG = re.compile(r"\bausbildung|\bazubi|auszubildende", re.IGNORECASE)
_TITLE_PRAKTIKUM = re.compile(r"\bpraktik(?:um|ant)", re.IGNORECASE)

# our field -> the Jobsuche field a validation error is reported under
FIELD_NAMES = {
    "source_ref": "refnr",
    "title": "titel",
    "employer": "arbeitgeber",
    "occupation_code": "kldb",
    "location": "arbeitsort",
    "location.postcode": "arbeitsort.plz",
    "start_date": "eintrittsdatum",
    "seats": "anzahlOffeneStellen",
    "agency_occupation_code": "hauptDkz",
    "description": "stellenangebotsBeschreibung",
    "source_url": "externeUrl",
}


def angebotsart_name(value: object) -> str:
    """1/'1'/'ARBEIT'/'arbeit' -> 'ARBEIT'; anything else is a RecordError."""
    text = str(value).strip()
    if text.isdigit() and int(text) in ANGEBOTSART_CODES:
        return ANGEBOTSART_CODES[int(text)]
    if text.upper() in ANGEBOTSART_CODES.values():
        return text.upper()
    raise RecordError(
        "stellenangebotsart",
        f"unknown value {text!r} (ARBEIT/1, SELBSTAENDIGKEIT/2, AUSBILDUNG/4, "
        "PRAKTIKUM_TRAINEE/34)",
    )


def records_of(document: object) -> list[Any]:
    """The records of any accepted document shape."""
    if isinstance(document, list):
        records: list[Any] = []
        for item in document:
            if isinstance(item, dict) and isinstance(item.get("stellenangebote"), list):
                records.extend(item["stellenangebote"])
            else:
                records.append(item)
        return records
    if isinstance(document, dict):
        if "stellenangebote" in document:
            found = document["stellenangebote"]
            if not isinstance(found, list):
                raise FeedError("stellenangebote", "must be a list of job offers")
            return found
        if _ref_of(document) is not None or "stellenangebotsTitel" in document:
            return [document]
    raise FeedError(
        "document",
        "expected search results {'stellenangebote': [...]}, a job detail "
        "(with 'referenznummer') or a list of them",
    )


def parse_jobsuche(document: object, *, angebotsart: int | str | None = None) -> ParsedFeed:
    """Read a Jobsuche document. ``angebotsart`` is the search's query parameter; a
    record's own ``stellenangebotsart`` wins over it."""
    default_type = None
    if angebotsart not in (None, ""):
        try:
            default_type = angebotsart_name(angebotsart)
        except RecordError as exc:
            raise FeedError("angebotsart", str(exc).split(": ", 1)[1]) from None
    feed = ParsedFeed()
    for position, record in enumerate(records_of(document), start=1):
        ref = _ref_of(record) if isinstance(record, dict) else None
        try:
            if not isinstance(record, dict):
                raise RecordError("stellenangebote", f"entry is not an object: {record!r:.60}")
            report, caveats = _opening(record, default_type)
            feed.accept(report, position)
            feed.notices.extend(Notice(ref, position, reason) for reason in caveats)
        except RecordError as exc:
            feed.rejected.append(Rejection(ref, position, str(exc)))
    return feed


def _ref_of(record: dict[str, Any]) -> str | None:
    for key in ("refnr", "referenznummer", "refNr"):
        value = record.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return None


def _text(record: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, dict):  # e.g. old {"arbeitgeber": {"name": ...}}
            name = value.get("name") or value.get("bezeichnung")
            if isinstance(name, str) and name.strip():
                return name.strip()
    return None


def _opening_type(
    record: dict[str, Any], default: str | None, title: str, text: str
) -> OpeningType:
    given = record.get("stellenangebotsart", record.get("angebotsart"))
    name = angebotsart_name(given) if given not in (None, "") else default
    if name == "SELBSTAENDIGKEIT":
        raise RecordError(
            "stellenangebotsart",
            "SELBSTAENDIGKEIT (self-employment) is not an opening Lotse places people in",
        )
    if _EQ.search(title) or _EQ.search(text):
        return OpeningType.EINSTIEGSQUALIFIZIERUNG
    if name is not None:
        return TYPES[name]
    # neither the record nor the search says: the title, else the API's own default (ARBEIT)
    if _TITLE_AUSBILDUNG.search(title):
        return OpeningType.AUSBILDUNG
    if _TITLE_PRAKTIKUM.search(title):
        return OpeningType.PRAKTIKUM
    return OpeningType.BESCHAEFTIGUNG


def _locations(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Search results: ``arbeitsort``; details: every entry of ``stellenlokationen[]``
    (older documents: ``arbeitsorte[]``), each as :func:`locate`'s arguments."""
    if isinstance(record.get("arbeitsort"), dict):
        place = record["arbeitsort"]
        coords = place.get("koordinaten") or {}
        return [
            {
                "municipality": place.get("ort"),
                "postcode": place.get("plz"),
                "lat": coords.get("lat"),
                "lon": coords.get("lon"),
                "fields": ("arbeitsort.ort", "arbeitsort.plz", "arbeitsort.koordinaten"),
            }
        ]
    for key in ("stellenlokationen", "arbeitsorte"):
        places = record.get(key)
        if not isinstance(places, list):
            continue
        found = []
        for i, entry in enumerate(places):
            if not isinstance(entry, dict):
                continue
            address: dict[str, Any] = entry.get("adresse") or entry
            coords = entry.get("koordinaten") or {}
            found.append(
                {
                    "municipality": address.get("ort"),
                    "postcode": address.get("plz"),
                    "lat": entry.get("breite", coords.get("lat")),
                    "lon": entry.get("laenge", coords.get("lon")),
                    "fields": (
                        f"{key}[{i}].adresse.ort",
                        f"{key}[{i}].adresse.plz",
                        f"{key}[{i}].breite/laenge",
                    ),
                }
            )
        if found:
            return found
    raise RecordError("arbeitsort", "missing (neither arbeitsort nor stellenlokationen)")


def _seats(value: object) -> int:
    """``anzahlOffeneStellen``: a whole number (also as text), 1 if not given."""
    if value in (None, ""):
        return 1
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", text):
        raise RecordError("anzahlOffeneStellen", f"{value!r} is not a whole number")
    return int(text)


def _occupation_code(
    record: dict[str, Any], occupation: str | None
) -> tuple[str | None, str | None, list[str]]:
    """The KldB 2010 code (an explicit KldB field, else the one of ``hauptDkz``, else one
    written in the occupation's name), the raw ``hauptDkz`` and the caveats."""
    dkz_value = record.get("hauptDkz")
    dkz = str(dkz_value).strip() if dkz_value not in (None, "") else None
    explicit = kldb_in(_text(record, "kldb", "hauptberufKldb", "berufKldb"))
    if explicit is not None:
        return explicit, dkz, []
    if dkz is not None:
        mapped = kldb_for_dkz(dkz)
        if mapped is not None:
            return mapped, dkz, []
        return kldb_in(occupation), dkz, [f"hauptDkz {dkz}: no KldB 2010 code known"]
    return kldb_in(occupation), None, []


def _flag(value: object) -> bool | None:
    """``fuerFluechtlingeGeeignet``: true/false (also as text); anything else says nothing."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().casefold() if value is not None else ""
    return {"true": True, "ja": True, "false": False, "nein": False}.get(text)


def _opening(
    record: dict[str, Any], default_type: str | None
) -> tuple[OpeningReportedV1, list[str]]:
    """The record as a report, and the caveats of reading it (for notices)."""
    ref = _ref_of(record)
    if ref is None:
        raise RecordError("refnr", "missing (refnr or referenznummer)")
    title = _text(record, "titel", "stellenangebotsTitel", "stellenbezeichnung")
    if title is None:
        raise RecordError("titel", "missing (titel or stellenangebotsTitel)")
    employer = _text(record, "arbeitgeber", "firma", "arbeitgeberName")
    if employer is None:
        raise RecordError("arbeitgeber", "missing (arbeitgeber or firma)")
    description = clip(_text(record, "stellenangebotsBeschreibung", "stellenbeschreibung"))
    occupation = _text(record, "beruf", "hauptberuf")
    code, dkz, caveats = _occupation_code(record, occupation)
    german = from_sprachkenntnisse(record.get("sprachkenntnisse")) or from_text(description)
    locations, left_out = locate_all(_locations(record))
    caveats += left_out
    eintritt = record.get("eintrittszeitraum")
    start = record.get("eintrittsdatum")
    start_field = "eintrittsdatum"
    if start in (None, "") and isinstance(eintritt, dict):
        start, start_field = eintritt.get("von"), "eintrittszeitraum.von"
    url = _text(record, "externeUrl", "externeURL") or JOBDETAIL_URL.format(refnr=ref)
    modified_field = "modifikationsTimestamp"
    modified = record.get(modified_field)
    if modified in (None, ""):
        modified_field, modified = "aenderungsdatum", record.get("aenderungsdatum")
    modified_at = agency_time(modified)
    if modified not in (None, "") and modified_at is None:
        caveats.append(f"{modified_field}: {modified!r} is not a date and time; ignored")
    report = build_report(
        {
            "source_ref": ref,
            "opening_type": _opening_type(record, default_type, title, description),
            "title": title,
            "employer": employer,
            "occupation_code": code,
            "sector": sector_for(code, occupation, title),
            "required_german_level": german.level,
            "german_level_rule": german.rule,
            "location": locations[0],
            "other_locations": locations[1:],
            "start_date": parse_date(start, start_field),
            "seats": _seats(record.get("anzahlOffeneStellen")),
            "description": description,
            "source_url": url,
            "source_modified_at": modified_at,
            "agency_occupation_code": dkz,
            "suitable_for_refugees": _flag(record.get("fuerFluechtlingeGeeignet")),
        },
        FIELD_NAMES,
    )
    return report, caveats
