"""placement's use cases (handlers, pipeline, imports) against the in-memory unit of work:
the rules each one keeps. The matching rules themselves are in tests/unit/test_matching.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lotse_devstack.samples import TODAY, enrolment_facts, erasure, opening_report, snapshot
from lotse_placement.domain.importing.feed import CLOSED_NOT_IN_FEED, FeedError, parse_feed
from lotse_placement.domain.model import OpeningFilter, OpeningStatus
from lotse_placement.domain.pipeline import ClosingReason, Stage
from lotse_placement.handlers import PlacementHandlers
from lotse_placement.imports import ImportHandlers
from lotse_placement.pipeline import PipelineHandlers
from lotse_placement.repository import AlreadyTold
from lotse_shared.auth import Role
from lotse_shared.contracts import intake as i
from lotse_shared.contracts import partner as p
from lotse_shared.contracts import placement as ev
from lotse_shared.contracts.common import CefrLevel, OpeningType, Sector
from lotse_shared.contracts.courses import (
    CourseCompleted,
    CourseCompletedV1,
    CourseDropped,
    CourseDroppedV1,
    Enrolled,
    EnrolledV1,
)
from lotse_shared.errors import (
    AboutErasedPerson,
    AlreadyApplied,
    Conflict,
    NotFound,
    PersonNotYetKnown,
    RuleViolation,
)
from tests.fakes.callers import who
from tests.fakes.parking import RecordedReplays
from tests.fakes.placement import InMemoryPlacement
from tests.fakes.unit_of_work import InMemoryUnitOfWork

DATA = Path(__file__).resolve().parents[2] / "data" / "imports"
SEARCH = json.loads((DATA / "jobsuche_search.json").read_text())
OTHER = "jonas.weber@landkreis-kassel.example"
ME = who(Role.CASEWORKER)
COORDINATOR = who(Role.COORDINATOR, "k@landkreis-kassel.example")


@pytest.fixture
def uow() -> InMemoryUnitOfWork:
    return InMemoryUnitOfWork()


@pytest.fixture
def store(uow: InMemoryUnitOfWork) -> InMemoryPlacement:
    return InMemoryPlacement(uow)


@pytest.fixture
def parking() -> RecordedReplays:
    return RecordedReplays()


@pytest.fixture
def placement(uow, store, parking) -> PlacementHandlers:
    return PlacementHandlers(uow=uow, repo=store, parking=parking, today=lambda: TODAY)


@pytest.fixture
def pipeline(uow, store) -> PipelineHandlers:
    return PipelineHandlers(uow=uow, repo=store, today=lambda: TODAY)


@pytest.fixture
def imports(uow, store, placement) -> ImportHandlers:
    return ImportHandlers(uow=uow, repo=store, openings=placement)


def registered(**changes: Any) -> i.PersonRegistered:
    return i.PersonRegistered.create(snapshot(**changes), producer="intake")


def updated(before: i.PersonRegistered | i.PersonUpdated, **changes: Any) -> i.PersonUpdated:
    revision = before.payload.revision + 1
    snap = before.payload.model_copy(update={"revision": revision, **changes})
    return i.PersonUpdated.create(snap, producer="intake")


def kitchen(ref: str = "KUECHE", **changes: Any) -> p.OpeningReported:
    """A2, in Baunatal: fits the sample person (A2, Baunatal, no car)."""
    report = opening_report(
        source_ref=ref,
        opening_type=OpeningType.PRAKTIKUM,
        title="Praktikum Küche",
        sector=Sector.GASTRONOMIE,
        occupation_code="29301",
        required_german_level=CefrLevel.A2,
        location=p.OpeningLocation(municipality="Baunatal"),
    )
    return p.OpeningReported.create(report.model_copy(update=changes), producer="ihk-kassel")


def lager(ref: str = "LAGER", **changes: Any) -> p.OpeningReported:
    """B1, in Kassel: out of the sample person's German until they reach B1."""
    report = opening_report(source_ref=ref).model_copy(update=changes)
    return p.OpeningReported.create(report, producer="ba-jobsuche")


def completed(person_id: uuid.UUID, level=CefrLevel.B1, **facts: Any) -> CourseCompleted:
    return CourseCompleted.create(
        CourseCompletedV1(
            **(enrolment_facts(person_id) | facts), level_reached=level, completed_on=TODAY
        ),
        producer="courses",
    )


def enrolled(person_id: uuid.UUID, days: int = 180) -> Enrolled:
    return Enrolled.create(
        EnrolledV1(
            **enrolment_facts(person_id),
            starts_on=TODAY,
            ends_on=TODAY + timedelta(days=days),
        ),
        producer="courses",
    )


def titles(ready: ev.SuggestionsReady) -> list[str]:
    return [s.title for s in ready.payload.suggestions]


async def opening_id(store: InMemoryPlacement, ref: str) -> uuid.UUID:
    found = [o for o in store.openings.values() if o.source_ref == ref]
    return found[0].opening_id


async def suggested_pair(placement, store) -> tuple[uuid.UUID, uuid.UUID, i.PersonRegistered]:
    person = registered()
    await placement.person_changed(person)
    await placement.opening_reported(kitchen())
    return person.payload.person_id, await opening_id(store, "KUECHE"), person


