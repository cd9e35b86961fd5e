"""What placement knows about people and openings. Pure: no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from lotse_shared.contracts.common import (
    CefrLevel,
    DistrictId,
    EducationLevel,
    KldbCode,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
    cefr_rank,
)


def _now() -> datetime:
    return datetime.now(UTC)


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

    @property
    def effective_german_level(self) -> CefrLevel | None:
        levels = [lv for lv in (self.german_level, self.course_level) if lv is not None]
        return max(levels, key=lambda lv: lv.rank) if levels else None

    @property
    def german_rank(self) -> int:
        return cefr_rank(self.effective_german_level)


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
    published_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    closed_reason: str | None = None

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
