"""placement's use cases: keep people and openings, compute and announce suggestions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from lotse_shared.contracts import placement as ev
from lotse_shared.contracts.courses import CourseCompleted, CourseDropped, Enrolled
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import (
    PersonErased,
    PersonRegistered,
    PersonSnapshotV1,
    PersonUpdated,
)
from lotse_shared.contracts.partner import (
    OpeningFeedReported,
    OpeningReported,
    OpeningReportedV1,
    OpeningWithdrawn,
)
from lotse_shared.erasure import apply_erasure
from lotse_shared.errors import Conflict, NotFound, RuleViolation
from lotse_shared.messaging.errors import PersonNotYetKnown
from lotse_shared.messaging.parking import ParkingLot
from lotse_shared.persistence.mongo import Transaction, UnitOfWork
from lotse_shared.persistence.retry import retry_transient
from lotse_shared.places import find_place

from .domain.area import rings
from .domain.importing import FeedError, ParsedFeed, parse_csv, parse_jobsuche
from .domain.matching import (
    Evaluation,
    Suggestion,
    best_of,
    best_people,
    evaluate,
    max_reach_km,
    permitted_types,
    rank,
    score_ceiling,
)
from .domain.model import Candidate, OngoingCourse, Opening, OpeningStatus
from .domain.pipeline import STARTS, Case, CaseStep, ClosingReason, Stage
from .domain.reporting import PlacementReport, build_report
from .repository import PlacementRepository

PRODUCER = "placement"
log = logging.getLogger("lotse.placement")
SCAN_BELOW = 500  # openings stored: below this, the search reads them all
NEAR_MISS_KM = 25.0  # "why not?" also shows openings this far beyond a person's reach
Trigger = Literal["course_completed", "opening_published", "person_registered", "person_changed"]


def candidate_from(snapshot: PersonSnapshotV1, previous: Candidate | None = None) -> Candidate:
    """The matching facts of a snapshot; what placement learnt from courses is kept."""
    place = find_place(snapshot.municipality)
    if place is None:
        raise RuleViolation("payload.municipality", f"unknown place {snapshot.municipality!r}")
    return Candidate(
        person_id=snapshot.person_id,
        district_id=snapshot.district_id,
        revision=snapshot.revision,
        birth_year=snapshot.birth_year,
        municipality=place.name,
        lat=place.lat,
        lon=place.lon,
        german_level=snapshot.german_level,
        course_level=previous.course_level if previous else None,
        ongoing_courses=previous.ongoing_courses if previous else [],
        residence_status=snapshot.residence_status,
        work_permission=snapshot.work_permission,
        driving_licence=snapshot.driving_licence,
        max_commute_km=snapshot.max_commute_km,
        sectors_of_interest=snapshot.sectors_of_interest,
        experience_occupations=snapshot.experience_occupations,
        education_level=snapshot.education_level,
        available_from=snapshot.available_from,
        matching_consent=snapshot.consent.matching,
        share_consent=snapshot.consent.share_with_employers,
        contact_emails=sorted({str(c.email).lower() for c in snapshot.contacts}),
    )


def opening_from(report: OpeningReportedV1, source: str, previous: Opening | None) -> Opening:
    loc = report.location
    place = find_place(loc.municipality) if loc.municipality else None
    if loc.municipality and place is None and loc.lat is None:
        raise RuleViolation("location.municipality", f"unknown place {loc.municipality!r}")
    lat = loc.lat if loc.lat is not None else place.lat if place else None
    lon = loc.lon if loc.lon is not None else place.lon if place else None
    assert lat is not None, "OpeningLocation guarantees a place or coordinates"
    assert lon is not None
    now = datetime.now(UTC)
    return Opening(
        opening_id=previous.opening_id if previous else uuid.uuid4(),
        source=source,
        source_ref=report.source_ref,
        district_id=report.district_id,
        opening_type=report.opening_type,
        title=report.title,
        employer=report.employer,
        occupation_code=report.occupation_code,
        sector=report.sector,
        required_german_level=report.required_german_level,
        municipality=place.name if place else loc.municipality,
        postcode=loc.postcode,
        lat=lat,
        lon=lon,
        start_date=report.start_date,
        seats=report.seats,
        seats_taken=previous.seats_taken if previous else 0,
        description=report.description,
        german_level_rule=report.german_level_rule,
        source_url=report.source_url,
        published_at=previous.published_at if previous else now,
        updated_at=now,
    )


def _suggestion_doc(s: Suggestion) -> dict[str, Any]:
    o = s.opening
    return {
        "opening_id": o.opening_id,
        "opening_type": o.opening_type.value,
        "title": o.title,
        "employer": o.employer,
        "municipality": o.municipality,
        "distance_km": s.distance_km,
        "score": s.score,
        "reasons": s.reasons,
        "forecast": s.forecast,
    }


@dataclass
class PlacementHandlers:
    uow: UnitOfWork
    repo: PlacementRepository
    parking: ParkingLot
    suggestions_per_set: int = 5
    people_per_opening: int = 20
    today: Callable[[], date] = lambda: datetime.now(UTC).date()

    # Matching runs in two steps. The change (a person, a level, an opening) is
    # written first, with a "match pending" marker; the matching itself runs in a
    # second transaction that clears the marker. Doing both in one transaction
    # would miss pairs: a person and an opening saved concurrently would each be
    # matched against a snapshot without the other. In two steps, whichever
    # second step starts last sees both; a sweep finishes what a crash left.

    # --- people -------------------------------------------------------------------
    async def person_changed(self, event: PersonRegistered | PersonUpdated) -> None:
        person_id = event.payload.person_id
        async with self.uow.transaction(applying=event) as tx:
            existing = await self.repo.candidate(person_id, tx.session)
            person = candidate_from(event.payload, existing)
            if await self.repo.save_candidate(tx, person):
                if existing and existing.matching_consent and not person.matching_consent:
                    # withdrawn: no more matching, and what was suggested cannot be taken up
                    await self.repo.withdraw_suggestions(tx, person_id, "consent.matching")
                elif existing and person.matching_consent and not existing.matching_consent:
                    await self.repo.forget_withdrawn(tx, person_id)  # may be suggested anew
                # a new person, level, permit or place can open doors; tell only what is new
                trigger: Trigger = "person_changed" if existing else "person_registered"
                await self.repo.mark_pending(tx, "person", person_id, _marker(trigger, event))
        await self.match_person(person_id)
        await self.parking.replay_for([str(person_id)])

    async def person_erased(self, event: PersonErased) -> None:
        await apply_erasure(self.uow, event, self.repo.erase_person, PRODUCER)

    async def delete_expired_cases(self, retention: timedelta) -> int:
        """Retention: delete cases closed longer than ``retention`` ago."""
        deleted = await self.repo.delete_closed_cases(datetime.now(UTC) - retention)
        if deleted:
            log.info("retention: %d closed case(s) older than %s deleted", deleted, retention)
        return deleted

    async def course_completed(self, event: CourseCompleted) -> None:
        facts = event.payload
        async with self.uow.transaction(applying=event) as tx:
            person = await self.repo.candidate(facts.person_id, tx.session)
            if person is None:
                raise PersonNotYetKnown(str(facts.person_id))
            reached = facts.level_reached
            level = person.course_level
            changed = person.model_copy(
                update={
                    "course_level": reached if level is None or reached > level else level,
                    "ongoing_courses": _without(person.ongoing_courses, facts.enrolment_id),
                }
            )
            await self.repo.mark_pending(
                tx,
                "person",
                facts.person_id,
                _marker("course_completed", event),
                person_changes=changed,
            )
        await self.match_person(facts.person_id)

    async def enrolled(self, event: Enrolled) -> None:
        """An ongoing course can forecast a level by an opening's start: match again."""
        facts = event.payload
        course = OngoingCourse(
            enrolment_id=facts.enrolment_id,
            course_type=facts.course_type,
            target_level=facts.target_level,
            ends_on=facts.ends_on,
        )
        async with self.uow.transaction(applying=event) as tx:
            person = await self.repo.candidate(facts.person_id, tx.session)
            if person is None:
                raise PersonNotYetKnown(str(facts.person_id))
            courses = [*_without(person.ongoing_courses, facts.enrolment_id), course]
            await self.repo.mark_pending(
                tx,
                "person",
                facts.person_id,
                _marker("person_changed", event),
                person_changes=person.model_copy(update={"ongoing_courses": courses}),
            )
        await self.match_person(facts.person_id)

    async def course_dropped(self, event: CourseDropped) -> None:
        """The course no longer forecasts a level (suggestions already told stay told)."""
        facts = event.payload
        async with self.uow.transaction(applying=event) as tx:
            person = await self.repo.candidate(facts.person_id, tx.session)
            if person is None:
                raise PersonNotYetKnown(str(facts.person_id))
            courses = _without(person.ongoing_courses, facts.enrolment_id)
            await self.repo.save_courses(tx, person.model_copy(update={"ongoing_courses": courses}))

    # --- openings -----------------------------------------------------------------
    async def report_opening(
        self, report: OpeningReportedV1, source: str, *, cause: Event | None = None
    ) -> Opening:
        async with self.uow.transaction(applying=cause) as tx:
            _, opening = await self._store_opening(tx, report, source, cause)
        await self.match_opening(opening.opening_id)
        return opening

    async def _store_opening(
        self,
        tx: Transaction,
        report: OpeningReportedV1,
        source: str,
        cause: Event | None,
        *,
        skip_unchanged: bool = False,
    ) -> tuple[Literal["created", "updated", "unchanged"], Opening]:
        """Create or update (same source and reference) the opening, announce it and
        mark it for matching; with ``skip_unchanged`` a record equal to what is stored
        is neither written nor announced."""
        previous = await self.repo.opening_by_ref(source, report.source_ref, tx.session)
        opening = opening_from(report, source, previous)
        if skip_unchanged and previous is not None and _unchanged(previous, opening):
            return "unchanged", previous
        await self.repo.save_opening(tx, opening, previous)
        tx.publish(
            ev.OpeningPublished.create(_opening_facts(opening), producer=PRODUCER, cause=cause)
        )
        await self.repo.mark_pending(
            tx, "opening", opening.opening_id, _marker("opening_published", cause)
        )
        return ("created" if previous is None else "updated"), opening

    async def opening_reported(self, event: OpeningReported) -> None:
        await self.report_opening(event.payload, event.producer, cause=event)

    async def close_opening(
        self, source: str, source_ref: str, reason: str, *, cause: Event | None = None
    ) -> Opening:
        async with self.uow.transaction(applying=cause) as tx:
            previous = await self.repo.opening_by_ref(source, source_ref, tx.session)
            if previous is None:
                raise NotFound(f"no opening {source}/{source_ref}")
            if previous.status is OpeningStatus.CLOSED:
                return previous
            closed = previous.model_copy(
                update={
                    "status": OpeningStatus.CLOSED,
                    "closed_reason": reason,
                    "updated_at": datetime.now(UTC),
                }
            )
            await self.repo.save_opening(tx, closed, previous)
            tx.publish(
                ev.OpeningClosed.create(
                    ev.OpeningClosedV1(
                        opening_id=closed.opening_id,
                        district_id=closed.district_id,
                        source=source,
                        source_ref=source_ref,
                        reason=reason,
                    ),
                    producer=PRODUCER,
                    cause=cause,
                )
            )
        return closed

    async def opening_withdrawn(self, event: OpeningWithdrawn) -> None:
        await self.close_opening(
            event.producer, event.payload.source_ref, event.payload.reason, cause=event
        )

    # --- questions a caseworker asks ------------------------------------------------
    async def evaluate_person(
        self, person_id: uuid.UUID, *, limit: int = 50
    ) -> tuple[Candidate, list[Evaluation]]:
        """Open openings around the person (up to ``NEAR_MISS_KM`` beyond their reach)
        with each hard rule's verdict: the eligible first, then the near misses."""
        person = await self.repo.candidate(person_id)
        if person is None:
            raise NotFound(f"person {person_id} is not known to placement")
        _require_consent(person.matching_consent, "consent.matching", "matching")
        today = self.today()
        evaluations = [
            evaluate(person, o, today)
            for ring in rings(person.lat, person.lon, max_reach_km(person) + NEAR_MISS_KM)
            for o in await self.repo.openings_in(ring.cells)
            if o.district_id == person.district_id
        ]
        evaluations.sort(key=lambda e: (len(e.failed), e.distance_km, e.opening.title))
        return person, evaluations[:limit]

    # --- the pipeline: from a suggestion to a kept job ------------------------------------
    async def accept_suggestion(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, note: str = ""
    ) -> Case:
        """Propose a suggested opening to the person: a case opens at ``proposed``.
        Accepting again returns the same case."""
        async with self.uow.transaction() as tx:
            entry = await self._undecided(person_id, opening_id, tx)
            existing = await self.repo.case_for(person_id, opening_id, tx.session)
            if existing is not None:
                return existing
            if entry.get("decision") == "dismissed":
                raise Conflict(f"the suggestion of opening {opening_id} was dismissed")
            if entry.get("decision") == "withdrawn":
                raise Conflict(
                    f"{entry.get('reason', 'consent.matching')}: the person withdrew consent "
                    "to matching; the suggestion was withdrawn"
                )
            opening = await self.repo.get_opening(opening_id, tx.session)
            if opening is None or opening.status is OpeningStatus.CLOSED:
                raise RuleViolation("opening_id", f"opening {opening_id} is closed")
            today, now = self.today(), datetime.now(UTC)
            case = Case(
                person_id=person_id,
                district_id=opening.district_id,
                opening_id=opening_id,
                suggestion_set_id=entry.get("suggestion_set_id"),
                opening_type=opening.opening_type,
                sector=opening.sector,
                title=opening.title,
                employer=opening.employer,
                stage_on=today,
            )
            case.history.append(CaseStep(stage=Stage.PROPOSED, on=today, at=now, note=note))
            await self.repo.insert_case(tx, case)
            await self.repo.decide_suggestion(
                tx,
                person_id,
                opening_id,
                {"decision": "accepted", "case_id": case.case_id, "decided_at": now},
            )
            decision = ev.SuggestionDecisionV1(
                person_id=person_id,
                district_id=case.district_id,
                opening_id=opening_id,
                suggestion_set_id=case.suggestion_set_id,
                case_id=case.case_id,
            )
            tx.publish(ev.SuggestionAccepted.create(decision, producer=PRODUCER))
            tx.publish(ev.CaseStageChanged.create(_case_facts(case, None), producer=PRODUCER))
        return case

    async def dismiss_suggestion(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, reason: str
    ) -> None:
        async with self.uow.transaction() as tx:
            entry = await self._undecided(person_id, opening_id, tx)
            if entry.get("decision") in ("dismissed", "withdrawn"):
                return
            if entry.get("decision") == "accepted":
                raise Conflict("the suggestion was accepted; close its case instead")
            await self.repo.decide_suggestion(
                tx,
                person_id,
                opening_id,
                {"decision": "dismissed", "reason": reason, "decided_at": datetime.now(UTC)},
            )
            person = await self.repo.candidate(person_id, tx.session)
            if person is None:
                raise NotFound(f"person {person_id} is not known to placement")
            decision = ev.SuggestionDecisionV1(
                person_id=person_id,
                district_id=person.district_id,
                opening_id=opening_id,
                suggestion_set_id=entry.get("suggestion_set_id"),
                reason=reason,
            )
            tx.publish(ev.SuggestionDismissed.create(decision, producer=PRODUCER))

    async def _undecided(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, tx: Transaction
    ) -> dict[str, Any]:
        entry = await self.repo.suggestion_entry(person_id, opening_id, tx.session)
        if entry is None:
            raise NotFound(f"opening {opening_id} was never suggested to person {person_id}")
        return entry

    async def advance_case(self, case_id: uuid.UUID, stage: Stage, on: date, note: str) -> Case:
        async with self.uow.transaction() as tx:
            case = await self._case(case_id, tx)
            if stage is not Stage.PROPOSED:
                # from the interview on, the employer learns about the person
                person = await self.repo.candidate(case.person_id, tx.session)
                _require_consent(
                    person is not None and person.share_consent,
                    "consent.share_with_employers",
                    "sharing their data with employers",
                )
            moved = case.advanced(stage, on, note, datetime.now(UTC))
            if stage in STARTS and not case.seat_taken:
                await self._seat(tx, case.opening_id, +1)
                moved.seat_taken = True
            await self._save(tx, moved)
            tx.publish(
                ev.CaseStageChanged.create(_case_facts(moved, case.stage), producer=PRODUCER)
            )
        return moved

    async def close_case(
        self, case_id: uuid.UUID, reason: ClosingReason, on: date, note: str
    ) -> Case:
        async with self.uow.transaction() as tx:
            case = await self._case(case_id, tx)
            closed = case.closed_for(reason, on, note, datetime.now(UTC))
            if case.seat_taken and reason is not ClosingReason.COMPLETED:
                await self._seat(tx, case.opening_id, -1)  # the place is free again
                closed.seat_taken = False
            await self._save(tx, closed)
            tx.publish(ev.CaseClosed.create(_case_facts(closed, case.stage), producer=PRODUCER))
        return closed

    async def _case(self, case_id: uuid.UUID, tx: Transaction) -> Case:
        case = await self.repo.case(case_id, tx.session)
        if case is None:
            raise NotFound(f"case {case_id} not found")
        return case

    async def _save(self, tx: Transaction, case: Case) -> None:
        if not await self.repo.save_case(tx, case):
            raise Conflict(f"case {case.case_id} was changed meanwhile; load it and try again")

    async def _seat(self, tx: Transaction, opening_id: uuid.UUID, change: int) -> None:
        """Take or give back a seat; a full opening leaves the search, a freed one returns."""
        opening = await self.repo.get_opening(opening_id, tx.session)
        if opening is None:
            return
        taken = min(max(opening.seats_taken + change, 0), opening.seats)
        updated = opening.model_copy(update={"seats_taken": taken, "updated_at": datetime.now(UTC)})
        await self.repo.save_opening(tx, updated, opening)

    async def report(self, district_id: str) -> PlacementReport:
        cases = await self.repo.cases_in(district_id)
        people = await self.repo.municipalities_of(district_id)
        return build_report(district_id, cases, people, self.today())

    # --- the heart: compute, record and announce --------------------------------------
    async def match_person(self, person_id: uuid.UUID) -> None:
        await self._second_step("person", person_id)

    async def match_opening(self, opening_id: uuid.UUID) -> None:
        await self._second_step("opening", opening_id)

    async def match_openings(self, opening_ids: list[uuid.UUID]) -> None:
        """The second step for a batch of openings (an import): the people who might
        reach any of them are found by one lookup; each opening then matches in its own
        transaction. A person changed meanwhile is matched by their own second step."""
        openings = [
            o for o in await self.repo.get_openings(opening_ids) if o.status.value == "open"
        ]
        found = await self.repo.candidates_for_each(openings)
        for opening in openings:
            await self._second_step("opening", opening.opening_id, found[opening.opening_id])
        await self._clear_closed(opening_ids, {o.opening_id for o in openings})

    async def _clear_closed(self, wanted: list[uuid.UUID], done: set[uuid.UUID]) -> None:
        """Clear the markers of openings that closed before their matching ran."""
        for opening_id in wanted:
            if opening_id not in done:
                await self._second_step("opening", opening_id)

    async def sweep_pending(self, older_than_s: float = 30.0) -> int:
        """Finish matching that a crash (or a lost race) left pending."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        done = 0
        for kind in ("person", "opening"):
            for doc_id in await self.repo.pending(kind, cutoff):
                await self._second_step(kind, doc_id)
                done += 1
        return done

    async def _second_step(
        self, kind: str, doc_id: uuid.UUID, candidates: list[Candidate] | None = None
    ) -> None:
        for _ in range(5):
            try:
                await retry_transient(lambda: self._match_once(kind, doc_id, candidates))
                return
            except DuplicateKeyError:
                continue  # a concurrent step told the same pair; look again
            except Exception:
                log.exception("matching %s %s failed; the sweep will retry", kind, doc_id)
                return

    async def _match_once(
        self, kind: str, doc_id: uuid.UUID, candidates: list[Candidate] | None = None
    ) -> None:
        async with self.uow.transaction() as tx:
            if kind == "person":
                marker, person = await self.repo.pending_person(doc_id, tx.session)
                if marker is None:
                    return
                if person is not None:
                    await self._suggest(tx, person, marker["trigger"], marker)
            else:
                marker, opening = await self.repo.pending_opening(doc_id, tx.session)
                if marker is None:
                    return
                if opening is not None and opening.status is OpeningStatus.OPEN:
                    if candidates is None:
                        candidates = await self.repo.candidates_for(opening, tx.session)
                    chosen = best_people(
                        opening, candidates, self.today(), limit=self.people_per_opening
                    )
                    for person in chosen:
                        await self._suggest(tx, person, marker["trigger"], marker, only=opening)
            await self.repo.clear_pending(tx, kind, doc_id, marker)

    async def _suggest(
        self,
        tx: Transaction,
        person: Candidate,
        trigger: Trigger,
        marker: dict[str, Any],
        *,
        only: Opening | None = None,
    ) -> list[Suggestion]:
        if not person.matching_consent:
            return []
        told = await self.repo.already_suggested(person.person_id, tx.session)
        if only is not None:
            best = rank(person, [only], self.today(), limit=1, told=told)
        else:
            best = await self.search(person, told, tx.session)
        if not best:
            return []
        set_id = uuid.uuid4()
        await self.repo.record_set(
            tx,
            {
                "_id": set_id,
                "person_id": person.person_id,
                "district_id": person.district_id,
                "trigger": trigger,
                "cause_event_id": marker.get("event_id"),
                "german_level": person.effective_german_level,
                "suggestions": [_suggestion_doc(s) for s in best],
                "created_at": datetime.now(UTC),
            },
            confirmed={str(s.opening.opening_id) for s in best} & set(told),
        )
        payload = ev.SuggestionsReadyV1(
            suggestion_set_id=set_id,
            person_id=person.person_id,
            district_id=person.district_id,
            trigger=trigger,
            german_level=person.effective_german_level,
            suggestions=[ev.SuggestionV1.model_validate(_suggestion_doc(s)) for s in best],
        )
        flow: dict[str, Any] = {}
        if marker.get("event_id"):
            flow = {
                "causation_id": uuid.UUID(marker["event_id"]),
                "correlation_id": uuid.UUID(marker["correlation_id"]),
            }
        tx.publish(
            ev.SuggestionsReady(event_id=uuid.uuid4(), payload=payload, producer=PRODUCER, **flow)
        )
        return best

    async def search(
        self,
        person: Candidate,
        told: Mapping[str, bool],
        session: AsyncClientSession | None = None,
    ) -> list[Suggestion]:
        """The best eligible openings, walking rings of grid cells outwards; it stops
        once nothing farther away can score above the last suggestion it holds, so a
        dense map costs no more than a sparse one. The result is the exact top list."""
        if not permitted_types(person):
            return []
        reach, limit, today = max_reach_km(person), self.suggestions_per_set, self.today()
        if await self.repo.openings_stored() <= SCAN_BELOW:
            # few openings: reading them all is cheaper than many ring lookups (a person
            # who reaches far would otherwise walk thousands of empty cells)
            pool = [
                o
                for o in await self.repo.openings_searchable(session)
                if o.district_id == person.district_id
            ]
            return rank(person, pool, today, limit=limit, told=told)
        held: list[Suggestion] = []
        for ring in rings(person.lat, person.lon, reach):
            pool = [
                o
                for o in await self.repo.openings_in(ring.cells, person.reachable_rank, session)
                if o.district_id == person.district_id
            ]
            held = best_of([*held, *rank(person, pool, today, limit=limit, told=told)], limit)
            if len(held) == limit:
                last, ceiling = held[-1], score_ceiling(person, ring.beyond_km, reach)
                if last.score > ceiling or (
                    last.score == ceiling and last.distance_km <= ring.beyond_km
                ):
                    break
        return held

    # --- imports: openings in partners' own formats (Jobsuche, chamber CSV) -------------
    # Each record is applied in a transaction of its own, like a reported opening, so a
    # crash leaves whole records behind, never half of one; a repeat of the feed finds
    # them unchanged. The import's own record (counts, rejections, references seen) and
    # placement.import.completed are written together at the end.
    async def import_feed(
        self,
        feed: ParsedFeed,
        source: str,
        *,
        fmt: FeedFormat,
        full_feed: bool = False,
        cause: Event | None = None,
        district_id: str | None = None,
    ) -> ev.ImportCompletedV1:
        """Import a whole feed in one go; with ``full_feed``, close what it no longer names."""
        if full_feed and not feed.received:
            raise FeedError("full_feed", f"an empty feed would close every opening of {source}")
        import_id = cause.event_id if cause is not None else uuid.uuid4()
        summary = await self._apply_feed(feed, source, import_id, fmt, full_feed, cause)
        closed = await self._close_missing(source, set(feed.refs)) if full_feed else 0
        summary = summary.model_copy(update={"closed": closed, "completed": True})
        async with self.uow.transaction(applying=cause) as tx:
            batch = summary.model_copy(update={"closed": 0})
            await self.repo.add_import_batch(tx, _summary_doc(batch), feed.refs, district_id)
            await self.repo.complete_import(tx, import_id, full_feed, closed)
            tx.publish(ev.ImportCompleted.create(summary, producer=PRODUCER, cause=cause))
        return summary

    async def import_batch(
        self,
        feed: ParsedFeed,
        source: str,
        *,
        fmt: FeedFormat,
        import_id: uuid.UUID,
        district_id: str | None = None,
    ) -> ev.ImportCompletedV1:
        """One batch of an import sent in parts; ``complete_import`` ends it."""
        known = await self.repo.get_import(import_id)
        if known is not None and (known["source"] != source or known["completed"]):
            state = "completed" if known["completed"] else f"of source {known['source']}"
            raise Conflict(f"import {import_id} is {state}")
        summary = await self._apply_feed(feed, source, import_id, fmt, False, None)
        summary = summary.model_copy(update={"completed": False})
        async with self.uow.transaction() as tx:
            await self.repo.add_import_batch(tx, _summary_doc(summary), feed.refs, district_id)
        return summary

    async def complete_import(
        self, import_id: uuid.UUID, *, full_feed: bool = False
    ) -> ev.ImportCompletedV1:
        """End an import sent in batches: with ``full_feed``, close the source's open
        openings no batch named; publish the totals."""
        known = await self.repo.get_import(import_id)
        if known is None:
            raise NotFound(f"no import {import_id}")
        if known["completed"]:
            raise Conflict(f"import {import_id} is completed already")
        source = known["source"]
        closed = 0
        if full_feed:
            if not known["received"]:
                raise RuleViolation(
                    "full_feed", f"an empty feed would close every opening of {source}"
                )
            closed = await self._close_missing(source, set(known["seen_refs"]))
        async with self.uow.transaction() as tx:
            done = await self.repo.complete_import(tx, import_id, full_feed, closed)
            if done is None:
                raise Conflict(f"import {import_id} is completed already")
            summary = _summary_of(done)
            tx.publish(ev.ImportCompleted.create(summary, producer=PRODUCER))
        return summary

    async def import_status(self, import_id: uuid.UUID) -> ev.ImportCompletedV1:
        known = await self.repo.get_import(import_id)
        if known is None:
            raise NotFound(f"no import {import_id}")
        return _summary_of(known)

    async def opening_feed_reported(self, event: OpeningFeedReported) -> None:
        """A partner's feed over AMQP: the partner learns the outcome from
        placement.import.completed, a file refused as a whole included."""
        p = event.payload
        try:
            feed = parse_feed(
                p.format, p.document if p.format == "jobsuche" else p.csv, p.angebotsart
            )
            if p.full_feed and not feed.received:
                raise FeedError("full_feed", "an empty feed would close every opening")
        except FeedError as exc:
            refused = ev.ImportCompletedV1(
                import_id=event.event_id,
                source=event.producer,
                format=p.format,
                full_feed=p.full_feed,
                received=0,
                created=0,
                updated=0,
                unchanged=0,
                closed=0,
                file_error=ev.ImportFileErrorV1(field=exc.field, reason=exc.reason),
            )
            async with self.uow.transaction(applying=event) as tx:
                tx.publish(ev.ImportCompleted.create(refused, producer=PRODUCER, cause=event))
            return
        await self.import_feed(
            feed, event.producer, fmt=p.format, full_feed=p.full_feed, cause=event
        )

    async def _apply_feed(
        self,
        feed: ParsedFeed,
        source: str,
        import_id: uuid.UUID,
        fmt: FeedFormat,
        full_feed: bool,
        cause: Event | None,
    ) -> ev.ImportCompletedV1:
        outcomes = {"created": 0, "updated": 0, "unchanged": 0}
        rejected = [
            ev.ImportRejectionV1(ref=r.ref, row=r.row, reason=r.reason) for r in feed.rejected
        ]
        changed: list[uuid.UUID] = []
        for report in feed.openings:
            try:
                outcome, opening_id = await self._apply_imported(report, source, cause)
                outcomes[outcome] += 1
                if outcome != "unchanged":
                    changed.append(opening_id)
            except RuleViolation as exc:  # e.g. a place the location check refuses
                rejected.append(
                    ev.ImportRejectionV1(ref=report.source_ref, row=None, reason=str(exc))
                )
        await self.match_openings(changed)
        return ev.ImportCompletedV1(
            import_id=import_id,
            source=source,
            format=fmt,
            full_feed=full_feed,
            received=feed.received,
            closed=0,
            rejected=rejected,
            **outcomes,
        )

    async def _apply_imported(
        self, report: OpeningReportedV1, source: str, cause: Event | None
    ) -> tuple[Literal["created", "updated", "unchanged"], uuid.UUID]:
        """report_opening for one imported record, except that an unchanged record is
        neither written nor published nor matched again; the feed event (``cause``)
        links the events but is applied once, by the import's last transaction."""
        async with self.uow.transaction() as tx:
            outcome, opening = await self._store_opening(
                tx, report, source, cause, skip_unchanged=True
            )
        return outcome, opening.opening_id

    async def _close_missing(self, source: str, seen: set[str]) -> int:
        closed = 0
        for ref in sorted(await self.repo.open_refs(source) - seen):
            # not cause=cause: close_opening would apply the feed event, which only the
            # import's last transaction may do
            await self.close_opening(source, ref, CLOSED_NOT_IN_FEED)
            closed += 1
        return closed


