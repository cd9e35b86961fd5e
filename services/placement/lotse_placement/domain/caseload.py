"""What a caseworker's lists show about a person: where they stand and what is open
for them. Pure: no I/O; the repository reads the facts in bounded queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from lotse_shared.contracts.common import CefrLevel, OpeningType, Sector, WorkPermission

from .model import Candidate, Opening
from .pipeline import Case, ClosingReason, Stage

STAGE_ORDER = {stage: n for n, stage in enumerate(Stage)}


class OpenSuggestion(BaseModel):
    """An opening suggested to a person and not decided on, while it is still open.
    Told in several sets (a forecast, then confirmed), it is shown once, as the latest
    set told it."""

    opening_id: uuid.UUID
    suggestion_set_id: uuid.UUID
    title: str
    employer: str
    municipality: str | None
    opening_type: OpeningType
    sector: Sector
    required_german_level: CefrLevel | None = None
    start_date: date | None = None
    distance_km: float | None = None
    score: float
    reasons: list[str] = Field(description="German, as the latest set told them.")
    forecast: bool = False
    suggested_at: datetime = Field(description="When the latest set told it.")
    decision: Literal["accepted", "dismissed", "withdrawn"] | None = Field(
        default=None, description="Always empty here: decided suggestions are not open."
    )

    @classmethod
    def as_told(
        cls, opening: Opening, told: Mapping[str, Any], item: Mapping[str, Any]
    ) -> OpenSuggestion:
        """The opening as it is now, with what the set ``told`` said of it (``item``)."""
        return cls(
            opening_id=opening.opening_id,
            suggestion_set_id=told["_id"],
            title=opening.title,
            employer=opening.employer,
            municipality=opening.municipality,
            opening_type=opening.opening_type,
            sector=opening.sector,
            required_german_level=opening.required_german_level,
            start_date=opening.start_date,
            distance_km=item.get("distance_km"),
            score=item["score"],
            reasons=item.get("reasons", []),
            forecast=bool(item.get("forecast")),
            suggested_at=told["created_at"],
        )


def best_first(suggestions: Iterable[OpenSuggestion]) -> list[OpenSuggestion]:
    """Score, then the shorter way, then the title (stable for a paged list)."""
    return sorted(
        suggestions,
        key=lambda s: (-s.score, s.distance_km if s.distance_km is not None else 0.0, s.title),
    )


class PersonOverview(BaseModel):
    """One row of a caseload page, as placement sees the person."""

    person_id: uuid.UUID
    german_level: CefrLevel | None = Field(description="As recorded by intake.")
    course_level: CefrLevel | None = Field(description="Highest level of a completed course.")
    work_permission: WorkPermission
    matching_consent: bool
    in_course: bool = Field(description="Enrolled in a German course that is still running.")
    open_suggestions: int = Field(
        description="Distinct openings suggested, not yet accepted or dismissed, still open."
    )
    best_score: float | None = Field(description="The best of those suggestions' scores.")
    furthest_stage: Stage | None = Field(
        description="The furthest stage among the person's cases, open or completed "
        "(a case closed for another reason does not count)."
    )
    open_cases: int


def counts_for_progress(case: Case) -> bool:
    return not case.closed or case.closing_reason is ClosingReason.COMPLETED


def furthest_stage(cases: Iterable[Case]) -> Stage | None:
    reached = [c.stage for c in cases if counts_for_progress(c)]
    return max(reached, key=STAGE_ORDER.__getitem__, default=None)


def overview(
    person: Candidate, cases: list[Case], open_scores: Mapping[uuid.UUID, float | None]
) -> PersonOverview:
    """``open_scores``: each open suggestion's opening and its latest score."""
    return PersonOverview(
        person_id=person.person_id,
        german_level=person.german_level,
        course_level=person.course_level,
        work_permission=person.work_permission,
        matching_consent=person.matching_consent,
        in_course=bool(person.ongoing_courses),
        open_suggestions=len(open_scores),
        best_score=max((s for s in open_scores.values() if s is not None), default=None),
        furthest_stage=furthest_stage(cases),
        open_cases=sum(1 for c in cases if not c.closed),
    )


class OpeningCandidate(BaseModel):
    """A person an opening could suit, as ``fits_of_people`` rates them."""

    person_id: uuid.UUID
    score: float
    reasons: list[str] = Field(description="German; a near miss's start with the rules failed.")
    eligible: bool
    failed_rules: list[str] = Field(default_factory=list)
    distance_km: float
    suggested: bool = Field(description="The opening was suggested to the person already.")
