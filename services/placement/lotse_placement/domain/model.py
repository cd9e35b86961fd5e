"""What placement knows about people and openings. Pure: no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lotse_shared.contracts.common import (
    CefrLevel,
    CourseType,
    DistrictId,
    EducationLevel,
    KldbCode,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
    cefr_rank,
)
from lotse_shared.contracts.envelope import CausedBy, Event
from lotse_shared.errors import Conflict


def _now() -> datetime:
    return datetime.now(UTC)


class OngoingCourse(BaseModel):
    """A German course the person is enrolled in: what it aims at and when it ends."""

    enrolment_id: uuid.UUID
    course_type: CourseType
    target_level: CefrLevel
    ends_on: date


class Candidate(BaseModel):
    """placement's read model of a person: the matching facts, nothing else."""

    person_id: uuid.UUID
    district_id: DistrictId
    revision: int
    birth_year: int
    municipality: str
    lat: float
    lon: float
    german_level: CefrLevel | None  # as recorded by intake
    course_level: CefrLevel | None = None  # highest level reached in a completed course
    residence_status: ResidenceStatus
    work_permission: WorkPermission
    driving_licence: bool
    max_commute_km: int
    sectors_of_interest: list[Sector] = Field(default_factory=list)
    experience_occupations: list[KldbCode] = Field(default_factory=list)
    education_level: EducationLevel = EducationLevel.NONE
    available_from: date | None = None
    matching_consent: bool = False
    share_consent: bool = False  # may be passed on to employers (interview and later)
    contact_emails: list[str] = Field(
        default_factory=list, description="Who is responsible (lower case): who may see them."
    )
    ongoing_courses: list[OngoingCourse] = Field(default_factory=list)

    def require_consent(self, purpose: Literal["matching", "share_with_employers"]) -> None:
        """Refuse (409, naming the consent) what the person has not consented to."""
        given = self.matching_consent if purpose == "matching" else self.share_consent
        if not given:
            what = "matching" if purpose == "matching" else "sharing their data with employers"
            raise Conflict(
                f"consent.{purpose}: the person has not consented to {what} "
                "(record it in intake first)"
            )

    def age_on(self, day: date) -> int:
        """Age in whole years on ``day``; intake keeps only the birth year, so this is
        the age reached during that year (at most one year too high)."""
        return day.year - self.birth_year

    def forecast(self, by: date) -> OngoingCourse | None:
        """The ongoing course that reaches the highest level by ``by``, if any."""
        done = [c for c in self.ongoing_courses if c.ends_on <= by]
        return max(done, key=lambda c: (c.target_level.rank, -c.ends_on.toordinal()), default=None)

    def intea_until(self, day: date) -> date | None:
        """The end of an InteA class the person still attends on ``day``."""
        ends = [
            c.ends_on
            for c in self.ongoing_courses
            if c.course_type is CourseType.INTEA and c.ends_on > day
        ]
        return max(ends, default=None)

    @property
    def effective_german_level(self) -> CefrLevel | None:
        levels = [lv for lv in (self.german_level, self.course_level) if lv is not None]
        return max(levels, key=lambda lv: lv.rank) if levels else None

    @property
    def german_rank(self) -> int:
        return cefr_rank(self.effective_german_level)

    @property
    def reachable_rank(self) -> int:
        """The highest level reached or aimed at by an ongoing course: no opening
        asking for more can pass the German rule, whatever its start date."""
        return max([self.german_rank, *(c.target_level.rank for c in self.ongoing_courses)])


class WorkSite(BaseModel):
    """One place an opening's work is done, located."""

    municipality: str | None = None
    postcode: str | None = None
    lat: float
    lon: float


class OpeningStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Opening(BaseModel):
    opening_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source: str = Field(description="Who sent it: a partner id or 'caseworker'.")
    source_ref: str = Field(description="The source's reference number (refnr).")
    district_id: DistrictId = "kassel"
    opening_type: OpeningType
    title: str
    employer: str
    occupation_code: KldbCode | None = None
    sector: Sector
    required_german_level: CefrLevel | None = None
    municipality: str | None = None
    postcode: str | None = None
    lat: float
    lon: float
    start_date: date | None = None
    seats: int = 1
    seats_taken: int = 0
    status: OpeningStatus = OpeningStatus.OPEN
    description: str = ""
    german_level_rule: str | None = None  # which rule read required_german_level (imports)
    source_url: str | None = None  # the posting at the partner
    other_locations: list[WorkSite] = Field(
        default_factory=list,
        description="Further places of the posting; matching uses the one nearest to the person.",
    )
    source_modified_at: datetime | None = None  # when the partner last changed it
    agency_occupation_code: str | None = None  # the agency's hauptDkz, as sent
    suitable_for_refugees: bool | None = None  # as the partner says
    published_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    closed_reason: str | None = None

    @property
    def sites(self) -> list[WorkSite]:
        """Every place of the opening, its main one first."""
        main = WorkSite(
            municipality=self.municipality, postcode=self.postcode, lat=self.lat, lon=self.lon
        )
        return [main, *self.other_locations]

    @property
    def seats_free(self) -> int:
        return max(0, self.seats - self.seats_taken)

    @property
    def required_rank(self) -> int:
        return cefr_rank(self.required_german_level)

    @property
    def skill_level(self) -> int | None:
        """KldB's fifth digit: 1 helper, 2 skilled, 3 specialist, 4 expert."""
        return int(self.occupation_code[4]) if self.occupation_code else None


@dataclass(frozen=True)
class OpeningFilter:
    """What a list of openings may be narrowed to; empty fields do not narrow."""

    status: OpeningStatus | None = None
    opening_type: OpeningType | None = None
    sector: Sector | None = None
    municipality: str | None = None
    german_level: CefrLevel | None = None  # asking for at most this level (or none)
    starts_by: date | None = None  # starting on or before (no start date: at once)
    text: str | None = None  # part of the title or employer, any case

    def levels_within(self) -> list[CefrLevel] | None:
        if self.german_level is None:
            return None
        return [lv for lv in CefrLevel if lv.rank <= self.german_level.rank]


# what tells one version of an opening from another; bookkeeping is left out
_BOOKKEEPING = {"opening_id", "published_at", "updated_at", "seats_taken"}


class OpeningVersion(BaseModel):
    """An earlier version of an opening, as ``GET /openings/{id}`` shows it."""

    received_at: datetime = Field(description="When placement received this version.")
    source_modified_at: datetime | None = Field(
        description="When the partner changed the posting to this version, if it says."
    )
    applied: bool = Field(
        description="False: it arrived after a newer version (or the same feed had a newer "
        "one) and never replaced it; kept for the record only."
    )
    note: str | None = Field(default=None, description="Why it was not applied.")
    earlier_values: dict[str, object] = Field(
        description="This version's values of the fields that differ from the opening as it is now."
    )


def earlier_versions(current: Opening, history: list[dict[str, object]]) -> list[OpeningVersion]:
    """The stored history (oldest first), each version with what differed from now."""
    now = current.model_dump(mode="json", exclude=_BOOKKEEPING)
    versions = []
    for entry in history:
        then = Opening.model_validate({**entry, "opening_id": current.opening_id})
        values = then.model_dump(mode="json", exclude=_BOOKKEEPING)
        versions.append(
            OpeningVersion(
                received_at=then.updated_at,
                source_modified_at=then.source_modified_at,
                applied=not entry.get("not_applied"),
                note=str(entry["not_applied"]) if entry.get("not_applied") else None,
                earlier_values={k: v for k, v in values.items() if now.get(k) != v},
            )
        )
    return versions


def same_version(a: Opening, b: Opening) -> bool:
    """The same content: a version already kept is not kept twice."""
    keep = _BOOKKEEPING | {"status", "closed_reason"}
    return a.model_dump(exclude=keep) == b.model_dump(exclude=keep)


MatchTrigger = Literal[
    "course_completed", "opening_published", "person_registered", "person_changed"
]


class MatchPending(BaseModel):
    """A person or an opening waiting for its matching, and why.

    Saving and matching are two transactions (in one, a person and an opening saved at
    the same moment would not see each other); this marker, written with the save,
    says that matching is still owed, what set it off and which event caused it, so
    the suggestions it yields join that event's flow. ``at`` tells a finished marker
    from one set again meanwhile."""

    model_config = ConfigDict(frozen=True)

    trigger: MatchTrigger
    at: datetime
    event_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None

    @classmethod
    def because(cls, trigger: MatchTrigger, cause: Event | None) -> MatchPending:
        return cls(
            trigger=trigger,
            at=datetime.now(UTC),
            event_id=cause.event_id if cause else None,
            correlation_id=cause.correlation_id if cause else None,
        )

    @property
    def cause(self) -> CausedBy | None:
        if self.event_id is None or self.correlation_id is None:
            return None
        return CausedBy(event_id=self.event_id, correlation_id=self.correlation_id)
