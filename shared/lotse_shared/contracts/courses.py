"""Events the courses service publishes."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from .common import CefrLevel, CourseType, DistrictId
from .envelope import Event, Payload


class EnrolmentFacts(Payload):
    enrolment_id: uuid.UUID
    person_id: uuid.UUID
    district_id: DistrictId
    course_id: uuid.UUID
    course_type: CourseType
    target_level: CefrLevel


class EnrolledV1(EnrolmentFacts):
    starts_on: date
    ends_on: date


class Enrolled(Event):
    DESCRIPTION = "A person was enrolled in a German course."
    event_type: Literal["courses.enrolment.created"]
    event_version: Literal[1]
    payload: EnrolledV1


class AttendanceRecordedV1(EnrolmentFacts):
    session_date: date
    present: bool
    attendance_rate: float = Field(ge=0, le=1, description="Share of sessions attended so far.")


class AttendanceRecorded(Event):
    DESCRIPTION = "Attendance of one course session was recorded."
    event_type: Literal["courses.attendance.recorded"]
    event_version: Literal[1]
    payload: AttendanceRecordedV1


class ExamResultRecordedV1(EnrolmentFacts):
    exam: str = Field(description="dtz | dtb | telc")
    level_tested: CefrLevel | None
    level_reached: CefrLevel | None = Field(description="None: below the lowest level tested.")
    taken_on: date


class ExamResultRecorded(Event):
    DESCRIPTION = "An exam result (DTZ, DTB, telc) was recorded."
    event_type: Literal["courses.exam_result.recorded"]
    event_version: Literal[1]
    payload: ExamResultRecordedV1


class CourseCompletedV1(EnrolmentFacts):
    level_reached: CefrLevel
    completed_on: date


class CourseCompleted(Event):
    DESCRIPTION = "A person completed a course and reached a German level."
    event_type: Literal["courses.course.completed"]
    event_version: Literal[1]
    payload: CourseCompletedV1


class CourseDroppedV1(EnrolmentFacts):
    dropped_on: date
    reason: str = Field(max_length=500)


class CourseDropped(Event):
    DESCRIPTION = "A person left a course before completing it."
    event_type: Literal["courses.course.dropped"]
    event_version: Literal[1]
    payload: CourseDroppedV1