# --- people -----------------------------------------------------------------------------
async def test_a_registered_person_is_suggested_what_fits_and_their_waiting_events_replayed(
    placement, store, uow, parking
) -> None:
    await placement.opening_reported(kitchen())
    await placement.opening_reported(lager())
    assert uow.published(ev.SuggestionsReady) == []  # nobody to suggest them to yet
    await placement.person_changed(registered(consent=i.Consent()))  # no matching consent
    assert uow.published(ev.SuggestionsReady) == []
    person = registered()
    await placement.person_changed(person)
    (ready,) = uow.published(ev.SuggestionsReady)
    assert titles(ready) == ["Praktikum Küche"]  # A2: not the B1 apprenticeship
    assert ready.payload.trigger == "person_registered"
    assert ready.causation_id == person.event_id
    assert ready.correlation_id == person.correlation_id
    assert parking.asked_for[-1] == str(person.payload.person_id)
    assert store.markers == {}  # the second step cleared the marker
    assert len(uow.published(ev.OpeningPublished)) == 2


async def test_every_committed_match_is_observed_with_what_it_kept(uow, store, parking) -> None:
    seen: list[tuple[int, float]] = []
    placement = PlacementHandlers(
        uow=uow,
        repo=store,
        parking=parking,
        today=lambda: TODAY,
        observe_matching=lambda kept, seconds: seen.append((kept, seconds)),
    )
    await placement.opening_reported(kitchen())
    await placement.person_changed(registered())
    assert [kept for kept, _ in seen] == [0, 1]  # the opening: nobody yet; then Amal
    assert all(seconds >= 0 for _, seconds in seen)


async def test_a_new_opening_is_suggested_to_the_people_it_suits_only(
    placement, store, uow
) -> None:
    amal = registered()
    for event in (
        amal,
        registered(consent=i.Consent()),  # no matching consent
        registered(district_id="fulda"),
        registered(german_level=CefrLevel.A1),  # below the kitchen's A2
    ):
        await placement.person_changed(event)
    assert uow.published(ev.SuggestionsReady) == []
    await placement.opening_reported(kitchen())
    (ready,) = uow.published(ev.SuggestionsReady)
    assert ready.payload.person_id == amal.payload.person_id
    assert ready.payload.trigger == "opening_published"
    assert store.markers == {}


async def test_a_change_of_the_person_suggests_only_what_is_new(placement, uow) -> None:
    await placement.opening_reported(kitchen())
    await placement.opening_reported(lager())
    person = registered()
    await placement.person_changed(person)
    await placement.person_changed(updated(person, german_level=CefrLevel.B1))
    first, second = uow.published(ev.SuggestionsReady)
    assert titles(first) == ["Praktikum Küche"]
    assert titles(second) == ["Ausbildung Fachkraft für Lagerlogistik"]
    assert second.payload.trigger == "person_changed"


async def test_an_older_snapshot_arriving_late_changes_nothing(placement, store, uow) -> None:
    person = registered(german_level=CefrLevel.B1)
    newer = updated(person, german_level=CefrLevel.A1)
    await placement.person_changed(newer)
    await placement.person_changed(person)  # revision 1 after revision 2
    held = await store.candidate(person.payload.person_id)
    assert held is not None
    assert (held.revision, held.german_level) == (2, CefrLevel.A1)
    await placement.opening_reported(lager())
    assert uow.published(ev.SuggestionsReady) == []


async def test_a_repeated_event_is_applied_once(placement, uow) -> None:
    person = registered()
    await placement.person_changed(person)
    with pytest.raises(AlreadyApplied):
        await placement.person_changed(person)
    event = kitchen()
    await placement.opening_reported(event)
    with pytest.raises(AlreadyApplied):
        await placement.opening_reported(event)
    assert len(uow.published(ev.OpeningPublished)) == 1


async def test_withdrawn_consent_withdraws_open_suggestions_and_given_again_suggests_anew(
    placement, pipeline, store, uow
) -> None:
    person_id, kitchen_id, person = await suggested_pair(placement, store)
    withdrawn = updated(person, consent=i.Consent(email_notifications=True))
    await placement.person_changed(withdrawn)
    entry = await store.suggestion_entry(person_id, kitchen_id)
    assert entry is not None
    assert (entry["decision"], entry["reason"]) == ("withdrawn", "consent.matching")
    with pytest.raises(Conflict, match=r"consent\.matching"):
        await pipeline.accept_suggestion(person_id, kitchen_id)
    with pytest.raises(Conflict, match=r"consent\.matching"):
        await placement.evaluate_person(person_id)
    await placement.opening_reported(kitchen("KUECHE-2"))
    assert len(uow.published(ev.SuggestionsReady)) == 1  # nothing new without consent

    await placement.person_changed(updated(withdrawn, consent=i.Consent(matching=True)))
    again = uow.published(ev.SuggestionsReady)[-1]
    assert {s.opening_id for s in again.payload.suggestions} == {
        kitchen_id,
        await opening_id(store, "KUECHE-2"),
    }


