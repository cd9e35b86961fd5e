"""Openings from partners' own formats: every mapping rule, each with the case that flips it."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lotse_placement.domain.importing import FeedError, parse_csv, parse_jobsuche
from lotse_placement.domain.importing.german import from_sprachkenntnisse, from_text
from lotse_placement.domain.importing.occupations import sector_for
from lotse_shared.contracts.common import CefrLevel, OpeningType, Sector

DATA = Path(__file__).resolve().parents[1] / "data" / "imports"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def search_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "refnr": "10000-1-S",
        "titel": "Fachkraft Lagerlogistik",
        "beruf": "Fachkraft - Lagerlogistik",
        "arbeitgeber": "Nordhessen Logistik GmbH",
        "arbeitsort": {"plz": "34225", "ort": "Baunatal"},
        "eintrittsdatum": "2027-08-01",
    }
    record.update(changes)
    return record


def detail(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "referenznummer": "10000-2-S",
        "stellenangebotsTitel": "Helfer/in Lager",
        "stellenangebotsart": "ARBEIT",
        "firma": "Paketzentrum Lohfelden GmbH",
        "hauptberuf": "Helfer/in - Lagerwirtschaft",
        "stellenangebotsBeschreibung": "",
        "stellenlokationen": [{"adresse": {"plz": "34253", "ort": "Lohfelden"}}],
    }
    record.update(changes)
    return record


def one(document: Any, **kwargs: Any):
    feed = parse_jobsuche(document, **kwargs)
    assert feed.rejected == [], feed.rejected
    assert len(feed.openings) == 1
    return feed.openings[0]


def rejection(document: Any, **kwargs: Any) -> str:
    feed = parse_jobsuche(document, **kwargs)
    assert feed.openings == []
    assert len(feed.rejected) == 1
    return feed.rejected[0].reason


# --- document shapes ------------------------------------------------------------------
def test_search_results_file() -> None:
    feed = parse_jobsuche(load("jobsuche_search.json"))
    assert feed.rejected == []
    lager, koch, eq = feed.openings
    assert lager.source_ref == "10001-1002345678-S"
    assert lager.opening_type is OpeningType.AUSBILDUNG  # "Ausbildung ..." in the title
    assert lager.sector is Sector.LOGISTIK
    assert (lager.location.lat, lager.location.lon) == (51.2541, 9.4163)
    assert lager.location.municipality == "Baunatal"
    assert lager.start_date == date(2027, 8, 1)
    assert lager.source_url == "https://karriere.nordhessen-logistik.example/ausbildung-lager-2027"
    assert koch.sector is Sector.GASTRONOMIE
    assert koch.location.lat is None  # located by its place name when the service stores it
    assert koch.location.municipality == "Kassel"
    assert koch.source_url == "https://www.arbeitsagentur.de/jobsuche/jobdetail/10001-1002345679-S"
    assert eq.opening_type is OpeningType.EINSTIEGSQUALIFIZIERUNG
    assert eq.sector is Sector.HANDEL


def test_details_with_old_sprachkenntnisse_and_old_names() -> None:
    feed = parse_jobsuche(load("jobsuche_details_sprachkenntnisse.json"))
    assert feed.rejected == []
    metall, lager = feed.openings
    # old names: refnr/titel/arbeitgeber/stellenbeschreibung/arbeitsorte in a detail
    assert metall.title == "Praktikum Metallbau (m/w/d)"
    assert metall.opening_type is OpeningType.PRAKTIKUM
    assert metall.sector is Sector.HANDWERK
    assert metall.required_german_level is CefrLevel.B1
    assert metall.german_level_rule == "sprachkenntnisse: Deutsch/Erweiterte Kenntnisse"
    assert metall.location.municipality == "Kaufungen"
    # new names; the structured field wins over the description's "in Wort und Schrift"
    assert lager.employer == "Paketzentrum Lohfelden GmbH"
    assert lager.occupation_code == "51312"
    assert lager.required_german_level is CefrLevel.A2
    assert lager.german_level_rule == "sprachkenntnisse: Deutsch/Grundkenntnisse"
    assert lager.start_date == date(2026, 12, 1)  # eintrittszeitraum.von
    assert (lager.location.lat, lager.location.lon) == (51.267, 9.532)  # breite/laenge
    assert lager.source_url == "https://jobs.paketzentrum-lohfelden.example/helfer-lager"


def test_single_detail_with_description_only() -> None:
    opening = one(load("jobsuche_detail_description_only.json"))
    assert opening.opening_type is OpeningType.BESCHAEFTIGUNG
    assert opening.sector is Sector.LOGISTIK  # Berufskraftfahrer
    assert opening.required_german_level is CefrLevel.B1
    assert opening.german_level_rule == "Beschreibung: 'gute Deutschkenntnisse' (gut = B1)"
    assert opening.location.municipality == "Fuldabrück"


def test_a_mixed_list_of_search_results_and_details() -> None:
    document = [load("jobsuche_search.json"), detail(), search_record(refnr="X-9")]
    feed = parse_jobsuche(document)
    assert feed.rejected == []
    assert len(feed.openings) == 5


@pytest.mark.parametrize("document", [42, "text", {"foo": 1}, {"stellenangebote": {}}])
def test_an_unknown_document_fails_as_a_whole(document: Any) -> None:
    with pytest.raises(FeedError) as err:
        parse_jobsuche(document)
    assert err.value.field in ("document", "stellenangebote")


def test_broken_records_are_rejected_with_ref_and_reason() -> None:
    feed = parse_jobsuche(load("jobsuche_broken.json"))
    assert [o.source_ref for o in feed.openings] == ["10000-1190000006-S"]
    assert feed.openings[0].sector is Sector.LANDWIRTSCHAFT  # Garten- und Landschaftsbau
    reasons = {(r.ref, r.row): r.reason for r in feed.rejected}
    assert reasons[(None, 1)].startswith("refnr: missing")
    assert reasons[("10000-1190000002-S", 2)].startswith("stellenangebotsart: SELBSTAENDIGKEIT")
    assert reasons[("10000-1190000003-S", 3)].startswith(
        "arbeitsort.ort: unknown place 'Göttingen' and no coordinates"
    )
    assert reasons[("10000-1190000004-S", 4)].startswith("eintrittsdatum: 'August 2027'")
    assert reasons[("10000-1190000005-S", 5)].startswith("arbeitgeber: missing")
    assert feed.received == 6
    assert "10000-1190000003-S" in feed.refs  # still on offer: a full feed keeps it


# --- the same refnr twice in one feed: the latest version wins --------------------------
def test_the_same_refnr_twice_without_timestamps_the_later_in_the_feed_wins() -> None:
    feed = parse_jobsuche([search_record(), search_record(titel="anders")])
    assert [o.title for o in feed.openings] == ["anders"]
    assert feed.rejected == []  # the earlier version is not a rejection ...
    assert [(s.report.title, s.row) for s in feed.superseded] == [("Fachkraft Lagerlogistik", 1)]
    assert feed.received == 2  # ... but was received, and goes to the opening's history


def test_the_later_modifikationstimestamp_wins_wherever_it_stands() -> None:
    newer = search_record(titel="neu", modifikationsTimestamp="2026-11-20T10:15:31.123")
    older = search_record(titel="alt", modifikationsTimestamp="2026-11-19T08:00:00")
    feed = parse_jobsuche({"stellenangebote": [newer, older, search_record(refnr="other")]})
    assert [o.title for o in feed.openings] == ["neu", "Fachkraft Lagerlogistik"]
    assert [(s.report.title, s.row) for s in feed.superseded] == [("alt", 2)]
    # the agency's local time, without a zone: Europe/Berlin (CET in November)
    assert feed.openings[0].source_modified_at == datetime(
        2026, 11, 20, 10, 15, 31, 123000, tzinfo=ZoneInfo("Europe/Berlin")
    )
    assert feed.openings[0].source_modified_at.utcoffset() == timedelta(hours=1)


def test_the_later_aenderungsdatum_of_details_wins() -> None:
    older = detail(stellenangebotsTitel="alt", aenderungsdatum="2026-11-19T08:00:00")
    newer = detail(stellenangebotsTitel="neu", aenderungsdatum="2026-11-20T08:00:00+01:00")
    feed = parse_jobsuche([older, newer])
    assert [o.title for o in feed.openings] == ["neu"]
    assert [s.report.title for s in feed.superseded] == ["alt"]
    feed = parse_jobsuche([newer, older])
    assert [o.title for o in feed.openings] == ["neu"]


def test_an_unreadable_timestamp_is_ignored_with_a_notice() -> None:
    feed = parse_jobsuche([search_record(modifikationsTimestamp="gestern")])
    assert feed.openings[0].source_modified_at is None
    assert feed.notices[0].reason.startswith("modifikationsTimestamp: 'gestern'")


# --- seats, occupation code, refugees, places -------------------------------------------
@pytest.mark.parametrize(("given", "seats"), [(None, 1), (3, 3), ("12", 12), (500, 500)])
def test_seats_from_anzahl_offene_stellen(given: Any, seats: int) -> None:
    assert one([detail(anzahlOffeneStellen=given)]).seats == seats


@pytest.mark.parametrize("given", ["drei", 0, 501, 2.5, True])
def test_a_bad_anzahl_offene_stellen_is_rejected_by_name(given: Any) -> None:
    assert rejection([detail(anzahlOffeneStellen=given)]).startswith("anzahlOffeneStellen: ")


def test_hauptdkz_known_gives_the_kldb_code_and_keeps_the_raw_code() -> None:
    opening = one([detail(hauptDkz="501", hauptberuf="Helfer/in - Landwirtschaft")])
    assert (opening.occupation_code, opening.agency_occupation_code) == ("11101", "501")
    assert opening.sector is Sector.LANDWIRTSCHAFT


def test_an_unknown_hauptdkz_keeps_the_opening_with_a_notice() -> None:
    feed = parse_jobsuche([detail(hauptDkz="12345")])
    assert feed.rejected == []
    opening = feed.openings[0]
    assert (opening.occupation_code, opening.agency_occupation_code) == (None, "12345")
    assert [(n.ref, n.row, n.reason) for n in feed.notices] == [
        ("10000-2-S", 1, "hauptDkz 12345: no KldB 2010 code known")
    ]


def test_an_explicit_kldb_wins_over_hauptdkz() -> None:
    feed = parse_jobsuche([detail(hauptDkz="501", kldb="51301")])
    assert feed.openings[0].occupation_code == "51301"
    assert feed.openings[0].agency_occupation_code == "501"
    assert parse_jobsuche([detail(hauptDkz="12345", kldb="51301")]).notices == []


@pytest.mark.parametrize(
    ("given", "kept"), [(True, True), (False, False), ("true", True), (None, None)]
)
def test_fuer_fluechtlinge_geeignet(given: Any, kept: bool | None) -> None:
    assert one([detail(fuerFluechtlingeGeeignet=given)]).suitable_for_refugees is kept


def test_every_work_location_of_a_detail_is_kept() -> None:
    places = [
        {"adresse": {"plz": "34253", "ort": "Lohfelden"}},
        {"adresse": {"plz": "34369", "ort": "Hofgeismar"}},
        {"adresse": {"ort": "Irgendwo"}, "breite": 51.2, "laenge": 9.6},
    ]
    opening = one([detail(stellenlokationen=places)])
    assert opening.location.municipality == "Lohfelden"
    assert [(p.municipality, p.lat) for p in opening.other_locations] == [
        ("Hofgeismar", None),
        ("Irgendwo", 51.2),
    ]


def test_a_place_that_cannot_be_located_among_several_is_left_out_with_a_notice() -> None:
    places = [{"adresse": {"ort": "Nirgendwo"}}, {"adresse": {"plz": "34369", "ort": "Hofgeismar"}}]
    feed = parse_jobsuche([detail(stellenlokationen=places)])
    opening = feed.openings[0]
    assert (opening.location.municipality, opening.other_locations) == ("Hofgeismar", [])
    assert feed.notices[0].reason.startswith(
        "stellenlokationen[0].adresse.ort: unknown place 'Nirgendwo'"
    )
    # none of them: rejected as before
    lost = [{"adresse": {"ort": "Nirgendwo"}}, {"adresse": {"ort": "Anderswo"}}]
    assert rejection([detail(stellenlokationen=lost)]).startswith(
        "stellenlokationen[0].adresse.ort: unknown place 'Nirgendwo'"
    )


# --- opening type ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("art", "expected"),
    [
        ("ARBEIT", OpeningType.BESCHAEFTIGUNG),
        ("AUSBILDUNG", OpeningType.AUSBILDUNG),
        ("PRAKTIKUM_TRAINEE", OpeningType.PRAKTIKUM),
        (1, OpeningType.BESCHAEFTIGUNG),
        ("4", OpeningType.AUSBILDUNG),
        (34, OpeningType.PRAKTIKUM),
    ],
)
def test_stellenangebotsart(art: Any, expected: OpeningType) -> None:
    assert one(detail(stellenangebotsart=art)).opening_type is expected


@pytest.mark.parametrize(("angebotsart", "expected"), [(1, "beschaeftigung"), (4, "ausbildung")])
def test_the_query_parameter_angebotsart_types_search_results(angebotsart, expected) -> None:
    record = search_record(titel="Fachlagerist/in")
    assert one({"stellenangebote": [record]}, angebotsart=angebotsart).opening_type == expected
    # a record's own type wins over the query's
    own = search_record(stellenangebotsart="PRAKTIKUM_TRAINEE")
    assert one([own], angebotsart=angebotsart).opening_type is OpeningType.PRAKTIKUM


def test_without_any_type_the_title_decides_else_arbeit() -> None:
    assert one([search_record(titel="Praktikant/in Lager")]).opening_type is OpeningType.PRAKTIKUM
    assert one([search_record()]).opening_type is OpeningType.BESCHAEFTIGUNG


def test_selbstaendigkeit_is_rejected_also_by_query_parameter() -> None:
    assert rejection([search_record()], angebotsart=2).startswith(
        "stellenangebotsart: SELBSTAENDIGKEIT"
    )
    with pytest.raises(FeedError) as err:
        parse_jobsuche([search_record()], angebotsart=3)
    assert err.value.field == "angebotsart"
    assert "unknown value" in rejection([detail(stellenangebotsart="FREELANCE")])


@pytest.mark.parametrize(
    "where",
    [
        {"stellenangebotsTitel": "Einstiegsqualifizierung Lager"},
        {"stellenangebotsTitel": "EQ Lager (m/w/d)"},
        {"stellenangebotsBeschreibung": "Wir bieten eine EQ mit Übernahme in die Ausbildung."},
    ],
)
def test_einstiegsqualifizierung_from_title_or_description(where: dict[str, str]) -> None:
    opening = one(detail(stellenangebotsart="AUSBILDUNG", **where))
    assert opening.opening_type is OpeningType.EINSTIEGSQUALIFIZIERUNG


def test_eq_needs_the_word_not_letters_inside_a_word() -> None:
    opening = one(detail(stellenangebotsTitel="Equipment-Pfleger/in"))
    assert opening.opening_type is OpeningType.BESCHAEFTIGUNG


# --- place ----------------------------------------------------------------------------
def test_place_from_coordinates_name_or_postcode() -> None:
    coords = one(
        [search_record(arbeitsort={"ort": "Göttingen", "koordinaten": {"lat": 51.5, "lon": 9.9}})]
    )
    assert (coords.location.municipality, coords.location.lat) == ("Göttingen", 51.5)
    by_name = one([search_record(arbeitsort={"ort": "Kassel, Hessen", "plz": "34127"})])
    assert by_name.location.municipality == "Kassel"
    by_postcode = one([search_record(arbeitsort={"plz": "34246"})])
    assert by_postcode.location.municipality == "Vellmar"
    assert "not a five-digit postcode" in rejection(
        [search_record(arbeitsort={"ort": "Kassel", "plz": "3411"})]
    )
    assert rejection([detail(stellenlokationen=[])]).startswith("arbeitsort: missing")


def test_detail_coordinates_breite_laenge() -> None:
    place = {"adresse": {"ort": "Irgendwo"}, "breite": 51.1, "laenge": 9.2}
    opening = one(detail(stellenlokationen=[place]))
    assert (opening.location.lat, opening.location.lon) == (51.1, 9.2)
    bad = {"adresse": {"ort": "Irgendwo"}, "breite": "nord", "laenge": 9.2}
    assert rejection([detail(stellenlokationen=[bad])]).startswith(
        "stellenlokationen[0].breite/laenge: not numbers"
    )


# --- sector and occupation code ---------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "name", "sector"),
    [
        ("51322", None, Sector.LOGISTIK),
        ("29301", None, Sector.GASTRONOMIE),
        ("29212", None, Sector.HANDWERK),
        ("32122", None, Sector.BAU),
        ("82102", None, Sector.PFLEGE),
        ("54101", None, Sector.REINIGUNG),
        ("24412", None, Sector.HANDWERK),
        ("24202", None, Sector.INDUSTRIE),
        (None, "Berufskraftfahrer/in", Sector.LOGISTIK),
        (None, "Metallbauer/in", Sector.HANDWERK),
        (None, "Maurer/in", Sector.BAU),
        (None, "Koch/Köchin", Sector.GASTRONOMIE),
        (None, "Kaufmann/-frau im Einzelhandel", Sector.HANDEL),
        (None, "Astronaut/in", Sector.SONSTIGE),
        ("91234", "Astronaut/in", Sector.SONSTIGE),
    ],
)
def test_sector_from_occupation(code: str | None, name: str | None, sector: Sector) -> None:
    assert sector_for(code, name) is sector


def test_occupation_code_only_when_a_kldb_code_is_given() -> None:
    assert one([search_record()]).occupation_code is None
    assert one([search_record(beruf="51322 Fachkraft - Lagerlogistik")]).occupation_code == "51322"
    assert one([detail(kldb="B 52122")]).occupation_code == "52122"


# --- German level ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "level", "rule"),
    [
        ("Sie bringen Deutschkenntnisse B1 mit.", "B1", "Beschreibung: 'Deutschkenntnisse B1'"),
        ("Deutsch (B2) und Englisch", "B2", "Beschreibung: 'Deutsch (B2)'"),
        ("Sprachniveau A2 genügt", "A2", "Beschreibung: 'Sprachniveau A2'"),
        ("Deutschkenntnisse auf B1-Niveau", "B1", "Beschreibung: 'Deutschkenntnisse auf B1'"),
        ("B2-Deutschkenntnisse", "B2", "Beschreibung: 'B2-Deutschkenntnisse'"),
        ("Deutsch mind. A2, B1 wünschenswert", "A2", "Beschreibung: 'Deutsch mind. A2'"),
        ("Kenntnisse der deutschen Sprache (B1)", "B1", "Beschreibung: 'deutschen Sprache (B1)'"),
        ("gute Deutschkenntnisse", "B1", "Beschreibung: 'gute Deutschkenntnisse' (gut = B1)"),
        ("Deutsch: gut", "B1", "Beschreibung: 'Deutsch: gut' (gut = B1)"),
        (
            "sehr gute Deutschkenntnisse",
            "B2",
            "Beschreibung: 'sehr gute Deutschkenntnisse' (sehr gut/fließend = B2)",
        ),
        (
            "Sie sprechen fließend Deutsch",
            "B2",
            "Beschreibung: 'fließend Deutsch' (sehr gut/fließend = B2)",
        ),
        (
            "verhandlungssichere Deutschkenntnisse",
            "C1",
            "Beschreibung: 'verhandlungssichere Deutschkenntnisse' (verhandlungssicher = C1)",
        ),
        (
            "Deutsch in Wort und Schrift",
            "B1",
            "Beschreibung: 'Deutsch in Wort und Schrift' (in Wort und Schrift = B1)",
        ),
        (
            "Grundkenntnisse in Deutsch",
            "A2",
            "Beschreibung: 'Grundkenntnisse in Deutsch' (Grundkenntnisse = A2)",
        ),
        (
            "einfache Deutschkenntnisse reichen",
            "A2",
            "Beschreibung: 'einfache Deutschkenntnisse' (Grundkenntnisse = A2)",
        ),
        (
            "Deutschkenntnisse erwünscht",
            "A2",
            "Beschreibung: 'Deutschkenntnisse' (ohne Grad = A2)",
        ),
        (
            "keine Deutschkenntnisse erforderlich",
            None,
            "Beschreibung: 'keine Deutschkenntnisse erforderlich' (keine verlangt)",
        ),
        ("Englisch B2, Arbeit in Deutschland", None, None),
        ("Wir bieten gute Bezahlung.", None, None),
    ],
)
def test_german_level_from_the_description(text: str, level: str | None, rule: str | None) -> None:
    read = from_text(text)
    assert (read.level, read.rule) == (CefrLevel(level) if level else None, rule)


def test_an_explicit_level_beats_a_phrase() -> None:
    read = from_text("Gute Deutschkenntnisse (mindestens A2) sind nötig.")
    assert read.level is CefrLevel.A2


@pytest.mark.parametrize(
    ("degree", "level"),
    [
        ("Grundkenntnisse", CefrLevel.A2),
        ("Erweiterte Kenntnisse", CefrLevel.B1),
        ("Expertenkenntnisse", CefrLevel.C1),
        ("B2", CefrLevel.B2),
    ],
)
def test_german_level_from_sprachkenntnisse(degree: str, level: CefrLevel) -> None:
    read = from_sprachkenntnisse([{"bezeichnung": "Deutsch", "auspraegung": degree}])
    assert read is not None
    assert read.level is level
    assert read.rule == f"sprachkenntnisse: Deutsch/{degree}"


def test_sprachkenntnisse_without_german_leaves_it_to_the_description() -> None:
    record = detail(
        sprachkenntnisse=[{"bezeichnung": "Englisch", "auspraegung": "Expertenkenntnisse"}],
        stellenangebotsBeschreibung="Deutschkenntnisse B1",
    )
    assert one(record).german_level_rule == "Beschreibung: 'Deutschkenntnisse B1'"
    assert one(detail()).required_german_level is None


# --- CSV ------------------------------------------------------------------------------
def test_chambers_csv() -> None:
    feed = parse_csv((DATA / "ihk_openings.csv").read_bytes())
    by_ref = {o.source_ref: o for o in feed.openings}
    assert sorted(by_ref) == ["IHK-2027-001", "IHK-2027-002", "IHK-2027-003", "IHK-2027-006"]
    einzelhandel = by_ref["IHK-2027-001"]
    assert einzelhandel.opening_type is OpeningType.AUSBILDUNG
    assert einzelhandel.sector is Sector.HANDEL
    assert einzelhandel.seats == 2
    assert einzelhandel.start_date == date(2027, 8, 1)
    assert einzelhandel.german_level_rule == "Spalte Deutsch: 'B1'"
    assert einzelhandel.description == "Berufsschule in Kassel; Deutsch B1 wird erwartet."
    eq = by_ref["IHK-2027-002"]
    assert eq.opening_type is OpeningType.EINSTIEGSQUALIFIZIERUNG
    assert (eq.location.lat, eq.location.lon) == (51.2541, 9.4163)  # decimal commas
    assert eq.required_german_level is CefrLevel.A2
    assert by_ref["IHK-2027-003"].german_level_rule == (
        "Beschreibung: 'gute Deutschkenntnisse' (gut = B1)"
    )
    assert by_ref["IHK-2027-006"].start_date is None  # "sofort"
    rejected = {r.row: (r.ref, r.reason) for r in feed.rejected}
    assert rejected[5] == (
        "IHK-2027-004",
        "Beginn: '31.09.2027' is not a date (01.08.2026 or 2026-08-01)",
    )
    assert rejected[6][0] == "IHK-2027-005"
    assert rejected[6][1].startswith("Art: 'Lehre' is not one of")


def test_csv_wrong_header_names_the_column() -> None:
    with pytest.raises(FeedError) as err:
        parse_csv((DATA / "csv_wrong_header.csv").read_bytes())
    assert err.value.field == "header.Betreib"
    assert err.value.reason.startswith("unknown column; expected: Referenz, Art")


@pytest.mark.parametrize(
    ("header", "field", "reason"),
    [
        ("Referenz,Art,Titel,Ort", "header.Betrieb", "required column is missing"),
        ("Referenz;Art;Titel;Betrieb;Ort;titel", "header.Titel", "column appears twice"),
        ("", "header", "the file is empty or starts with an empty line"),
    ],
)
def test_csv_header_errors(header: str, field: str, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        parse_csv(header + "\n")
    assert (err.value.field, err.value.reason) == (field, reason)


def test_csv_comma_separated_ascii_spellings_and_bad_rows() -> None:
    text = (
        "referenz,art,titel,betrieb,ort,laenge,breite,plaetze,kldb,deutsch\n"
        "H-1,Praktikum,Praktikum Tischlerei,Tischlerei Wagner,Zierenberg,,,3,22342,gut\n"
        "H-2,Praktikum,Praktikum,Betrieb,Zierenberg,,,x,,\n"
        "H-3,Praktikum,Praktikum,Betrieb,Zierenberg,,,,5134,\n"
        "H-4,Praktikum,Praktikum,Betrieb,Zierenberg,,,,,sehr viel\n"
        "H-5,Praktikum,Praktikum,,Zierenberg,,,,,\n"
        "H-6,Praktikum,Praktikum,Betrieb,Zierenberg\n"
        "\n"
        "H-1,Praktikum,Praktikum,Betrieb,Zierenberg,,,,,\n"
    )
    feed = parse_csv(text.encode())
    assert [o.source_ref for o in feed.openings] == ["H-1"]
    h1 = feed.openings[0]
    assert (h1.seats, h1.sector, h1.required_german_level) == (3, Sector.HANDWERK, CefrLevel.B1)
    assert h1.german_level_rule == "Spalte Deutsch: 'gut'"
    assert [(r.row, r.ref, r.reason.split(":")[0]) for r in feed.rejected] == [
        (3, "H-2", "Plätze"),
        (4, "H-3", "KldB"),
        (5, "H-4", "Deutsch"),
        (6, "H-5", "Betrieb"),
        (7, "H-6", "row"),
        (9, "H-1", "Referenz"),
    ]


def test_csv_not_utf8_fails_the_file() -> None:
    with pytest.raises(FeedError) as err:
        parse_csv(
            "Referenz;Art;Titel;Betrieb;Ort\nR;Praktikum;Küche;Gasthof;Kassel\n".encode("cp1252")
        )
    assert err.value.field == "file"