def _require_consent(given: bool, field: str, purpose: str) -> None:
    if not given:
        raise Conflict(
            f"{field}: the person has not consented to {purpose} (record it in intake first)"
        )


def _without(courses: list[OngoingCourse], enrolment_id: uuid.UUID) -> list[OngoingCourse]:
    return [c for c in courses if c.enrolment_id != enrolment_id]


def _marker(trigger: Trigger, cause: Event | None) -> dict[str, Any]:
    """What the second step needs: why it matches, and which event caused it."""
    return {
        "trigger": trigger,
        "at": datetime.now(UTC),
        "event_id": str(cause.event_id) if cause else None,
        "correlation_id": str(cause.correlation_id) if cause else None,
    }


def _case_facts(case: Case, previous: Stage | None) -> ev.CaseFactsV1:
    return ev.CaseFactsV1(
        case_id=case.case_id,
        person_id=case.person_id,
        district_id=case.district_id,
        opening_id=case.opening_id,
        opening_type=case.opening_type,
        sector=case.sector,
        stage=case.stage.value,
        previous_stage=previous.value if previous else None,
        on=case.history[-1].on,
        closing_reason=case.closing_reason.value if case.closing_reason else None,
    )


def _opening_facts(o: Opening) -> ev.OpeningFactsV1:
    return ev.OpeningFactsV1(
        opening_id=o.opening_id,
        district_id=o.district_id,
        source=o.source,
        source_ref=o.source_ref,
        opening_type=o.opening_type,
        title=o.title,
        employer=o.employer,
        occupation_code=o.occupation_code,
        sector=o.sector,
        required_german_level=o.required_german_level,
        municipality=o.municipality,
        start_date=o.start_date,
        seats_free=o.seats_free,
    )