async def test_a_course_completed_raises_the_level_and_matches_again(placement, store, uow) -> None:
    await placement.opening_reported(lager())
    person = registered()
    await placement.person_changed(person)
    person_id = person.payload.person_id
    course = enrolled(person_id, days=400)  # ends after the start: no forecast
    await placement.enrolled(course)
    assert uow.published(ev.SuggestionsReady) == []
    done = completed(person_id, enrolment_id=course.payload.enrolment_id)
    await placement.course_completed(done)
    (ready,) = uow.published(ev.SuggestionsReady)
    assert ready.payload.trigger == "course_completed"
    assert ready.payload.german_level is CefrLevel.B1
    assert ready.causation_id == done.event_id
    held = await store.candidate(person_id)
    assert held is not None
    assert (held.course_level, held.ongoing_courses) == (CefrLevel.B1, [])
    # a lower level completed later does not lower it
    await placement.course_completed(completed(person_id, CefrLevel.A1))
    held = await store.candidate(person_id)
    assert held is not None
    assert held.course_level is CefrLevel.B1


async def test_without_matching_consent_a_course_completed_suggests_nothing(
    placement, store, uow
) -> None:
    person = registered(consent=i.Consent())
    await placement.person_changed(person)
    await placement.opening_reported(lager())
    await placement.opening_reported(kitchen())
    await placement.course_completed(completed(person.payload.person_id))
    held = await store.candidate(person.payload.person_id)
    assert held is not None
    assert held.course_level is CefrLevel.B1  # learnt all the same
    assert uow.published(ev.SuggestionsReady) == []
    assert store.markers == {}


async def test_course_facts_about_an_unknown_person_wait_for_them(placement, uow) -> None:
    person_id = uuid.uuid4()
    course = enrolled(person_id)
    dropped = CourseDropped.create(
        CourseDroppedV1(**enrolment_facts(person_id), dropped_on=TODAY, reason="moved"),
        producer="courses",
    )
    for event, handle in (
        (completed(person_id), placement.course_completed),
        (course, placement.enrolled),
        (dropped, placement.course_dropped),
    ):
        with pytest.raises(PersonNotYetKnown):
            await handle(event)
        assert str(event.event_id) not in uow.inbox  # not applied: it can come again
    assert uow.commits == 0


async def test_an_ongoing_course_forecasts_a_level_and_its_completion_confirms_it(
    placement, uow
) -> None:
    person = registered()
    await placement.person_changed(person)
    await placement.opening_reported(lager(start_date=TODAY + timedelta(days=250)))
    assert uow.published(ev.SuggestionsReady) == []
    course = enrolled(person.payload.person_id)  # B1 by day 180
    await placement.enrolled(course)
    (forecast,) = uow.published(ev.SuggestionsReady)
    assert forecast.payload.suggestions[0].forecast is True
    assert (
        forecast.payload.suggestions[0].reasons[0].startswith("A2 erreicht, B1 voraussichtlich bis")
    )
    _, (why, *_) = await placement.evaluate_person(person.payload.person_id)
    assert why.eligible
    done = completed(person.payload.person_id, enrolment_id=course.payload.enrolment_id)
    await placement.course_completed(done)
    with pytest.raises(AlreadyApplied):
        await placement.course_completed(done)
    _, confirmed = uow.published(ev.SuggestionsReady)
    assert confirmed.payload.trigger == "course_completed"
    assert confirmed.payload.suggestions[0].reasons[0] == "B1 erreicht, Stelle verlangt B1"
    assert confirmed.payload.suggestions[0].opening_id == (
        forecast.payload.suggestions[0].opening_id
    )
    assert confirmed.payload.suggestions[0].forecast is False
    assert await placement.sweep_pending(older_than_s=0) == 0
    assert len(uow.published(ev.SuggestionsReady)) == 2  # not a third time


async def test_a_dropped_course_forecasts_nothing_more_and_matches_nothing(
    placement, store, uow
) -> None:
    person = registered()
    await placement.person_changed(person)
    course = enrolled(person.payload.person_id)
    await placement.enrolled(course)
    dropped = CourseDropped.create(
        CourseDroppedV1(
            **enrolment_facts(person.payload.person_id)
            | {"enrolment_id": course.payload.enrolment_id},
            dropped_on=TODAY,
            reason="moved",
        ),
        producer="courses",
    )
    await placement.course_dropped(dropped)
    held = await store.candidate(person.payload.person_id)
    assert held is not None
    assert held.ongoing_courses == []
    assert store.markers == {}
    await placement.opening_reported(lager(start_date=TODAY + timedelta(days=250)))
    assert uow.published(ev.SuggestionsReady) == []


async def test_an_erased_person_is_forgotten_and_stays_forgotten(
    placement, pipeline, store, uow
) -> None:
    person_id, kitchen_id, person = await suggested_pair(placement, store)
    await pipeline.accept_suggestion(person_id, kitchen_id)
    erased = erasure(person_id)
    await placement.person_erased(erased)
    assert (store.people, store.sets, store.suggested, store.cases) == ({}, [], {}, {})
    assert kitchen_id in store.openings  # openings are no one's data
    assert all(
        getattr(e.payload, "person_id", None) != person_id for e in uow.outbox
    )  # nothing about them left to publish
    with pytest.raises(AboutErasedPerson):
        await placement.person_changed(updated(person))
    assert store.people == {}


# --- openings -----------------------------------------------------------------------------
async def test_an_opening_reported_again_is_updated_not_told_again(placement, store, uow) -> None:
    await placement.person_changed(registered())
    await placement.opening_reported(kitchen())
    await placement.opening_reported(kitchen(seats=3))
    (opening,) = store.openings.values()
    assert opening.seats == 3
    assert len(await store.opening_history(opening.opening_id)) == 1
    first, second = uow.published(ev.OpeningPublished)
    assert first.payload.opening_id == second.payload.opening_id
    assert len(uow.published(ev.SuggestionsReady)) == 1


