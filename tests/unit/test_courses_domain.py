"""German-course rules: exam scales, completion, drop-out, attendance."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from lotse_courses.domain.model import (
    CourseDetails,
    Enrolment,
    EnrolmentStatus,
    assess_exam,
)
from lotse_shared.contracts.common import CefrLevel, CourseType
from lotse_shared.errors import Conflict, RuleViolation

DAY = date(2026, 11, 24)


def enrolment() -> Enrolment:
    return Enrolment(
        course_id=uuid.uuid4(),
        person_id=uuid.uuid4(),
        district_id="kassel",
        course_type=CourseType.INTEGRATIONSKURS,
        target_level=CefrLevel.B1,
    )


@pytest.mark.parametrize(("result", "reached"), [("A2", "A2"), ("B1", "B1"), ("below_A2", None)])
def test_dtz_is_scaled(result: str, reached: str | None) -> None:
    exam = assess_exam("dtz", None, result, DAY)  # type: ignore[arg-type]
    assert exam.level_reached == (CefrLevel(reached) if reached else None)


def test_dtz_cannot_yield_b2_or_name_a_tested_level() -> None:
    with pytest.raises(RuleViolation) as err:
        assess_exam("dtz", None, "passed", DAY)
    assert err.value.field == "result"
    with pytest.raises(RuleViolation) as err:
        assess_exam("dtz", CefrLevel.B1, "B1", DAY)
    assert err.value.field == "level_tested"


def test_dtb_tests_one_level_pass_or_fail() -> None:
    assert assess_exam("dtb", CefrLevel.B2, "passed", DAY).level_reached == CefrLevel.B2
    assert assess_exam("dtb", CefrLevel.B2, "failed", DAY).level_reached is None
    with pytest.raises(RuleViolation):
        assess_exam("dtb", CefrLevel.A1, "passed", DAY)  # no DTB A1
    with pytest.raises(RuleViolation):
        assess_exam("telc", None, "passed", DAY)


def test_completion_takes_the_best_passed_exam() -> None:
    e = enrolment()
    e.record_exam(assess_exam("dtz", None, "A2", DAY))
    e.record_exam(assess_exam("dtb", CefrLevel.B1, "passed", DAY))
    e.record_exam(assess_exam("dtb", CefrLevel.B2, "failed", DAY))
    assert e.complete(DAY, None) is True
    assert e.level_reached == CefrLevel.B1
    assert e.status is EnrolmentStatus.COMPLETED


def test_completion_without_level_or_exam_is_refused() -> None:
    with pytest.raises(RuleViolation) as err:
        enrolment().complete(DAY, None)
    assert err.value.field == "level_reached"


def test_repeated_completion_is_a_no_op_but_a_different_one_conflicts() -> None:
    e = enrolment()
    assert e.complete(DAY, CefrLevel.B1) is True
    assert e.complete(DAY, CefrLevel.B1) is False
    with pytest.raises(Conflict):
        e.complete(DAY, CefrLevel.B2)


def test_drop_out_ends_the_enrolment() -> None:
    e = enrolment()
    assert e.drop(DAY, "moved away") is True
    assert e.drop(DAY, "moved away") is False
    with pytest.raises(Conflict):
        e.record_session(DAY, True)
    with pytest.raises(Conflict):
        e.complete(DAY, CefrLevel.B1)


def test_attendance_rate_and_risk() -> None:
    e = enrolment()
    for n in range(10):
        e.record_session(DAY + timedelta(days=n), present=n < 6)
    assert e.attendance_rate == 0.6
    assert e.attendance_at_risk is True
    e.record_session(DAY + timedelta(days=9), present=True)  # corrected, same day
    assert len(e.sessions) == 10
    assert e.attendance_rate == 0.7
    assert e.attendance_at_risk is False


def test_course_rules() -> None:
    base = {
        "provider": "VHS",
        "course_ref": "X",
        "course_type": CourseType.INTEA,
        "title": "InteA",
        "starts_on": DAY,
        "ends_on": DAY + timedelta(days=700),
        "municipality": "hofgeismar",
    }
    course = CourseDetails(**base, target_level=CefrLevel.B1)
    assert course.municipality == "Hofgeismar"
    with pytest.raises(ValueError, match="InteA classes aim at B1"):
        CourseDetails(**base, target_level=CefrLevel.B2)
    with pytest.raises(ValueError, match="ends_on is before starts_on"):
        CourseDetails(**{**base, "ends_on": DAY - timedelta(days=1)}, target_level=CefrLevel.B1)
