"""Placement's matching rules: each hard rule has a case that flips it."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

import pytest

from lotse_devstack.samples import TODAY
from lotse_placement.domain.area import cell_of, reach_class, reach_key, reach_keys_around, rings
from lotse_placement.domain.matching import (
    best_people_by_rules,
    eligible,
    evaluate,
    max_reach_km,
    permitted_types,
    rank,
    reach_km,
    score,
    score_ceiling,
)
from lotse_placement.domain.model import (
    Candidate,
    OngoingCourse,
    Opening,
    OpeningStatus,
    WorkSite,
)
from lotse_shared.contracts.common import (
    CefrLevel,
    CourseType,
    EducationLevel,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.places import all_places, distance_km, find_place


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
    return {r.rule for r in evaluate(p, o, TODAY).failed}


def test_a_fitting_pair_passes_every_hard_rule() -> None:
    assert failed_rules(person(), opening()) == set()


# --- German level -----------------------------------------------------------------


def test_german_level_below_requirement_excludes() -> None:
    result = evaluate(person(german_level=CefrLevel.A2), opening(), TODAY)
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
    reasons = [r.reason for r in evaluate(p, opening(), TODAY).failed]
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
    result = evaluate(p, opening(municipality="Baunatal"), TODAY)
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


def site(name: str) -> WorkSite:
    place = find_place(name)
    assert place is not None
    return WorkSite(municipality=place.name, lat=place.lat, lon=place.lon)


def test_of_several_places_the_one_nearest_the_person_counts() -> None:
    # a posting in Wesertal (far north) that also has work in Baunatal
    both = opening(municipality="Wesertal", other_locations=[site("Baunatal")])
    near = person(municipality="Baunatal", driving_licence=True, max_commute_km=10)
    result = evaluate(near, both, TODAY)
    assert result.eligible
    assert result.distance_km == 0.0
    assert "0 km nach Baunatal" in next(r.reason for r in result.results if r.rule == "reachable")
    assert eligible(near, both, TODAY)
    assert [s.opening for s in rank(near, [both], TODAY, limit=5)] == [both]
    # only the first place: too far, as before
    assert failed_rules(near, opening(municipality="Wesertal")) == {"reachable"}
    # someone up north is matched with the northern place
    north = person(municipality="Wesertal", driving_licence=True, max_commute_km=10)
    assert evaluate(north, both, TODAY).distance_km == 0.0


def test_of_several_places_one_within_reach_wins_over_a_nearer_one_out_of_reach() -> None:
    # Breuna (no station) is nearer Hofgeismar but beyond 15 km by bus; Kassel is
    # farther, and by rail up to 35 km count
    rail = person(municipality="Hofgeismar", max_commute_km=40, driving_licence=False)
    assert failed_rules(rail, opening(municipality="Breuna")) == {"reachable"}
    o = opening(municipality="Breuna", other_locations=[site("Kassel")])
    assert evaluate(rail, o, TODAY).eligible
    assert reach_km(rail, o) == 35
    assert evaluate(rail, o, TODAY).distance_km > 15


def test_an_opening_with_several_places_reaches_the_people_of_each() -> None:
    both = opening(municipality="Wesertal", other_locations=[site("Baunatal")])
    from lotse_placement.repository import _reach_keys

    assert "10|Baunatal" in _reach_keys(both)
    assert "10|Wesertal" in _reach_keys(both)
    assert "10|Baunatal" not in _reach_keys(opening(municipality="Wesertal"))


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
    again = rank(p, [far, near], TODAY, limit=5, told={str(near.opening_id): False})
    assert [s.opening.title for s in again] == ["weiter"]
    assert len(rank(p, [far, near], TODAY, limit=1)) == 1


# --- age and school duty --------------------------------------------------------


def _course(course_type: CourseType, target: CefrLevel, ends_in_days: int) -> OngoingCourse:
    return OngoingCourse(
        enrolment_id=uuid.uuid4(),
        course_type=course_type,
        target_level=target,
        ends_on=TODAY + timedelta(days=ends_in_days),
    )


def test_under_15_at_the_start_takes_nothing() -> None:
    young = person(birth_year=TODAY.year - 14)
    assert "age" in failed_rules(young, opening(opening_type=OpeningType.PRAKTIKUM))


def test_minor_is_offered_training_not_a_job() -> None:
    minor = person(birth_year=TODAY.year - 16)
    assert "age" in failed_rules(minor, opening(opening_type=OpeningType.BESCHAEFTIGUNG))
    assert "age" not in failed_rules(minor, opening(opening_type=OpeningType.AUSBILDUNG))
    adult = person(birth_year=TODAY.year - 19)
    assert "age" not in failed_rules(adult, opening(opening_type=OpeningType.BESCHAEFTIGUNG))


def test_intea_pupil_takes_internships_until_the_class_ends() -> None:
    pupil = person(
        birth_year=TODAY.year - 17,
        ongoing_courses=[_course(CourseType.INTEA, CefrLevel.B1, 200)],
    )
    apprenticeship = opening(opening_type=OpeningType.AUSBILDUNG)  # starts in 30 days
    reasons = [r.reason for r in evaluate(pupil, apprenticeship, TODAY).failed]
    assert any(r.startswith("InteA-Klasse bis") for r in reasons)
    assert "age" not in failed_rules(pupil, opening(opening_type=OpeningType.PRAKTIKUM))
    after = opening(opening_type=OpeningType.AUSBILDUNG, start_date=TODAY + timedelta(days=240))
    assert "age" not in failed_rules(pupil, after)


# --- German level forecast from an ongoing course ------------------------------------


def test_level_forecast_when_the_course_ends_before_the_start() -> None:
    learner = person(
        german_level=CefrLevel.A2,
        ongoing_courses=[_course(CourseType.BERUFSSPRACHKURS, CefrLevel.B1, 60)],
    )
    later = opening(start_date=TODAY + timedelta(days=120))  # needs B1
    verdict = {r.rule: r for r in evaluate(learner, later, TODAY).results}["german_level"]
    assert verdict.passed
    assert "B1 voraussichtlich bis" in verdict.reason
    assert "Stelle verlangt B1" in verdict.reason
    too_soon = opening(start_date=TODAY + timedelta(days=30))
    assert "german_level" in failed_rules(learner, too_soon)
    no_date = opening(start_date=None)
    assert "german_level" in failed_rules(learner, no_date)


def test_forecast_counts_only_a_course_aiming_high_enough() -> None:
    learner = person(
        german_level=CefrLevel.A1,
        ongoing_courses=[_course(CourseType.INTEGRATIONSKURS, CefrLevel.A2, 30)],
    )
    assert "german_level" in failed_rules(learner, opening(start_date=TODAY + timedelta(days=120)))


# --- where to look ------------------------------------------------------------


def test_rings_cover_every_cell_within_reach_exactly_once() -> None:
    here = find_place("Baunatal")
    assert here is not None
    seen: list[str] = []
    bounds = []
    for ring in rings(here.lat, here.lon, 40):
        seen.extend(ring.cells)
        bounds.append(ring.beyond_km)
    assert len(seen) == len(set(seen))
    assert bounds == sorted(bounds)
    assert bounds[-1] >= 40
    for there in all_places().values():  # every place within 40 km lies in a given cell
        if distance_km(here.lat, here.lon, there.lat, there.lon) <= 40:
            assert cell_of(there.lat, there.lon) in seen


def test_nothing_outside_a_ring_is_nearer_than_it_says() -> None:
    lat, lon = 51.31, 9.49
    given: set[str] = set()
    for ring in rings(lat, lon, 60):
        given.update(ring.cells)
        for there in all_places().values():
            if cell_of(there.lat, there.lon) not in given:
                assert distance_km(lat, lon, there.lat, there.lon) >= ring.beyond_km


def test_reach_keys_find_people_whose_reach_class_covers_the_place() -> None:
    kassel = find_place("Kassel")
    assert kassel is not None
    keys = set(reach_keys_around(kassel.lat, kassel.lon))
    far = find_place("Bad Karlshafen")
    assert far is not None
    km = distance_km(far.lat, far.lon, kassel.lat, kassel.lon)
    assert reach_key(km + 1, far.name) in keys
    assert reach_key(5, far.name) not in keys
    assert reach_class(16) == 20


def test_score_ceiling_bounds_every_score() -> None:
    p = person(german_level=CefrLevel.C1, available_from=TODAY)
    for km_place in ("Baunatal", "Kassel", "Vellmar"):
        o = opening(
            municipality=km_place, required_german_level=CefrLevel.A2, occupation_code="51312"
        )
        km = round(distance_km(p.lat, p.lon, o.lat, o.lon), 1)
        points, _ = score(p, o, km, TODAY)
        assert points <= score_ceiling(p, km, max_reach_km(p))


def test_the_fast_check_agrees_with_the_rules_on_random_pairs() -> None:
    from bench.placement import make_opening, make_person

    rng = random.Random(11)
    people = [make_person(rng) for _ in range(150)]
    for p in people[::3]:  # some with a course that forecasts a level, some in InteA
        p.ongoing_courses.append(
            _course(rng.choice(list(CourseType)), rng.choice(list(CefrLevel)), rng.randint(1, 300))
        )
    openings = [make_opening(rng, n, "x") for n in range(150)]
    for o in openings[::4]:
        o.seats_taken = o.seats  # full
    verdicts = [
        (eligible(p, o, TODAY), evaluate(p, o, TODAY).eligible) for p in people for o in openings
    ]
    assert all(fast == full for fast, full in verdicts)
    assert 0 < sum(fast for fast, _ in verdicts) < len(verdicts)  # both kinds occur


def test_a_new_opening_goes_to_the_people_it_suits_best() -> None:
    o = opening(municipality="Baunatal", required_german_level=CefrLevel.A2)
    keen = [person(sectors_of_interest=[Sector.LOGISTIK]) for _ in range(3)]
    others = [
        person(sectors_of_interest=[Sector.PFLEGE], experience_occupations=[]) for _ in range(5)
    ]
    unfit = [person(german_level=CefrLevel.A1) for _ in range(4)]
    chosen = best_people_by_rules(o, [*others, *unfit, *keen], TODAY, limit=4)
    assert len(chosen) == 4
    assert set(map(id, keen)) <= set(map(id, chosen))  # the keen ones first
    assert not set(map(id, unfit)) & set(map(id, chosen))  # never an ineligible one
    assert len(best_people_by_rules(o, unfit, TODAY, limit=4)) == 0