async def test_an_older_version_is_kept_in_the_history_once_not_applied(
    placement, store, uow
) -> None:
    now = datetime.now(UTC)
    await placement.opening_reported(kitchen(seats=2, source_modified_at=now))
    older = kitchen(seats=5, source_modified_at=now - timedelta(days=1))
    held = await placement.report_opening(older.payload, "ihk-kassel")
    held_again = await placement.report_opening(older.payload, "ihk-kassel")
    assert held.seats == held_again.seats == 2
    (kept,) = await store.opening_history(held.opening_id)
    assert kept["seats"] == 5
    assert "not_applied" in kept
    assert len(uow.published(ev.OpeningPublished)) == 1


async def test_closing_an_opening_tells_once_and_a_withdrawal_closes_the_partners(
    placement, store, uow
) -> None:
    with pytest.raises(NotFound):
        await placement.close_opening("ihk-kassel", "NOPE", "besetzt")
    await placement.opening_reported(kitchen())
    closed = await placement.close_opening("ihk-kassel", "KUECHE", "besetzt")
    again = await placement.close_opening("ihk-kassel", "KUECHE", "anders")
    assert (closed.status, again.closed_reason) == (OpeningStatus.CLOSED, "besetzt")
    (event,) = uow.published(ev.OpeningClosed)
    assert (event.payload.source_ref, event.payload.reason) == ("KUECHE", "besetzt")
    assert await store.openings_searchable() == []

    await placement.opening_reported(lager())
    withdrawn = p.OpeningWithdrawn.create(
        p.OpeningWithdrawnV1(source_ref="LAGER", reason="besetzt"), producer="ba-jobsuche"
    )
    await placement.opening_withdrawn(withdrawn)
    assert uow.published(ev.OpeningClosed)[-1].causation_id == withdrawn.event_id
    other = p.OpeningWithdrawn.create(
        p.OpeningWithdrawnV1(source_ref="LAGER", reason="x"), producer="ihk-kassel"
    )
    with pytest.raises(NotFound):  # a partner closes only its own
        await placement.opening_withdrawn(other)


async def test_an_opening_closed_before_its_matching_is_suggested_to_no_one(
    placement, store, uow
) -> None:
    await placement.person_changed(registered())
    held = placement.match_opening

    async def later(opening_id: uuid.UUID) -> None:
        pass

    placement.match_opening = later  # the second step has not run yet
    await placement.opening_reported(kitchen())
    placement.match_opening = held
    await placement.close_opening("ihk-kassel", "KUECHE", "besetzt")
    await placement.match_openings([await opening_id(store, "KUECHE")])
    assert uow.published(ev.SuggestionsReady) == []
    assert store.markers == {}  # cleared all the same


async def test_the_sweep_finishes_matching_a_crash_left_pending(placement, store, uow) -> None:
    await placement.opening_reported(kitchen())

    async def crashed(person_id: uuid.UUID) -> None:
        pass

    held, placement.match_person = placement.match_person, crashed
    person = registered()
    await placement.person_changed(person)
    placement.match_person = held
    assert uow.published(ev.SuggestionsReady) == []
    assert await placement.sweep_pending(older_than_s=60) == 0  # too recent
    assert await placement.sweep_pending(older_than_s=0) == 1
    (ready,) = uow.published(ev.SuggestionsReady)
    assert ready.causation_id == person.event_id
    assert await placement.sweep_pending(older_than_s=0) == 0


async def test_a_pair_told_meanwhile_by_a_concurrent_match_is_looked_at_again(
    placement, store, uow
) -> None:
    await placement.opening_reported(kitchen())
    await placement.opening_reported(kitchen("KUECHE-2"))
    record, attempts = store.record_set, []

    async def raced(tx, suggestion_set, confirmed) -> None:
        attempts.append(len(suggestion_set["suggestions"]))
        if len(attempts) == 1:  # another step told the first opening meanwhile
            await record(
                tx, {**suggestion_set, "suggestions": suggestion_set["suggestions"][:1]}, confirmed
            )
            raise AlreadyTold("raced")
        await record(tx, suggestion_set, confirmed)

    store.record_set = raced
    person = registered()
    await placement.person_changed(person)
    assert attempts == [2, 2]  # the failed attempt was undone: both still untold
    (ready,) = uow.published(ev.SuggestionsReady)
    assert len(ready.payload.suggestions) == 2
    assert store.markers == {}


async def test_matching_that_fails_otherwise_is_left_to_the_sweep(placement, store, uow) -> None:
    await placement.opening_reported(kitchen())

    async def broken(tx, suggestion_set, confirmed) -> None:
        raise RuntimeError("database gone")

    record, store.record_set = store.record_set, broken
    person = registered()
    await placement.person_changed(person)  # logged, not raised: the event is applied
    assert str(person.event_id) in uow.inbox
    assert list(store.markers) == [("person", person.payload.person_id)]
    store.record_set = record
    assert await placement.sweep_pending(older_than_s=0) == 1
    assert len(uow.published(ev.SuggestionsReady)) == 1


