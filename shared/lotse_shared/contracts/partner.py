"""What partners send to Lotse over AMQP: schools report course events,
the employment agency and the chambers report openings.

Partners publish to the ``<namespace>.events`` topic exchange with the routing
keys ``partner.*`` from :mod:`routing`, persistent, ``content_type``
``application/json``. ``producer`` names the partner (e.g. ``vhs-kassel``,
``ba-jobsuche``, ``ihk-kassel``). Unknown fields are refused by name so a
typo does not pass silently. See ``docs/partner-events.md``.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal, Self

from pydantic import AwareDatetime, Field, JsonValue, model_validator

from .common import CefrLevel, CourseType, DistrictId, KldbCode, OpeningType, Sector
from .envelope import Event, PartnerPayload


class CourseRef(PartnerPayload):
    """Identifies a course by the provider's own reference."""

    provider: str = Field(min_length=1, max_length=120, examples=["VHS Region Kassel"])
    course_ref: str = Field(min_length=1, max_length=120, examples=["IK-2026-14"])


class CourseDetails(CourseRef):
    course_type: CourseType
    title: str = Field(min_length=1, max_length=200)
    target_level: CefrLevel
    starts_on: date
    ends_on: date
    municipality: str
    teaching_units: int | None = Field(default=None, ge=1, le=2000)

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class EnrolmentReportedV1(PartnerPayload):
    person_id: uuid.UUID
    course: CourseDetails


class EnrolmentReported(Event):
    DESCRIPTION = "A school or language school reports that a person was enrolled."
    event_type: Literal["partner.course.enrolment_reported"]
    event_version: Literal[1]
    payload: EnrolmentReportedV1


class AttendanceReportedV1(PartnerPayload):
    person_id: uuid.UUID
    course: CourseRef
    session_date: date
    present: bool


class AttendanceReported(Event):
    DESCRIPTION = "A school reports a person's attendance at one session."
    event_type: Literal["partner.course.attendance_reported"]
    event_version: Literal[1]
    payload: AttendanceReportedV1


class ExamResultReportedV1(PartnerPayload):
    person_id: uuid.UUID
    course: CourseRef
    exam: Literal["dtz", "dtb", "telc"]
    level_tested: CefrLevel | None = Field(
        default=None, description="DTB/telc: the level the exam tests. DTZ: leave empty."
    )
    result: Literal["passed", "failed", "A2", "B1", "below_A2"] = Field(
        description="DTZ is scaled: A2, B1 or below_A2. DTB/telc: passed or failed."
    )
    taken_on: date


class ExamResultReported(Event):
    DESCRIPTION = "An exam result: DTZ (scaled A2/B1), DTB or telc."
    event_type: Literal["partner.course.exam_result_reported"]
    event_version: Literal[1]
    payload: ExamResultReportedV1


class CompletionReportedV1(PartnerPayload):
    person_id: uuid.UUID
    course: CourseRef
    completed_on: date
    level_reached: CefrLevel | None = Field(
        default=None, description="If empty, the best passed exam of the enrolment decides."
    )


class CompletionReported(Event):
    DESCRIPTION = "A school reports that a person completed a course."
    event_type: Literal["partner.course.completion_reported"]
    event_version: Literal[1]
    payload: CompletionReportedV1


class DropoutReportedV1(PartnerPayload):
    person_id: uuid.UUID
    course: CourseRef
    dropped_on: date
    reason: str = Field(default="", max_length=500)


class DropoutReported(Event):
    DESCRIPTION = "A school reports that a person left a course."
    event_type: Literal["partner.course.dropout_reported"]
    event_version: Literal[1]
    payload: DropoutReportedV1


class OpeningLocation(PartnerPayload):
    # min_length: "" passed "a municipality or coordinates" and then had neither, a 500
    municipality: str | None = Field(
        default=None, min_length=1, max_length=200, examples=["Baunatal"]
    )
    postcode: str | None = Field(default=None, pattern=r"^\d{5}$")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def _somewhere(self) -> Self:
        if self.municipality is None and (self.lat is None or self.lon is None):
            raise ValueError("give a municipality or both lat and lon")
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        return self


