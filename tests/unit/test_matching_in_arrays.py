"""Matching in arrays chooses exactly what the rules choose, ties and rounding included:
random people and openings (hypothesis), each verdict, way and score compared pair by
pair, and the choices of a new opening's people and of a person's suggestions."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lotse_devstack.samples import TODAY
from lotse_placement.domain.area import reach_keys_around
from lotse_placement.domain.matching import (
    best_people_by_rules,
    commute_km,
    eligible,
    rank,
    score,
)
from lotse_placement.domain.model import (
    Candidate,
    OngoingCourse,
    Opening,
    OpeningStatus,
    WorkSite,
)
from lotse_placement.domain.vectorised import (
    Crowd,
    OpeningTable,
    PeopleTable,
    best_openings,
    best_people,
    grid,
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
from lotse_shared.places import all_places

PLACES = sorted(all_places().values(), key=lambda p: p.name)
# few codes, so that groups (3 digits) and areas (2) match often; fifth digit: skill
CODES = ["51312", "51311", "51322", "52122", "22342", "24412", "29301", "81302", "81324"]
LEVELS = [None, *CefrLevel]
TITLES = ["Lager", "Küche", "Pflege", "Bau"]  # few: equal titles happen
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _near(draw: Any, place: Any) -> tuple[float, float]:
    """At the place itself (equal ways: ties) or somewhere around it."""
    if draw(st.booleans()):
        return place.lat, place.lon
    return (
        place.lat + draw(st.floats(-0.3, 0.3, allow_nan=False)),
        place.lon + draw(st.floats(-0.4, 0.4, allow_nan=False)),
    )


@st.composite
def people(draw: Any) -> Candidate:
    place = draw(st.sampled_from(PLACES))
    lat, lon = _near(draw, place)
    courses = draw(
        st.lists(
            st.builds(
                OngoingCourse,
                enrolment_id=st.uuids(),
                course_type=st.sampled_from(list(CourseType)),
                target_level=st.sampled_from(list(CefrLevel)),
                ends_on=st.integers(-30, 400).map(lambda d: TODAY + timedelta(days=d)),
            ),
            max_size=3,
        )
    )
    return Candidate(
        person_id=draw(st.uuids()),
        district_id=draw(st.sampled_from(["kassel", "kassel", "werra"])),
        revision=1,
        birth_year=draw(st.integers(TODAY.year - 60, TODAY.year - 13)),
        municipality=place.name,
        lat=lat,
        lon=lon,
        german_level=draw(st.sampled_from(LEVELS)),
        course_level=draw(st.sampled_from(LEVELS)),
        residence_status=draw(st.sampled_from(list(ResidenceStatus))),
        work_permission=draw(st.sampled_from([WorkPermission.ALLOWED] * 3 + list(WorkPermission))),
        driving_licence=draw(st.booleans()),
        max_commute_km=draw(st.sampled_from([1, 5, 10, 15, 20, 25, 35, 40, 60, 80])),
        sectors_of_interest=draw(st.lists(st.sampled_from(list(Sector)), max_size=3)),
        experience_occupations=draw(st.lists(st.sampled_from(CODES), max_size=3)),
        education_level=draw(st.sampled_from(list(EducationLevel))),
        available_from=draw(
            st.none() | st.integers(-30, 200).map(lambda d: TODAY + timedelta(days=d))
        ),
        matching_consent=True,
        ongoing_courses=courses,
    )


@st.composite
def openings(draw: Any) -> Opening:
    place = draw(st.sampled_from(PLACES))
    lat, lon = _near(draw, place)
    sites = []
    for _ in range(draw(st.integers(0, 2) | st.just(0))):
        there = draw(st.sampled_from(PLACES))
        site_lat, site_lon = _near(draw, there)
        named = draw(st.booleans())
        sites.append(
            WorkSite(municipality=there.name if named else None, lat=site_lat, lon=site_lon)
        )
    seats = draw(st.integers(1, 3))
    return Opening(
        source="test",
        source_ref=uuid.uuid4().hex,
        district_id=draw(st.sampled_from(["kassel", "kassel", "werra"])),
        opening_type=draw(st.sampled_from(list(OpeningType))),
        title=draw(st.sampled_from(TITLES)),
        employer="Betrieb",
        occupation_code=draw(st.none() | st.sampled_from(CODES)),
        sector=draw(st.sampled_from(list(Sector))),
        required_german_level=draw(st.sampled_from(LEVELS)),
        municipality=draw(st.sampled_from([place.name, place.name, None])),
        lat=lat,
        lon=lon,
        start_date=draw(st.none() | st.integers(-60, 400).map(lambda d: TODAY + timedelta(days=d))),
        seats=seats,
        seats_taken=draw(st.integers(0, seats)),
        status=draw(st.sampled_from([OpeningStatus.OPEN] * 4 + [OpeningStatus.CLOSED])),
        other_locations=sites,
    )


def _searchable(o: Opening) -> bool:
    return o.status is OpeningStatus.OPEN and o.seats_free > 0


@SETTINGS
@given(st.lists(people(), min_size=1, max_size=12), st.lists(openings(), min_size=1, max_size=12))
def test_each_pair_gets_the_rules_verdict_way_and_score(
    persons: list[Candidate], offers: list[Opening]
) -> None:
    offers = [o for o in offers if _searchable(o)]  # the table holds only these
    found = grid(PeopleTable.of(persons), OpeningTable.of(offers), TODAY)
    for i, p in enumerate(persons):
        for j, o in enumerate(offers):
            verdict = eligible(p, o, TODAY)
            assert bool(found.eligible[i, j]) == verdict
            km = commute_km(p, o)
            assert found.km[i, j] == km
            if verdict:
                assert found.score[i, j] == score(p, o, km, TODAY)[0]


@SETTINGS
@given(
    openings(),
    st.lists(people(), max_size=40),
    st.integers(1, 8),
    st.lists(st.integers(0, 39), max_size=40),
)
def test_a_new_opening_chooses_the_people_the_rules_choose(
    opening: Opening, persons: list[Candidate], limit: int, subset: list[int]
) -> None:
    want = best_people_by_rules(opening, persons, TODAY, limit=limit)
    assert [p.person_id for p in best_people(opening, persons, TODAY, limit=limit)] == [
        p.person_id for p in want
    ]
    # the rows of one table, as an import batch's lookup hands them over
    rows = np.array(sorted({i for i in subset if i < len(persons)}), dtype=np.int64)
    crowd = Crowd(PeopleTable.of(persons), rows)
    assert [p.person_id for p in best_people(opening, crowd, TODAY, limit=limit)] == [
        p.person_id for p in best_people_by_rules(opening, list(crowd), TODAY, limit=limit)
    ]


@SETTINGS
@given(
    people(),
    st.lists(openings(), max_size=40),
    st.integers(1, 6),
    st.dictionaries(st.integers(0, 39), st.booleans(), max_size=10),
)
def test_a_person_gets_the_suggestions_the_rules_rank_first(
    person: Candidate, offers: list[Opening], limit: int, told_rows: dict[int, bool]
) -> None:
    told = {str(offers[i].opening_id): f for i, f in told_rows.items() if i < len(offers)}
    mine = [o for o in offers if o.district_id == person.district_id]
    want = rank(person, mine, TODAY, limit=limit, told=told)
    table = OpeningTable.of(o for o in offers if _searchable(o))
    got = best_openings(person, table, TODAY, limit=limit, told=told)
    assert [(p.opening_id, p.score, p.km) for p in got] == [
        (s.opening.opening_id, s.score, s.distance_km) for s in want
    ]


@SETTINGS
@given(st.floats(50.9, 51.8), st.floats(8.9, 10.1))
def test_reach_keys_in_arrays_are_the_keys_place_by_place(lat: float, lon: float) -> None:
    assert reach_keys_around(lat, lon) == reach_keys_around(lat, lon, all_places())


def test_a_dropped_row_is_not_suggested_and_its_row_is_used_again() -> None:
    from tests.unit.test_matching import opening, person

    p = person()
    first, second = opening(title="A"), opening(title="B")
    table = OpeningTable.of([first])
    assert [x.opening_id for x in best_openings(p, table, TODAY, limit=5)] == [first.opening_id]
    table.drop(0)
    assert best_openings(p, table, TODAY, limit=5) == []
    table.put(0, second)
    assert [x.opening_id for x in best_openings(p, table, TODAY, limit=5)] == [second.opening_id]