async def test_the_searches_in_arrays_by_rings_and_by_reading_all_agree(
    placement, monkeypatch
) -> None:
    for n, town in enumerate(["Baunatal", "Kassel", "Wolfhagen", "Hofgeismar", "Wesertal"]):
        for kind in (kitchen, lager):
            report = kind(f"{town}-{n}", location=p.OpeningLocation(municipality=town))
            await placement.opening_reported(report)
    person = await placement.repo.candidate(await _person(placement, driving_licence=True))
    assert person is not None
    in_arrays = await placement.search(person, {})
    placement.match_in_arrays = False  # rule by rule: every opening read, then by rings
    scanned = await placement.search(person, {})
    monkeypatch.setattr("lotse_placement.handlers.SCAN_BELOW", 0)
    assert [s.opening.opening_id for s in await placement.search(person, {})] == [
        s.opening.opening_id for s in scanned
    ]
    assert scanned
    assert [(s.opening.opening_id, s.score, s.reasons) for s in in_arrays] == [
        (s.opening.opening_id, s.score, s.reasons) for s in scanned
    ]


async def _person(placement, **changes: Any) -> uuid.UUID:
    event = registered(**changes)
    await placement.person_changed(event)
    return event.payload.person_id


# --- what a caseworker asks -----------------------------------------------------------------
async def test_why_not_shows_the_district_eligible_first_then_near_misses(placement) -> None:
    with pytest.raises(NotFound):
        await placement.evaluate_person(uuid.uuid4())
    await placement.opening_reported(lager())
    await placement.opening_reported(kitchen())
    await placement.opening_reported(kitchen("FULDA", district_id="fulda"))
    person_id = await _person(placement)
    person, evaluations = await placement.evaluate_person(person_id)
    assert person.person_id == person_id
    assert [(e.opening.source_ref, e.eligible) for e in evaluations] == [
        ("KUECHE", True),
        ("LAGER", False),
    ]
    assert [r.rule for r in evaluations[1].failed] == ["german_level"]


async def test_people_pages_show_only_the_callers_people_in_the_order_asked(
    placement, pipeline, store
) -> None:
    mine, kitchen_id, _ = await suggested_pair(placement, store)
    jonas = i.ResponsibleContact(role="caseworker", name="Jonas", email=OTHER)
    theirs = await _person(placement, contacts=[jonas])
    fulda = await _person(placement, district_id="fulda")
    case = await pipeline.accept_suggestion(mine, kitchen_id)
    await pipeline.advance_case(case.case_id, Stage.INTERVIEW, TODAY, "")
    asked = [theirs, fulda, uuid.uuid4(), mine, mine]
    assert [p.person_id for p in await placement.visible_people(asked, ME)] == [mine]
    assert [p.person_id for p in await placement.visible_people(asked, COORDINATOR)] == [
        theirs,
        mine,
    ]
    (row,) = await placement.overviews(asked, ME)
    assert (row.person_id, row.furthest_stage, row.open_cases) == (mine, Stage.INTERVIEW, 1)
    assert (row.open_suggestions, row.best_score) == (0, None)  # accepted: not open
    assert await placement.overviews([fulda], ME) == []


async def test_open_suggestions_are_each_open_opening_once_best_first(
    placement, pipeline, store
) -> None:
    person_id = await _person(placement)
    for ref in ("K1", "K2", "K3", "K4"):
        await placement.opening_reported(kitchen(ref))
    ids = {ref: await opening_id(store, ref) for ref in ("K1", "K2", "K3", "K4")}
    await placement.close_opening("ihk-kassel", "K1", "besetzt")
    await pipeline.dismiss_suggestion(person_id, ids["K2"], "zu weit")
    await pipeline.accept_suggestion(person_id, ids["K3"])
    found = await placement.open_suggestions(person_id)
    assert [s.opening_id for s in found] == [ids["K4"]]
    (row,) = await placement.overviews([person_id], ME)
    assert (row.open_suggestions, row.best_score) == (1, found[0].score)


async def test_openings_listed_are_the_viewers_districts_and_a_partners_own(
    placement,
) -> None:
    await placement.opening_reported(kitchen())
    await placement.opening_reported(lager())
    await placement.opening_reported(kitchen("FULDA", district_id="fulda"))

    async def refs(viewer, source=None, **which: Any) -> set[str]:
        found = await placement.list_openings(
            viewer, OpeningFilter(**which), limit=10, offset=0, source=source
        )
        return {o.source_ref for o in found}

    assert await refs(ME) == {"KUECHE", "LAGER"}
    assert await refs(ME, source="ihk-kassel") == {"KUECHE"}
    assert await refs(ME, german_level=CefrLevel.A2) == {"KUECHE"}
    assert await refs(who(Role.COORDINATOR, district="fulda")) == {"FULDA"}


async def test_candidates_of_an_opening_are_the_callers_people_best_first(placement, store) -> None:
    near = await _person(placement)
    weak = await _person(placement, german_level=CefrLevel.A1)
    jonas = i.ResponsibleContact(role="caseworker", name="Jonas", email=OTHER)
    theirs = await _person(placement, contacts=[jonas])
    await _person(placement, consent=i.Consent())  # not matched: not a candidate
    await placement.opening_reported(kitchen())
    opening = await store.get_opening(await opening_id(store, "KUECHE"))
    assert opening is not None
    found = await placement.candidates_for_opening(opening, ME, limit=10)
    assert [(c.person_id, c.eligible, c.suggested) for c in found] == [
        (near, True, True),
        (weak, False, False),
    ]
    assert found[1].failed_rules == ["german_level"]
    assert len(await placement.candidates_for_opening(opening, ME, limit=1)) == 1
    district = await placement.candidates_for_opening(opening, COORDINATOR, limit=10)
    assert {c.person_id for c in district} == {near, weak, theirs}


