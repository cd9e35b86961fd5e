"""placement's core use cases: keep people and openings, compute and announce
suggestions, answer "why not?". The pipeline (pipeline.py) and imports (imports.py) build
on it; translate.py maps contracts to the domain."""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from lotse_shared.auth import Principal
from lotse_shared.contracts import placement as ev
from lotse_shared.contracts.courses import CourseCompleted, CourseDropped, Enrolled
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import (
    PersonErased,
    PersonRegistered,
    PersonUpdated,
)
from lotse_shared.contracts.partner import (
    OpeningReported,
    OpeningReportedV1,
    OpeningWithdrawn,
)
from lotse_shared.erasure import apply_erasure
from lotse_shared.errors import NotFound, PersonNotYetKnown
from lotse_shared.persistence.retry import retry_transient
from lotse_shared.persistence.unit import Transaction, UnitOfWork, WaitingEvents

from .access import may_see_person
from .domain.area import rings
from .domain.caseload import (
    OpeningCandidate,
    OpenSuggestion,
    PersonOverview,
    best_first,
    overview,
)
from .domain.importing.feed import OLDER_THAN_HELD, older, unchanged
from .domain.matching import (
    Evaluation,
    Suggestion,
    best_of,
    evaluate,
    fits_of_people,
    max_reach_km,
    permitted_types,
    rank,
    score_ceiling,
)
from .domain.model import (
    Candidate,
    MatchPending,
    MatchTrigger,
    OngoingCourse,
    Opening,
    OpeningFilter,
    OpeningStatus,
    same_version,
)
from .domain.vectorised import OpeningTable, best_openings, best_people
from .mapping import PRODUCER, candidate_from, opening_facts, opening_from, suggestion_doc
from .repository import AlreadyTold, PlacementStore

log = logging.getLogger("lotse.placement")
MatchedKind = Literal["person", "opening"]
SCAN_BELOW = 500  # openings stored: below this, the search reads them all
NEAR_MISS_KM = 25.0  # "why not?" also shows openings this far beyond a person's reach


