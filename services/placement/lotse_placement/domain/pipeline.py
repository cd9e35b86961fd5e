"""The road from a suggestion to a kept job: stages, the steps allowed between them,
and why a case ends. Pure: no I/O.

    proposed -> interview -> internship_started -> apprenticeship_started | job_started
             -> employed_3_months -> employed_6_months

An interview or an internship may be skipped. A case can be closed at any stage with
a reason; a closed case does not move again.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from lotse_shared.contracts.common import DistrictId, OpeningType, Sector
from lotse_shared.errors import Conflict, RuleViolation


class Stage(StrEnum):
    PROPOSED = "proposed"  # the caseworker accepted the suggestion and offered it
    INTERVIEW = "interview"
    INTERNSHIP_STARTED = "internship_started"  # Praktikum or EQ
    APPRENTICESHIP_STARTED = "apprenticeship_started"
    JOB_STARTED = "job_started"
    EMPLOYED_3_MONTHS = "employed_3_months"  # still there three months after the start
    EMPLOYED_6_MONTHS = "employed_6_months"


class ClosingReason(StrEnum):
    DECLINED_BY_PERSON = "declined_by_person"
    DECLINED_BY_EMPLOYER = "declined_by_employer"
    NOT_SUITABLE = "not_suitable"
    DROPPED_OUT = "dropped_out"
    MOVED_AWAY = "moved_away"
    OPENING_CLOSED = "opening_closed"
    OTHER_WORK_FOUND = "other_work_found"
    COMPLETED = "completed"  # followed up to the end: nothing more to track
    OTHER = "other"


STARTS = frozenset({Stage.INTERNSHIP_STARTED, Stage.APPRENTICESHIP_STARTED, Stage.JOB_STARTED})
# In work or training for the district's headline figure (an EQ internship counts as
# training; a plain internship does not).
IN_WORK_OR_TRAINING = frozenset(
    {
        Stage.APPRENTICESHIP_STARTED,
        Stage.JOB_STARTED,
        Stage.EMPLOYED_3_MONTHS,
        Stage.EMPLOYED_6_MONTHS,
    }
)

NEXT: dict[Stage, frozenset[Stage]] = {
    Stage.PROPOSED: frozenset({Stage.INTERVIEW, *STARTS}),
    Stage.INTERVIEW: STARTS,
    Stage.INTERNSHIP_STARTED: frozenset({Stage.APPRENTICESHIP_STARTED, Stage.JOB_STARTED}),
    Stage.APPRENTICESHIP_STARTED: frozenset({Stage.EMPLOYED_3_MONTHS}),
    Stage.JOB_STARTED: frozenset({Stage.EMPLOYED_3_MONTHS}),
    Stage.EMPLOYED_3_MONTHS: frozenset({Stage.EMPLOYED_6_MONTHS}),
    Stage.EMPLOYED_6_MONTHS: frozenset(),
}
FOLLOW_UP_DAYS = {Stage.EMPLOYED_3_MONTHS: 91, Stage.EMPLOYED_6_MONTHS: 182}
START_FOR_TYPE = {
    OpeningType.PRAKTIKUM: Stage.INTERNSHIP_STARTED,
    OpeningType.EINSTIEGSQUALIFIZIERUNG: Stage.INTERNSHIP_STARTED,
    OpeningType.AUSBILDUNG: Stage.APPRENTICESHIP_STARTED,
    OpeningType.BESCHAEFTIGUNG: Stage.JOB_STARTED,
}


def check_step(current: Stage, wanted: Stage, on: date, started_on: date | None) -> None:
    """Raise a RuleViolation naming the field unless ``current -> wanted`` on ``on`` is
    a step the pipeline allows."""
    if wanted not in NEXT[current]:
        allowed = ", ".join(sorted(NEXT[current])) or "none (close the case instead)"
        raise RuleViolation("stage", f"cannot go from {current} to {wanted}; allowed: {allowed}")
    days = FOLLOW_UP_DAYS.get(wanted)
    if days is not None:
        assert started_on is not None, "a follow-up stage always comes after a start"
        due = started_on + timedelta(days=days)
        if on < due:
            raise RuleViolation(
                "on", f"{wanted} can be recorded from {due.isoformat()} (start {started_on})"
            )


def counts_as_in_work_or_training(stage: Stage, opening_type: OpeningType) -> bool:
    if stage is Stage.INTERNSHIP_STARTED:
        return opening_type is OpeningType.EINSTIEGSQUALIFIZIERUNG
    return stage in IN_WORK_OR_TRAINING


class CaseStep(BaseModel):
    stage: Stage | None = Field(description="None on the closing step.")
    on: date
    at: datetime
    note: str = ""
    closing_reason: ClosingReason | None = None


class Case(BaseModel):
    """One person on the way into one opening."""

    case_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    person_id: uuid.UUID
    district_id: DistrictId
    opening_id: uuid.UUID
    suggestion_set_id: uuid.UUID | None
    opening_type: OpeningType
    sector: Sector
    title: str
    employer: str
    stage: Stage = Stage.PROPOSED
    stage_on: date
    started_on: date | None = None
    seat_taken: bool = False
    closed: bool = False
    closing_reason: ClosingReason | None = None
    history: list[CaseStep] = Field(default_factory=list)
    version: int = 1

    def advanced(self, stage: Stage, on: date, note: str, now: datetime) -> Case:
        if self.closed:
            raise Conflict(f"case {self.case_id} is closed ({self.closing_reason})")
        if on < self.stage_on:
            raise RuleViolation("on", f"is before the current stage's date {self.stage_on}")
        check_step(self.stage, stage, on, self.started_on)
        return self.model_copy(
            update={
                "stage": stage,
                "stage_on": on,
                "started_on": on
                if stage in STARTS and self.started_on is None
                else self.started_on,
                "history": [*self.history, CaseStep(stage=stage, on=on, at=now, note=note)],
                "version": self.version + 1,
            }
        )

    def closed_for(self, reason: ClosingReason, on: date, note: str, now: datetime) -> Case:
        if self.closed:
            raise Conflict(f"case {self.case_id} is already closed ({self.closing_reason})")
        if on < self.stage_on:
            raise RuleViolation("on", f"is before the current stage's date {self.stage_on}")
        step = CaseStep(stage=None, on=on, at=now, note=note, closing_reason=reason)
        return self.model_copy(
            update={
                "closed": True,
                "closing_reason": reason,
                "history": [*self.history, step],
                "version": self.version + 1,
            }
        )