# --- the pipeline ------------------------------------------------------------------------------
async def test_accepting_a_suggestion_opens_one_case_and_tells_it(
    placement, pipeline, store, uow
) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    with pytest.raises(NotFound, match="never suggested"):
        await pipeline.accept_suggestion(person_id, uuid.uuid4())
    case = await pipeline.accept_suggestion(person_id, kitchen_id, "Frau H. möchte")
    assert (case.stage, case.history[0].note, case.title) == (
        Stage.PROPOSED,
        "Frau H. möchte",
        "Praktikum Küche",
    )
    again = await pipeline.accept_suggestion(person_id, kitchen_id)
    assert again.case_id == case.case_id
    (accepted,) = uow.published(ev.SuggestionAccepted)
    assert accepted.payload.case_id == case.case_id
    (stage,) = uow.published(ev.CaseStageChanged)
    assert stage.payload.stage == "proposed"
    entry = await store.suggestion_entry(person_id, kitchen_id)
    assert entry is not None
    assert (entry["decision"], entry["case_id"]) == ("accepted", case.case_id)
    with pytest.raises(Conflict, match="accepted"):
        await pipeline.dismiss_suggestion(person_id, kitchen_id, "doch nicht")


async def test_a_double_click_that_loses_the_race_answers_the_winners_case(
    placement, pipeline, store, uow
) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    winner = await pipeline.accept_suggestion(person_id, kitchen_id)  # the other click
    read, reads = store.case_for, []

    async def not_yet(person_id, opening_id, tx=None):
        reads.append(tx)
        return None if len(reads) == 1 else await read(person_id, opening_id, tx)

    store.case_for = not_yet  # the first read was before the other click committed
    case = await pipeline.accept_suggestion(person_id, kitchen_id)
    assert case.case_id == winner.case_id
    assert len(store.cases) == 1
    assert len(uow.published(ev.SuggestionAccepted)) == 1  # the winner's click told it


async def test_a_closed_opening_or_a_dismissed_suggestion_cannot_be_accepted(
    placement, pipeline, store, uow
) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    await placement.opening_reported(kitchen("KUECHE-2"))
    second = await opening_id(store, "KUECHE-2")
    await placement.close_opening("ihk-kassel", "KUECHE", "besetzt")
    with pytest.raises(RuleViolation, match="closed"):
        await pipeline.accept_suggestion(person_id, kitchen_id)
    await pipeline.dismiss_suggestion(person_id, second, "Arbeitszeiten")
    with pytest.raises(Conflict, match="dismissed"):
        await pipeline.accept_suggestion(person_id, second)
    assert store.cases == {}
    assert uow.published(ev.SuggestionAccepted) == []


async def test_a_dismissed_suggestion_is_told_once_and_never_suggested_again(
    placement, pipeline, store, uow
) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    with pytest.raises(NotFound):
        await pipeline.dismiss_suggestion(person_id, uuid.uuid4(), "x")
    await pipeline.dismiss_suggestion(person_id, kitchen_id, "Arbeitszeiten")
    await pipeline.dismiss_suggestion(person_id, kitchen_id, "Arbeitszeiten")
    (dismissed,) = uow.published(ev.SuggestionDismissed)
    assert (dismissed.payload.reason, dismissed.payload.district_id) == ("Arbeitszeiten", "kassel")
    await placement.opening_reported(kitchen(seats=4))
    await placement.sweep_pending(older_than_s=0)
    assert len(uow.published(ev.SuggestionsReady)) == 1


async def test_a_case_moves_only_by_allowed_steps_and_takes_and_frees_a_seat(
    placement, pipeline, store, uow
) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    with pytest.raises(NotFound):
        await pipeline.advance_case(uuid.uuid4(), Stage.INTERVIEW, TODAY, "")
    case = await pipeline.accept_suggestion(person_id, kitchen_id)
    with pytest.raises(RuleViolation, match="cannot go from proposed"):
        await pipeline.advance_case(case.case_id, Stage.EMPLOYED_3_MONTHS, TODAY, "")
    interview = await pipeline.advance_case(case.case_id, Stage.INTERVIEW, TODAY, "")
    same = await pipeline.advance_case(case.case_id, Stage.INTERVIEW, TODAY, "")
    assert same == interview  # a repeated request, not a step
    start = TODAY + timedelta(days=7)
    started = await pipeline.advance_case(case.case_id, Stage.INTERNSHIP_STARTED, start, "")
    assert started.seat_taken
    opening = await store.get_opening(kitchen_id)
    assert opening is not None
    assert opening.seats_taken == 1
    assert await store.openings_searchable() == []  # full: out of the search
    stages = [e.payload.stage for e in uow.published(ev.CaseStageChanged)]
    assert stages == ["proposed", "interview", "internship_started"]

    closed = await pipeline.close_case(case.case_id, ClosingReason.MOVED_AWAY, start, "Hamburg")
    again = await pipeline.close_case(case.case_id, ClosingReason.MOVED_AWAY, start, "Hamburg")
    assert closed == again
    with pytest.raises(Conflict, match="already closed"):
        await pipeline.close_case(case.case_id, ClosingReason.OTHER, start, "")
    with pytest.raises(Conflict, match="closed"):
        await pipeline.advance_case(case.case_id, Stage.JOB_STARTED, start, "")
    (told,) = uow.published(ev.CaseClosed)
    assert (told.payload.closing_reason, told.payload.previous_stage) == (
        "moved_away",
        "internship_started",
    )
    opening = await store.get_opening(kitchen_id)
    assert opening is not None
    assert opening.seats_taken == 0  # the place is free again
    assert len(await store.openings_searchable()) == 1