@dataclass
class PlacementHandlers:
    uow: UnitOfWork
    repo: PlacementStore
    parking: WaitingEvents
    suggestions_per_set: int = 5
    people_per_opening: int = 20
    # the search scores every opening in arrays (False: the ring search, rule by rule,
    # as before: the benchmark's old path and the fallback where no table can be kept)
    match_in_arrays: bool = True
    today: Callable[[], date] = lambda: datetime.now(UTC).date()
    # told of every committed match: how many suggestions it kept, how long it took
    observe_matching: Callable[[int, float], None] = lambda kept, seconds: None

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
            existing = await self.repo.candidate(person_id, tx)
            person = candidate_from(event.payload, existing)
            if await self.repo.save_candidate(tx, person):
                if existing and existing.matching_consent and not person.matching_consent:
                    # withdrawn: no more matching, and what was suggested cannot be taken up
                    await self.repo.withdraw_suggestions(tx, person_id, "consent.matching")
                elif existing and person.matching_consent and not existing.matching_consent:
                    await self.repo.forget_withdrawn(tx, person_id)  # may be suggested anew
                # a new person, level, permit or place can open doors; tell only what is new
                trigger: MatchTrigger = "person_changed" if existing else "person_registered"
                marker = MatchPending.because(trigger, event)
                await self.repo.mark_pending(tx, "person", person_id, marker)
        await self.match_person(person_id)
        await self.parking.replay_for([str(person_id)])

    async def person_erased(self, event: PersonErased) -> None:
        await apply_erasure(self.uow, event, self.repo.erase_person, PRODUCER)

    async def course_completed(self, event: CourseCompleted) -> None:
        facts = event.payload
        async with self.uow.transaction(applying=event) as tx:
            person = await self.repo.candidate(facts.person_id, tx)
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
                MatchPending.because("course_completed", event),
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
            person = await self.repo.candidate(facts.person_id, tx)
            if person is None:
                raise PersonNotYetKnown(str(facts.person_id))
            courses = [*_without(person.ongoing_courses, facts.enrolment_id), course]
            await self.repo.mark_pending(
                tx,
                "person",
                facts.person_id,
                MatchPending.because("person_changed", event),
                person_changes=person.model_copy(update={"ongoing_courses": courses}),
            )
        await self.match_person(facts.person_id)

    async def course_dropped(self, event: CourseDropped) -> None:
        """The course no longer forecasts a level (suggestions already told stay told)."""
        facts = event.payload
        async with self.uow.transaction(applying=event) as tx:
            person = await self.repo.candidate(facts.person_id, tx)
            if person is None:
                raise PersonNotYetKnown(str(facts.person_id))
            courses = _without(person.ongoing_courses, facts.enrolment_id)
            await self.repo.save_courses(tx, person.model_copy(update={"ongoing_courses": courses}))

    # --- openings -----------------------------------------------------------------
    async def report_opening(
        self, report: OpeningReportedV1, source: str, *, cause: Event | None = None
    ) -> Opening:
        async with self.uow.transaction(applying=cause) as tx:
            _, opening = await self.store_opening(tx, report, source, cause)
        await self.match_opening(opening.opening_id)
        return opening

    async def store_opening(
        self,
        tx: Transaction,
        report: OpeningReportedV1,
        source: str,
        cause: Event | None,
        *,
        skip_unchanged: bool = False,
    ) -> tuple[Literal["created", "updated", "unchanged", "older"], Opening]:
        """Create or update (same source and reference) the opening, announce it and
        mark it for matching; with ``skip_unchanged`` a record equal to what is stored
        is neither written nor announced. A report the partner changed before the
        version held ("older") does not replace it and is kept in its history."""
        previous = await self.repo.opening_by_ref(source, report.source_ref, tx)
        opening = opening_from(report, source, previous)
        if previous is not None and older(opening, previous):
            why = OLDER_THAN_HELD.format(held=previous.source_modified_at)
            await self.keep_earlier(tx, previous, opening, why)
            return "older", previous
        if skip_unchanged and previous is not None and unchanged(previous, opening):
            return "unchanged", previous
        await self.repo.save_opening(tx, opening, previous)
        tx.publish(
            ev.OpeningPublished.create(opening_facts(opening), producer=PRODUCER, cause=cause)
        )
        await self.repo.mark_pending(
            tx, "opening", opening.opening_id, MatchPending.because("opening_published", cause)
        )
        return ("created" if previous is None else "updated"), opening

    async def keep_earlier(
        self, tx: Transaction, current: Opening, version: Opening, why: str
    ) -> bool:
        """Keep ``version`` in the history of ``current`` without applying it, once: the
        same feed sent again does not add it twice. True if it was added."""
        for entry in await self.repo.opening_history(current.opening_id, tx):
            if entry.get("not_applied"):
                kept = Opening.model_validate({**entry, "opening_id": current.opening_id})
                if same_version(kept, version):
                    return False
        await self.repo.keep_in_history(tx, current.opening_id, version, why)
        return True

    async def opening_reported(self, event: OpeningReported) -> None:
        await self.report_opening(event.payload, event.producer, cause=event)

    async def close_opening(
        self, source: str, source_ref: str, reason: str, *, cause: Event | None = None
    ) -> Opening:
        async with self.uow.transaction(applying=cause) as tx:
            previous = await self.repo.opening_by_ref(source, source_ref, tx)
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
        person.require_consent("matching")
        today = self.today()
        # One read of the district's open openings, not one per ring of grid cells: at
        # reach + NEAR_MISS_KM the rings name ~13,000 cell keys and cover most of a
        # district anyway (the ring queries made "why not?" the slowest part of a file)
        within_km = max_reach_km(person) + NEAR_MISS_KM
        evaluations = [
            e
            for o in await self.repo.openings_searchable(district_id=person.district_id)
            if (e := evaluate(person, o, today)).distance_km <= within_km
        ]
        evaluations.sort(key=lambda e: (len(e.failed), e.distance_km, e.opening.title))
        return person, evaluations[:limit]

    # --- what a caseworker's pages read (bounded queries, whatever the caseload) ---------
    async def visible_people(
        self, person_ids: list[uuid.UUID], viewer: Principal
    ) -> list[Candidate]:
        """Those of ``person_ids`` the viewer may see, in the order asked; anyone else's
        (or unknown) are left out without a word."""
        wanted = list(dict.fromkeys(person_ids))
        known = {p.person_id: p for p in await self.repo.candidates_among(wanted)}
        return [known[pid] for pid in wanted if pid in known and may_see_person(viewer, known[pid])]

    async def overviews(
        self, person_ids: list[uuid.UUID], viewer: Principal
    ) -> list[PersonOverview]:
        """A caseload page's placement columns: four queries for up to 500 people."""
        people = await self.visible_people(person_ids, viewer)
        if not people:
            return []
        ids = [p.person_id for p in people]
        cases = defaultdict(list)
        for case in await self.repo.cases_among(ids):
            cases[case.person_id].append(case)
        scores = await self.repo.open_scores_of(ids)
        return [overview(p, cases[p.person_id], scores.get(p.person_id, {})) for p in people]

    async def open_suggestions(self, person_id: uuid.UUID) -> list[OpenSuggestion]:
        """Everything still open for the person, each opening once, best first (the
        caller has checked that the viewer may see the person)."""
        found = await self.repo.open_suggestions_of([person_id])
        return best_first(found.get(person_id, []))

    async def list_openings(
        self,
        viewer: Principal,
        which: OpeningFilter,
        *,
        limit: int,
        offset: int,
        source: str | None,
    ) -> list[Opening]:
        """The viewer's district's openings (a partner's: only its own, ``source``)."""
        return await self.repo.list_openings(
            which, limit, offset, district_id=viewer.district_id or "", source=source
        )

    async def candidates_for_opening(
        self, opening: Opening, viewer: Principal, *, limit: int
    ) -> list[OpeningCandidate]:
        """The people the viewer may see whom ``opening`` suits best: those the
        re-matching of a new opening would look at (who can reach it and consent to
        matching), rated as it rates them, eligible first, then near misses."""
        people = [p for p in await self.repo.candidates_for(opening) if may_see_person(viewer, p)]
        fits = fits_of_people(opening, people, self.today())[:limit]
        told = await self.repo.suggested_to(opening.opening_id, [f.person.person_id for f in fits])
        return [
            OpeningCandidate(
                person_id=f.person.person_id,
                score=f.score,
                reasons=f.reasons,
                eligible=f.eligible,
                failed_rules=[r.rule for r in f.evaluation.failed],
                distance_km=f.evaluation.distance_km,
                suggested=str(f.person.person_id) in told,
            )
            for f in fits
        ]

    # --- the heart: compute, record and announce --------------------------------------
    async def match_person(self, person_id: uuid.UUID) -> None:
        await self._finish_matching("person", person_id)

    async def match_opening(self, opening_id: uuid.UUID) -> None:
        await self._finish_matching("opening", opening_id)

    async def match_openings(self, opening_ids: list[uuid.UUID]) -> None:
        """The second step for a batch of openings (an import): the people who might
        reach any of them are found by one lookup; each opening then matches in its own
        transaction. A person changed meanwhile is matched by their own second step."""
        openings = [
            o for o in await self.repo.get_openings(opening_ids) if o.status.value == "open"
        ]
        found = await self.repo.candidates_for_each(openings)
        for opening in openings:
            await self._finish_matching("opening", opening.opening_id, found[opening.opening_id])
        await self._clear_closed(opening_ids, {o.opening_id for o in openings})

    async def _clear_closed(self, wanted: list[uuid.UUID], done: set[uuid.UUID]) -> None:
        """Clear the markers of openings that closed before their matching ran."""
        for opening_id in wanted:
            if opening_id not in done:
                await self._finish_matching("opening", opening_id)

    async def sweep_pending(self, older_than_s: float = 30.0) -> int:
        """Finish matching that a crash (or a lost race) left pending."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        done = 0
        kinds: tuple[MatchedKind, ...] = ("person", "opening")
        for kind in kinds:
            for doc_id in await self.repo.pending(kind, cutoff):
                await self._finish_matching(kind, doc_id)
                done += 1
        return done

    async def _finish_matching(
        self, kind: MatchedKind, doc_id: uuid.UUID, candidates: list[Candidate] | None = None
    ) -> None:
        """Match what a save left pending (the second of the two transactions). A pair a
        concurrent match told meanwhile is looked at again; any other failure is left
        to the sweep, which finds the marker still set."""
        for _ in range(5):
            try:
                started = time.perf_counter()
                kept = await retry_transient(
                    lambda: self._match_and_clear(kind, doc_id, candidates)
                )
                self.observe_matching(kept, time.perf_counter() - started)
                return
            except AlreadyTold:
                continue  # a concurrent step told the same pair; look again
            except Exception:
                log.exception("matching %s %s failed; the sweep will retry", kind, doc_id)
                return

    async def _match_and_clear(
        self, kind: MatchedKind, doc_id: uuid.UUID, candidates: list[Candidate] | None = None
    ) -> int:
        """One attempt, one transaction: suggest for the pending person (or to the people
        a pending opening suits best), then clear the marker it read. Returns how many
        suggestions were kept."""
        kept = 0
        async with self.uow.transaction() as tx:
            if kind == "person":
                marker, person = await self.repo.pending_person(doc_id, tx)
                if marker is None:
                    return 0
                if person is not None:
                    kept += len(await self._suggest(tx, person, marker))
            else:
                marker, opening = await self.repo.pending_opening(doc_id, tx)
                if marker is None:
                    return 0
                if opening is not None and opening.status is OpeningStatus.OPEN:
                    if candidates is None:
                        candidates = await self.repo.candidates_for(opening, tx)
                    chosen = best_people(
                        opening, candidates, self.today(), limit=self.people_per_opening
                    )
                    for person in chosen:
                        kept += len(await self._suggest(tx, person, marker, only=opening))
            await self.repo.clear_pending(tx, kind, doc_id, marker)
        return kept

    async def _suggest(
        self,
        tx: Transaction,
        person: Candidate,
        marker: MatchPending,
        *,
        only: Opening | None = None,
    ) -> list[Suggestion]:
        if not person.matching_consent:
            return []
        told = await self.repo.already_suggested(person.person_id, tx)
        if only is not None:
            best = rank(person, [only], self.today(), limit=1, told=told)
        else:
            best = await self.search(person, told, tx)
        if not best:
            return []
        set_id = uuid.uuid4()
        await self.repo.record_set(
            tx,
            {
                "_id": set_id,
                "person_id": person.person_id,
                "district_id": person.district_id,
                "trigger": marker.trigger,
                "cause_event_id": str(marker.event_id) if marker.event_id else None,
                "german_level": person.effective_german_level,
                "suggestions": [suggestion_doc(s) for s in best],
                "created_at": datetime.now(UTC),
            },
            confirmed={str(s.opening.opening_id) for s in best} & set(told),
        )
        payload = ev.SuggestionsReadyV1(
            suggestion_set_id=set_id,
            person_id=person.person_id,
            district_id=person.district_id,
            trigger=marker.trigger,
            german_level=person.effective_german_level,
            suggestions=[ev.SuggestionV1.model_validate(suggestion_doc(s)) for s in best],
        )
        tx.publish(ev.SuggestionsReady.create(payload, producer=PRODUCER, cause=marker.cause))
        return best

    async def search(
        self,
        person: Candidate,
        told: Mapping[str, bool],
        tx: Transaction | None = None,
    ) -> list[Suggestion]:
        """The best eligible openings (the exact top list ``rank`` would make of every
        open opening of the person's district). Every searchable opening is scored in
        arrays over the store's feature table; only the openings kept are read and rated
        rule by rule, which gives their reasons and confirms the choice. Without a table
        (or should the openings read disagree with it, a change racing the search) it
        walks rings of grid cells instead."""
        if not permitted_types(person):
            return []
        if self.match_in_arrays:
            table = await self.repo.opening_table()
            if table is not None:
                found = await self._search_table(person, told, table, tx)
                if found is not None:
                    return found
        return await self.search_by_rings(person, told, tx)

    async def _search_table(
        self,
        person: Candidate,
        told: Mapping[str, bool],
        table: OpeningTable,
        tx: Transaction | None,
    ) -> list[Suggestion] | None:
        limit, today = self.suggestions_per_set, self.today()
        picks = best_openings(person, table, today, limit=limit, told=told)
        if not picks:
            return []
        openings = await self.repo.openings_by_id([p.opening_id for p in picks], tx)
        best = rank(person, openings, today, limit=limit, told=told)
        if [(s.opening.opening_id, s.score, s.distance_km) for s in best] != [
            (p.opening_id, p.score, p.km) for p in picks
        ]:
            log.info("the opening table disagrees with the openings read; searching rings")
            return None
        return best

    async def search_by_rings(
        self,
        person: Candidate,
        told: Mapping[str, bool],
        tx: Transaction | None = None,
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
                for o in await self.repo.openings_searchable(tx)
                if o.district_id == person.district_id
            ]
            return rank(person, pool, today, limit=limit, told=told)
        held: list[Suggestion] = []
        seen: set[uuid.UUID] = set()  # an opening with several places lies in several cells
        for ring in rings(person.lat, person.lon, reach):
            pool = [
                o
                for o in await self.repo.openings_in(ring.cells, person.reachable_rank, tx)
                if o.district_id == person.district_id and o.opening_id not in seen
            ]
            seen.update(o.opening_id for o in pool)
            held = best_of([*held, *rank(person, pool, today, limit=limit, told=told)], limit)
            if len(held) == limit:
                last, ceiling = held[-1], score_ceiling(person, ring.beyond_km, reach)
                if last.score > ceiling or (
                    last.score == ceiling and last.distance_km <= ring.beyond_km
                ):
                    break
        return held


def _without(courses: list[OngoingCourse], enrolment_id: uuid.UUID) -> list[OngoingCourse]:
    return [c for c in courses if c.enrolment_id != enrolment_id]
