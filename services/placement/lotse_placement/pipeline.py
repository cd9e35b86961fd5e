"""placement's pipeline: from an accepted suggestion to a kept job, and the district's
report on it. Every change is an event, written with it in one transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from lotse_shared.contracts import placement as ev
from lotse_shared.errors import Conflict, NotFound, RuleViolation
from lotse_shared.persistence.unit import Transaction, UnitOfWork

from .domain.model import OpeningStatus
from .domain.pipeline import STARTS, Case, CaseStep, ClosingReason, Stage
from .domain.reporting import PlacementReport, build_report
from .mapping import PRODUCER, case_facts
from .repository import CaseExists, PlacementStore

log = logging.getLogger("lotse.placement")


@dataclass
class PipelineHandlers:
    uow: UnitOfWork
    repo: PlacementStore
    today: Callable[[], date] = lambda: datetime.now(UTC).date()

    async def delete_expired_cases(self, retention: timedelta) -> int:
        """Retention: delete cases closed longer than ``retention`` ago."""
        deleted = await self.repo.delete_closed_cases(datetime.now(UTC) - retention)
        if deleted:
            log.info("retention: %d closed case(s) older than %s deleted", deleted, retention)
        return deleted

    async def accept_suggestion(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, note: str = ""
    ) -> Case:
        """Propose a suggested opening to the person: a case opens at ``proposed``.
        Accepting again returns the same case, also when both clicks of a double click
        race (the case's unique pair index lets one win; the other reads its case)."""
        try:
            return await self._accept(person_id, opening_id, note)
        except CaseExists:
            async with self.uow.transaction() as tx:
                existing = await self.repo.case_for(person_id, opening_id, tx)
            if existing is None:
                raise
            return existing

    async def _accept(self, person_id: uuid.UUID, opening_id: uuid.UUID, note: str) -> Case:
        async with self.uow.transaction() as tx:
            entry = await self._undecided(person_id, opening_id, tx)
            existing = await self.repo.case_for(person_id, opening_id, tx)
            if existing is not None:
                return existing
            if entry.get("decision") == "dismissed":
                raise Conflict(f"the suggestion of opening {opening_id} was dismissed")
            if entry.get("decision") == "withdrawn":
                raise Conflict(
                    f"{entry.get('reason', 'consent.matching')}: the person withdrew consent "
                    "to matching; the suggestion was withdrawn"
                )
            opening = await self.repo.get_opening(opening_id, tx)
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
            tx.publish(ev.CaseStageChanged.create(case_facts(case, None), producer=PRODUCER))
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
            person = await self.repo.candidate(person_id, tx)
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
        entry = await self.repo.suggestion_entry(person_id, opening_id, tx)
        if entry is None:
            raise NotFound(f"opening {opening_id} was never suggested to person {person_id}")
        return entry

    async def advance_case(self, case_id: uuid.UUID, stage: Stage, on: date, note: str) -> Case:
        """Recording the stage the (open) case is at already changes nothing and answers
        the case: a repeated request, not a step."""
        async with self.uow.transaction() as tx:
            case = await self._case(case_id, tx)
            if case.stage is stage and not case.closed:
                return case
            if stage is not Stage.PROPOSED:
                # from the interview on, the employer learns about the person
                person = await self.repo.candidate(case.person_id, tx)
                if person is None:
                    raise NotFound(f"person {case.person_id} is not known to placement")
                person.require_consent("share_with_employers")
            moved = case.advanced(stage, on, note, datetime.now(UTC))
            if stage in STARTS and not case.seat_taken:
                await self._seat(tx, case.opening_id, +1)
                moved.seat_taken = True
            await self._save(tx, moved)
            tx.publish(ev.CaseStageChanged.create(case_facts(moved, case.stage), producer=PRODUCER))
        return moved

    async def close_case(
        self, case_id: uuid.UUID, reason: ClosingReason, on: date, note: str
    ) -> Case:
        async with self.uow.transaction() as tx:
            case = await self._case(case_id, tx)
            if case.closed and case.closing_reason is reason:
                return case  # the same close sent twice (a double click): nothing more
            closed = case.closed_for(reason, on, note, datetime.now(UTC))
            if case.seat_taken and reason is not ClosingReason.COMPLETED:
                await self._seat(tx, case.opening_id, -1)  # the place is free again
                closed.seat_taken = False
            await self._save(tx, closed)
            tx.publish(ev.CaseClosed.create(case_facts(closed, case.stage), producer=PRODUCER))
        return closed

    async def _case(self, case_id: uuid.UUID, tx: Transaction) -> Case:
        case = await self.repo.case(case_id, tx)
        if case is None:
            raise NotFound(f"case {case_id} not found")
        return case

    async def _save(self, tx: Transaction, case: Case) -> None:
        if not await self.repo.save_case(tx, case):
            raise Conflict(f"case {case.case_id} was changed meanwhile; load it and try again")

    async def _seat(self, tx: Transaction, opening_id: uuid.UUID, change: int) -> None:
        """Take or give back a seat; a full opening leaves the search, a freed one returns."""
        opening = await self.repo.get_opening(opening_id, tx)
        if opening is None:
            return
        taken = min(max(opening.seats_taken + change, 0), opening.seats)
        updated = opening.model_copy(update={"seats_taken": taken, "updated_at": datetime.now(UTC)})
        await self.repo.save_opening(tx, updated, opening)

    async def report(self, district_id: str) -> PlacementReport:
        """Three queries: the district's cases, its people, who was ever suggested."""
        cases = await self.repo.cases_in(district_id)
        people = await self.repo.people_figures(district_id)
        suggested = await self.repo.people_suggested_in(district_id)
        return build_report(district_id, cases, people, self.today(), suggested)