class OpeningReportedV1(PartnerPayload):
    source_ref: str = Field(
        min_length=1, max_length=120, description="The partner's reference number (refnr)."
    )
    district_id: DistrictId = "kassel"
    opening_type: OpeningType
    title: str = Field(min_length=1, max_length=300)
    employer: str = Field(min_length=1, max_length=300)
    occupation_code: KldbCode | None = None
    sector: Sector
    required_german_level: CefrLevel | None = None
    location: OpeningLocation = Field(description="Where the work is; the first place if several.")
    other_locations: list[OpeningLocation] = Field(
        default_factory=list,
        max_length=50,
        description="Further places of the same posting (Jobsuche: stellenlokationen[1:]); "
        "matching uses the one nearest to the person.",
    )
    start_date: date | None = None
    seats: int = Field(default=1, ge=1, le=500)
    description: str = Field(default="", max_length=20_000)
    german_level_rule: str | None = Field(
        default=None,
        max_length=500,
        description="Which rule decided required_german_level, when an importer read it "
        "(e.g. \"Beschreibung: 'Deutschkenntnisse B1'\").",
    )
    source_url: str | None = Field(
        default=None, max_length=2000, description="The posting at the partner (externeUrl)."
    )
    source_modified_at: AwareDatetime | None = Field(
        default=None,
        description="When the partner last changed the posting (Jobsuche: "
        "modifikationsTimestamp or aenderungsdatum). A report older than the version "
        "placement holds does not replace it; it is kept in the opening's history.",
    )
    agency_occupation_code: str | None = Field(
        default=None,
        max_length=20,
        description="The employment agency's own occupation code (hauptDkz), as sent.",
    )
    suitable_for_refugees: bool | None = Field(
        default=None,
        description="The partner says the posting suits refugees "
        "(Jobsuche: fuerFluechtlingeGeeignet); empty if it does not say.",
    )


class OpeningReported(Event):
    DESCRIPTION = "A partner publishes or updates an opening; the same source_ref again updates it."
    event_type: Literal["partner.opening.reported"]
    event_version: Literal[1]
    payload: OpeningReportedV1


class OpeningWithdrawnV1(PartnerPayload):
    source_ref: str = Field(min_length=1, max_length=120)
    reason: str = Field(default="withdrawn by partner", max_length=500)


class OpeningWithdrawn(Event):
    DESCRIPTION = "A partner withdraws an opening (filled or no longer offered)."
    event_type: Literal["partner.opening.withdrawn"]
    event_version: Literal[1]
    payload: OpeningWithdrawnV1


class OpeningFeedReportedV1(PartnerPayload):
    """A whole list of openings in the partner's own format; see docs/imports.md."""

    format: Literal["jobsuche", "csv"] = Field(
        description="jobsuche: the employment agency's JSON (search results, one or more "
        "job details); csv: the chambers' CSV columns."
    )
    document: JsonValue = Field(
        default=None, description="format jobsuche: the Jobsuche document as it is."
    )
    csv: str | None = Field(
        default=None, max_length=20_000_000, description="format csv: the file's text."
    )
    angebotsart: Literal[1, 2, 4, 34] | None = Field(
        default=None,
        description="The Jobsuche query's angebotsart, for records that do not name their own.",
    )
    full_feed: bool = Field(
        default=False,
        description="The feed is everything the partner offers: open openings of this "
        "producer that it does not name are closed.",
    )

    @model_validator(mode="after")
    def _content_matches_format(self) -> Self:
        if self.format == "jobsuche" and (self.document is None or self.csv is not None):
            raise ValueError("format jobsuche carries 'document' and no 'csv'")
        if self.format == "csv" and (self.csv is None or self.document is not None):
            raise ValueError("format csv carries 'csv' and no 'document'")
        return self


class OpeningFeedReported(Event):
    DESCRIPTION = (
        "A partner sends a whole feed of openings in its own format (Jobsuche JSON or CSV); "
        "the result, naming each rejected record, is at GET /imports/<event_id> on placement."
    )
    event_type: Literal["partner.opening.feed_reported"]
    event_version: Literal[1]
    payload: OpeningFeedReportedV1
