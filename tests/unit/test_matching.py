"""Placement's matching rules: each hard rule has a case that flips it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from lotse_placement.domain.matching import (
    evaluate,
    permitted_types,
    rank,
    reach_km,
    score,
)
from lotse_placement.domain.model import Candidate, Opening, OpeningStatus
from lotse_shared.contracts.common import (
    CefrLevel,
    EducationLevel,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.places import find_place
from tests.samples import TODAY


def person(**changes: Any) -> Candidate:
    place = find_place(changes.pop("municipality", "Baunatal"))
    assert place is not None
    data: dict[str, Any] = {
        "person_id": uuid.uuid4(),
        "district_id": "kassel",
        "revision": 1,
        "birth_year": 1997,
        "municipality": place.name,
        "lat": place.lat,
        "lon": place.lon,
        "german_level": CefrLevel.B1,
        "residence_status": ResidenceStatus.AUFENTHALTSERLAUBNIS,
        "work_permission": WorkPermission.ALLOWED,
        "driving_licence": False,
        "max_commute_km": 25,
        "sectors_of_interest": [Sector.LOGISTIK],
        "experience_occupations": ["51312"],
        "matching_consent": True,
    }
    data.update(changes)
    return Candidate(**data)


def opening(**changes: Any) -> Opening:
    place = find_place(changes.pop("municipality", "Kassel"))
    assert place is not None
    data: dict[str, Any] = {
        "source": "ba-jobsuche",
        "source_ref": uuid.uuid4().hex,
        "opening_type": OpeningType.AUSBILDUNG,
        "title": "Ausbildung Lagerlogistik",
        "employer": "Nordhessen Logistik",
        "occupation_code": "51322",
        "sector": Sector.LOGISTIK,
        "required_german_level": CefrLevel.B1,
        "municipality": place.name,
        "lat": place.lat,
        "lon": place.lon,
        "start_date": TODAY + timedelta(days=30),
    }
    data.update(changes)
    return Opening(**data)


def failed_rules(p: Candidate, o: Opening) -> set[str]:
    return {r.rule for r in evaluate(p, o).failed}


def test_a_fitting_pair_passes_every_hard_rule() -> None:
    assert failed_rules(person(), opening()) == set()


# --- German level -----------------------------------------------------------------


def test_german_level_below_requirement_excludes() -> None:
    result = evaluate(person(german_level=CefrLevel.A2), opening())
    assert {r.rule for r in result.failed} == {"german_level"}
    assert "A2 erreicht, Stelle verlangt B1" in [r.reason for r in result.failed]


def test_level_reached_in_a_course_counts_even_if_intake_lags() -> None:
    p = person(german_level=CefrLevel.A2, course_level=CefrLevel.B1)
    assert failed_rules(p, opening()) == set()


def test_no_german_passes_only_without_requirement() -> None:
    p = person(german_level=None)
    assert failed_rules(p, opening()) == {"german_level"}
    assert failed_rules(p, opening(required_german_level=None)) == set()


# --- work permission ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "permission", "opening_type", "allowed"),
    [
        (
            ResidenceStatus.AUFENTHALTSERLAUBNIS,
            WorkPermission.ALLOWED,
            OpeningType.AUSBILDUNG,
            True,
        ),
        (
            ResidenceStatus.AUFENTHALTSERLAUBNIS,
            WorkPermission.NOT_ALLOWED,
            OpeningType.AUSBILDUNG,
            False,
        ),
        (
            ResidenceStatus.AUFENTHALTSGESTATTUNG,
            WorkPermission.NEEDS_APPROVAL,
            OpeningType.PRAKTIKUM,
            False,
        ),
        (
            ResidenceStatus.AUFENTHALTSGESTATTUNG,
            WorkPermission.APPROVED,
            OpeningType.PRAKTIKUM,
            True,
        ),
        (ResidenceStatus.DULDUNG, WorkPermission.NEEDS_APPROVAL, OpeningType.BESCHAEFTIGUNG, False),
        (ResidenceStatus.AUSBILDUNGSDULDUNG, WorkPermission.APPROVED, OpeningType.AUSBILDUNG, True),
        (
            ResidenceStatus.AUSBILDUNGSDULDUNG,
            WorkPermission.APPROVED,
            OpeningType.BESCHAEFTIGUNG,
            False,
        ),
        (
            ResidenceStatus.BESCHAEFTIGUNGSDULDUNG,
            WorkPermission.APPROVED,
            OpeningType.BESCHAEFTIGUNG,
            True,
        ),
        (
            ResidenceStatus.BESCHAEFTIGUNGSDULDUNG,
            WorkPermission.APPROVED,
            OpeningType.AUSBILDUNG,
            False,
        ),
        (
            ResidenceStatus.NIEDERLASSUNGSERLAUBNIS,
            WorkPermission.ALLOWED,
            OpeningType.BESCHAEFTIGUNG,
            True,
        ),
    ],
)
def test_work_permission_is_a_hard_rule(
    status: ResidenceStatus, permission: WorkPermission, opening_type: OpeningType, allowed: bool
) -> None:
    p = person(residence_status=status, work_permission=permission)
    o = opening(opening_type=opening_type)
    assert ("work_permission" not in failed_rules(p, o)) is allowed
    assert (opening_type in permitted_types(p)) is allowed


def test_missing_approval_is_explained() -> None:
    p = person(
        residence_status=ResidenceStatus.AUFENTHALTSGESTATTUNG,
        work_permission=WorkPermission.NEEDS_APPROVAL,
    )
    reasons = [r.reason for r in evaluate(p, opening()).failed]
    assert reasons == [
        "Beschäftigungserlaubnis der Ausländerbehörde fehlt noch (Aufenthaltsgestattung)"
    ]


# --- open with free seats --------------------------------------------------------------------


def test_closed_opening_excludes() -> None:
    assert failed_rules(person(), opening(status=OpeningStatus.CLOSED)) == {"open_with_seats"}


def test_full_opening_excludes() -> None:
    assert failed_rules(person(), opening(seats=2, seats_taken=2)) == {"open_with_seats"}
    assert failed_rules(person(), opening(seats=2, seats_taken=1)) == set()


# --- reach --------------------------------------------------------------------------------------


def test_distance_beyond_commute_excludes() -> None:
    p = person(municipality="Wesertal", driving_licence=True, max_commute_km=20)
    result = evaluate(p, opening(municipality="Baunatal"))
    assert {r.rule for r in result.failed} == {"reachable"}
    assert "Führerschein vorhanden: mehr als 20 km" in result.failed[0].reason


def test_without_licence_buses_limit_reach_unless_both_places_have_rail() -> None:
    # Naumburg has no station; 22 km to Kassel is too far by bus ...
    bus = person(municipality="Naumburg", max_commute_km=40, driving_licence=False)
    assert reach_km(bus, opening(municipality="Kassel")) == 15
    assert "reachable" in failed_rules(bus, opening(municipality="Kassel"))
    # ... with a licence it is fine
    car = person(municipality="Naumburg", max_commute_km=40, driving_licence=True)
    assert failed_rules(car, opening(municipality="Kassel")) == set()
    # Hofgeismar-Kassel is on the railway
    rail = person(municipality="Hofgeismar", max_commute_km=40, driving_licence=False)
    assert reach_km(rail, opening(municipality="Kassel")) == 35
    assert failed_rules(rail, opening(municipality="Kassel")) == set()


# --- score and ranking ----------------------------------------------------------------------


def test_score_reasons_are_readable_german() -> None:
    points, reasons = score(person(), opening(), 8.0, TODAY)
    assert points > 0
    assert "Interesse an Logistik" in reasons
    assert "Berufserfahrung in der Berufsgruppe (KldB 513)" in reasons
    assert any(r.startswith("Beginn bald") for r in reasons)


def test_interest_and_experience_raise_the_score() -> None:
    base, _ = score(person(sectors_of_interest=[], experience_occupations=[]), opening(), 8, TODAY)
    interested, _ = score(person(experience_occupations=[]), opening(), 8, TODAY)
    experienced, _ = score(person(), opening(), 8, TODAY)
    assert base < interested < experienced


def test_skilled_job_without_vocational_training_scores_lower() -> None:
    job = opening(opening_type=OpeningType.BESCHAEFTIGUNG, occupation_code="51322")
    untrained, why = score(person(), job, 8, TODAY)
    trained, _ = score(person(education_level=EducationLevel.VOCATIONAL), job, 8, TODAY)
    assert trained - untrained == 15
    assert "Fachkraftstelle, Berufsabschluss fehlt" in why


def test_rank_keeps_eligible_best_first_and_skips_what_was_told() -> None:
    p = person()
    near = opening(municipality="Baunatal", title="nah")
    far = opening(municipality="Kassel", title="weiter")
    too_hard = opening(required_german_level=CefrLevel.C1, title="C1")
    ranked = rank(p, [far, too_hard, near], TODAY, limit=5)
    assert [s.opening.title for s in ranked] == ["nah", "weiter"]
    assert ranked[0].reasons[0] == "B1 erreicht, Stelle verlangt B1"
    again = rank(p, [far, near], TODAY, limit=5, exclude={str(near.opening_id)})
    assert [s.opening.title for s in again] == ["weiter"]
    assert len(rank(p, [far, near], TODAY, limit=1)) == 1