async def test_a_completed_case_keeps_its_seat(placement, pipeline, store) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    case = await pipeline.accept_suggestion(person_id, kitchen_id)
    await pipeline.advance_case(case.case_id, Stage.INTERNSHIP_STARTED, TODAY, "")
    await pipeline.close_case(case.case_id, ClosingReason.COMPLETED, TODAY, "")
    opening = await store.get_opening(kitchen_id)
    assert opening is not None
    assert opening.seats_taken == 1


async def test_from_the_interview_on_the_person_must_consent_to_sharing(
    placement, pipeline, store, uow
) -> None:
    person = registered(consent=i.Consent(matching=True))
    await placement.person_changed(person)
    await placement.opening_reported(kitchen())
    person_id, kitchen_id = person.payload.person_id, await opening_id(store, "KUECHE")
    case = await pipeline.accept_suggestion(person_id, kitchen_id)
    with pytest.raises(Conflict, match=r"consent\.share_with_employers"):
        await pipeline.advance_case(case.case_id, Stage.INTERVIEW, TODAY, "")
    held = await store.case(case.case_id)
    assert held is not None
    assert (held.stage, held.version) == (Stage.PROPOSED, 1)
    assert len(uow.published(ev.CaseStageChanged)) == 1


async def test_a_case_changed_meanwhile_is_not_overwritten(placement, pipeline, store) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    case = await pipeline.accept_suggestion(person_id, kitchen_id)
    read = store.case

    async def stale(case_id, tx=None):
        found = await read(case_id, tx)
        store.cases[case_id] = found.model_copy(update={"version": found.version + 1})
        return found

    store.case = stale
    with pytest.raises(Conflict, match="changed meanwhile"):
        await pipeline.advance_case(case.case_id, Stage.INTERVIEW, TODAY, "")


async def test_retention_deletes_only_cases_closed_long_enough_ago(
    placement, pipeline, store
) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    await placement.opening_reported(kitchen("KUECHE-2"))
    closed = await pipeline.accept_suggestion(person_id, kitchen_id)
    kept = await pipeline.accept_suggestion(person_id, await opening_id(store, "KUECHE-2"))
    await pipeline.close_case(closed.case_id, ClosingReason.OTHER, TODAY, "")
    assert await pipeline.delete_expired_cases(timedelta(days=1)) == 0
    assert await pipeline.delete_expired_cases(timedelta(0)) == 1
    assert list(store.cases) == [kept.case_id]


async def test_the_report_counts_the_districts_people_and_cases(placement, pipeline, store) -> None:
    person_id, kitchen_id, _ = await suggested_pair(placement, store)
    await _person(placement, municipality="Kassel")
    await _person(placement, district_id="fulda")
    case = await pipeline.accept_suggestion(person_id, kitchen_id)
    await pipeline.advance_case(case.case_id, Stage.JOB_STARTED, TODAY, "")
    report = await pipeline.report("kassel")
    assert (report.people_registered, report.people_in_work_or_training) == (2, 1)
    assert report.open_cases_by_stage["job_started"] == 1
    funnel = {f.step: f.count for f in report.funnel}
    assert (funnel["suggested"], funnel["in_case"]) == (2, 1)  # Kassel's too
    assert (await pipeline.report("fulda")).people_registered == 1


# --- imports -----------------------------------------------------------------------------------
def feed(*records: dict[str, Any]):
    return parse_feed("jobsuche", {"stellenangebote": list(records)})


RECORDS = SEARCH["stellenangebote"]
LAGER_REF, _, EQ_REF = (r["refnr"] for r in RECORDS)


def counts(summary: ev.ImportCompletedV1) -> tuple[int, ...]:
    return (summary.received, summary.created, summary.updated, summary.unchanged, summary.closed)


async def test_an_import_creates_updates_leaves_the_unchanged_alone_and_closes_the_missing(
    imports, store, uow
) -> None:
    first = await imports.import_feed(feed(*RECORDS), "ba-jobsuche", fmt="jobsuche")
    assert counts(first) == (3, 3, 0, 0, 0)
    assert uow.published(ev.ImportCompleted)[-1].payload == first
    again = await imports.import_feed(feed(*RECORDS), "ba-jobsuche", fmt="jobsuche")
    assert counts(again) == (3, 0, 0, 3, 0)
    assert len(uow.published(ev.OpeningPublished)) == 3  # nothing published again
    changed = [dict(r) for r in RECORDS]
    changed[0]["eintrittsdatum"] = "2027-09-01"
    third = await imports.import_feed(feed(*changed), "ba-jobsuche", fmt="jobsuche")
    assert counts(third) == (3, 0, 1, 2, 0)
    full = await imports.import_feed(
        feed(*changed[:2]), "ba-jobsuche", fmt="jobsuche", full_feed=True
    )
    assert counts(full) == (2, 0, 0, 2, 1)
    (closed,) = uow.published(ev.OpeningClosed)
    assert (closed.payload.source_ref, closed.payload.reason) == (EQ_REF, CLOSED_NOT_IN_FEED)
    assert await store.open_refs("ba-jobsuche") == {r["refnr"] for r in changed[:2]}
    assert (await imports.import_status(full.import_id)).closed == 1