# --- imports ------------------------------------------------------------------------------
FeedFormat = Literal["jobsuche", "csv"]
CLOSED_NOT_IN_FEED = "nicht mehr im Bestand des Partners"


def parse_feed(fmt: FeedFormat, content: object, angebotsart: int | None = None) -> ParsedFeed:
    """A partner's document in its own format -> openings and rejections (FeedError if
    the document as a whole is unusable)."""
    if fmt == "jobsuche":
        return parse_jobsuche(content, angebotsart=angebotsart)
    if not isinstance(content, str | bytes):
        raise FeedError("csv", "expected the CSV file's text")
    return parse_csv(content)


def _unchanged(previous: Opening, current: Opening) -> bool:
    """Nothing to write: the partner sent what we hold. A closed opening counts as
    unchanged too (a caseworker's "besetzt" is not undone by the next daily feed),
    unless an earlier full feed closed it for missing: it is back on offer."""
    status = {"updated_at", "status", "closed_reason"}
    if previous.model_dump(exclude=status) != current.model_dump(exclude=status):
        return False
    return previous.status is OpeningStatus.OPEN or previous.closed_reason != CLOSED_NOT_IN_FEED


def _summary_doc(summary: ev.ImportCompletedV1) -> dict[str, Any]:
    doc = summary.model_dump(mode="json")
    doc["import_id"] = summary.import_id
    return doc


def _summary_of(doc: dict[str, Any]) -> ev.ImportCompletedV1:
    return ev.ImportCompletedV1.model_validate({**doc, "import_id": doc["_id"]})
