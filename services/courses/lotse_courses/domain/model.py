"""Courses and enrolments, and the rules of German-course exams. Pure: no I/O.

Facts (see DOMAIN.md): the DTZ ends an Integrationskurs and is scaled, its
result is A2, B1 or below A2; the DTB (Berufssprachkurse) and telc exams test
one level and are passed or failed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, computed_field, model_validator

from lotse_shared.contracts.common import CefrLevel, CourseType, DistrictId
from lotse_shared.errors import Conflict, RuleViolation
from lotse_shared.places import find_place

ExamKind = Literal["dtz", "dtb", "telc"]
ExamResultValue = Literal["passed", "failed", "A2", "B1", "below_A2"]

DTB_LEVELS = (CefrLevel.A2, CefrLevel.B1, CefrLevel.B2, CefrLevel.C1)
AT_RISK_BELOW = 0.7  # attendance share under which a caseworker should look


def _now() -> datetime:
    return datetime.now(UTC)


class CourseDetails(BaseModel):
    provider: str = Field(min_length=1, max_length=120)
    course_ref: str = Field(min_length=1, max_length=120, description="Provider's own reference.")
    course_type: CourseType
    title: str = Field(min_length=1, max_length=200)
    target_level: CefrLevel
    starts_on: date
    ends_on: date
    municipality: str
    teaching_units: int | None = Field(default=None, ge=1, le=2000)
    district_id: DistrictId = "kassel"

    @model_validator(mode="after")
    def _rules(self) -> CourseDetails:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        place = find_place(self.municipality)
        if place is None:
            raise ValueError(f"municipality: unknown place {self.municipality!r}")
        self.municipality = place.name
        if self.course_type is CourseType.INTEA and self.target_level > CefrLevel.B1:
            raise ValueError("target_level: InteA classes aim at B1 at most")
        return self


class Course(CourseDetails):
    course_id: uuid.UUID = Field(default_factory=uuid.uuid4)


class ExamResult(BaseModel):
    exam: ExamKind
    level_tested: CefrLevel | None
    result: ExamResultValue
    taken_on: date
    level_reached: CefrLevel | None


def assess_exam(
    exam: ExamKind, level_tested: CefrLevel | None, result: ExamResultValue, taken_on: date
) -> ExamResult:
    """Check an exam result against the exam's rules and work out the level reached."""
    if exam == "dtz":
        if level_tested is not None:
            raise RuleViolation("level_tested", "the DTZ is scaled; leave level_tested empty")
        if result not in ("A2", "B1", "below_A2"):
            raise RuleViolation("result", "a DTZ result is A2, B1 or below_A2")
        reached = None if result == "below_A2" else CefrLevel(result)
        return ExamResult(
            exam=exam, level_tested=None, result=result, taken_on=taken_on, level_reached=reached
        )
    if level_tested is None:
        raise RuleViolation("level_tested", f"a {exam.upper()} exam tests one level; give it")
    if exam == "dtb" and level_tested not in DTB_LEVELS:
        raise RuleViolation("level_tested", "DTB exams exist for A2, B1, B2 and C1")
    if result not in ("passed", "failed"):
        raise RuleViolation("result", f"a {exam.upper()} result is passed or failed")
    return ExamResult(
        exam=exam,
        level_tested=level_tested,
        result=result,
        taken_on=taken_on,
        level_reached=level_tested if result == "passed" else None,
    )


class EnrolmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    DROPPED = "dropped"


class Session(BaseModel):
    session_date: date
    present: bool


class Enrolment(BaseModel):
    enrolment_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    course_id: uuid.UUID
    person_id: uuid.UUID
    district_id: DistrictId
    course_type: CourseType
    target_level: CefrLevel
    status: EnrolmentStatus = EnrolmentStatus.ACTIVE
    sessions: list[Session] = Field(default_factory=list)
    exams: list[ExamResult] = Field(default_factory=list)
    level_reached: CefrLevel | None = None
    completed_on: date | None = None
    dropped_on: date | None = None
    drop_reason: str | None = None
    enrolled_at: datetime = Field(default_factory=_now)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def attendance_rate(self) -> float:
        if not self.sessions:
            return 1.0
        return round(sum(s.present for s in self.sessions) / len(self.sessions), 4)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def attendance_at_risk(self) -> bool:
        return len(self.sessions) >= 5 and self.attendance_rate < AT_RISK_BELOW

    def best_exam_level(self) -> CefrLevel | None:
        levels = [e.level_reached for e in self.exams if e.level_reached is not None]
        return max(levels, key=lambda lv: lv.rank) if levels else None

    def _require_active(self, action: str) -> None:
        if self.status is not EnrolmentStatus.ACTIVE:
            raise Conflict(f"cannot {action}: enrolment {self.enrolment_id} is {self.status}")

    def record_session(self, session_date: date, present: bool) -> None:
        self._require_active("record attendance")
        self.sessions = [s for s in self.sessions if s.session_date != session_date]
        self.sessions.append(Session(session_date=session_date, present=present))
        self.sessions.sort(key=lambda s: s.session_date)

    def record_exam(self, result: ExamResult) -> None:
        if self.status is EnrolmentStatus.DROPPED:
            raise Conflict(f"cannot record an exam: enrolment {self.enrolment_id} was dropped")
        self.exams.append(result)

    def complete(self, completed_on: date, level_reached: CefrLevel | None) -> bool:
        """Mark completed; False if it already was, with the same outcome (a repeat report)."""
        level = level_reached or self.best_exam_level()
        if level is None:
            raise RuleViolation(
                "level_reached", "no passed exam is recorded; give the level reached"
            )
        if self.status is EnrolmentStatus.COMPLETED and self.level_reached == level:
            return False
        self._require_active("complete")
        self.status = EnrolmentStatus.COMPLETED
        self.level_reached = level
        self.completed_on = completed_on
        return True

    def drop(self, dropped_on: date, reason: str) -> bool:
        if self.status is EnrolmentStatus.DROPPED:
            return False
        self._require_active("drop out")
        self.status = EnrolmentStatus.DROPPED
        self.dropped_on = dropped_on
        self.drop_reason = reason
        return True