async def test_an_empty_full_feed_would_close_everything_and_is_refused(
    imports, store, uow
) -> None:
    await imports.import_feed(feed(*RECORDS), "ba-jobsuche", fmt="jobsuche")
    before = len(uow.committed)
    with pytest.raises(FeedError, match="empty feed"):
        await imports.import_feed(feed(), "ba-jobsuche", fmt="jobsuche", full_feed=True)
    assert len(uow.committed) == before
    assert len(await store.open_refs("ba-jobsuche")) == 3


async def test_records_refused_or_older_are_reported_and_the_rest_imported(
    imports, placement, store
) -> None:
    unknown = {**RECORDS[0], "refnr": "X-1", "arbeitsort": {"ort": "Atlantis"}}
    summary = await imports.import_feed(
        feed(unknown, RECORDS[1], {"titel": "ohne refnr"}), "ba-jobsuche", fmt="jobsuche"
    )
    assert (summary.received, summary.created) == (3, 1)
    assert {r.ref for r in summary.rejected} == {"X-1", None}

    report = kitchen(source_modified_at=datetime(2026, 11, 20, tzinfo=UTC)).payload
    await placement.report_opening(report, "ihk-kassel")
    old = report.model_copy(update={"source_modified_at": datetime(2026, 11, 18, tzinfo=UTC)})
    parsed = feed()
    parsed.openings.append(old)
    older = await imports.import_feed(parsed, "ihk-kassel", fmt="jobsuche")
    assert (older.unchanged, older.updated) == (1, 0)
    assert "not applied, kept in the opening's history" in older.notices[-1].reason


async def test_an_import_in_batches_closes_only_what_no_batch_named(imports, store, uow) -> None:
    await imports.import_feed(feed(*RECORDS), "ba-jobsuche", fmt="jobsuche")
    import_id = uuid.uuid4()
    with pytest.raises(NotFound):
        await imports.complete_import(import_id)
    one = await imports.import_batch(
        feed(RECORDS[0]), "ba-jobsuche", fmt="jobsuche", import_id=import_id, district_id="kassel"
    )
    assert one.completed is False
    with pytest.raises(Conflict, match="of source ba-jobsuche"):
        await imports.import_batch(feed(), "ihk-kassel", fmt="jobsuche", import_id=import_id)
    await imports.import_batch(feed(RECORDS[1]), "ba-jobsuche", fmt="jobsuche", import_id=import_id)
    assert uow.published(ev.ImportCompleted) == [uow.published(ev.ImportCompleted)[0]]
    totals = await imports.complete_import(import_id, full_feed=True)
    assert counts(totals) == (2, 0, 0, 2, 1)
    assert (await imports.import_status(import_id)).completed
    assert uow.published(ev.ImportCompleted)[-1].payload == totals
    with pytest.raises(Conflict, match="completed"):
        await imports.complete_import(import_id)
    with pytest.raises(Conflict, match="completed"):
        await imports.import_batch(feed(), "ba-jobsuche", fmt="jobsuche", import_id=import_id)
    assert store.imports[import_id]["district_id"] == "kassel"

    empty = uuid.uuid4()
    await imports.import_batch(feed(), "ba-jobsuche", fmt="jobsuche", import_id=empty)
    with pytest.raises(RuleViolation, match="empty feed"):
        await imports.complete_import(empty, full_feed=True)
    with pytest.raises(NotFound):
        await imports.import_status(uuid.uuid4())


async def test_a_feed_over_amqp_is_applied_once_and_a_broken_one_answered(
    imports, store, uow
) -> None:
    event = p.OpeningFeedReported.create(
        p.OpeningFeedReportedV1(format="jobsuche", document=RECORDS), producer="ba-jobsuche"
    )
    await imports.opening_feed_reported(event)
    (done,) = uow.published(ev.ImportCompleted)
    assert (done.payload.import_id, done.causation_id) == (event.event_id, event.event_id)
    assert {e.causation_id for e in uow.published(ev.OpeningPublished)} == {event.event_id}
    with pytest.raises(AlreadyApplied):
        await imports.opening_feed_reported(event)

    broken = p.OpeningFeedReported.create(
        p.OpeningFeedReportedV1(format="csv", csv="Betreib;Titel\nx;y\n", full_feed=True),
        producer="hwk-kassel",
    )
    await imports.opening_feed_reported(broken)
    refused = uow.published(ev.ImportCompleted)[-1].payload
    assert refused.file_error is not None
    assert refused.file_error.field == "header.Betreib"
    assert await store.open_refs("hwk-kassel") == set()
    with pytest.raises(AlreadyApplied):
        await imports.opening_feed_reported(broken)
