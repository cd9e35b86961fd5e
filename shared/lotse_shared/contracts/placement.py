"""Events the placement service publishes."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from .common import CefrLevel, DistrictId, KldbCode, OpeningType, Sector
from .envelope import Event, Payload


class OpeningFactsV1(Payload):
    opening_id: uuid.UUID
    district_id: DistrictId
    source: str
    source_ref: str
    opening_type: OpeningType
    title: str
    employer: str
    occupation_code: KldbCode | None
    sector: Sector
    required_german_level: CefrLevel | None
    municipality: str | None
    start_date: date | None
    seats_free: int


class OpeningPublished(Event):
    DESCRIPTION = "An opening was published or changed and is open for suggestions."
    event_type: Literal["placement.opening.published"]
    event_version: Literal[1]
    payload: OpeningFactsV1


class OpeningClosedV1(Payload):
    opening_id: uuid.UUID
    district_id: DistrictId
    source: str
    source_ref: str
    reason: str


class OpeningClosed(Event):
    DESCRIPTION = "An opening was closed (withdrawn by the partner, filled, or expired)."
    event_type: Literal["placement.opening.closed"]
    event_version: Literal[1]
    payload: OpeningClosedV1


class SuggestionV1(Payload):
    opening_id: uuid.UUID
    opening_type: OpeningType
    title: str
    employer: str
    municipality: str | None
    distance_km: float | None
    score: float
    reasons: list[str] = Field(description="German, for the caseworker.")
    forecast: bool = Field(
        default=False,
        description="Eligible on the level an ongoing course should reach by the start; "
        "the same opening is suggested once more, confirmed, when the level is reached.",
    )


class SuggestionsReadyV1(Payload):
    suggestion_set_id: uuid.UUID
    person_id: uuid.UUID
    district_id: DistrictId
    trigger: Literal["course_completed", "opening_published", "person_registered", "person_changed"]
    german_level: CefrLevel | None
    suggestions: list[SuggestionV1] = Field(min_length=1)


class SuggestionsReady(Event):
    DESCRIPTION = "New ranked placement suggestions for one person, best first."
    event_type: Literal["placement.suggestions.ready"]
    event_version: Literal[1]
    payload: SuggestionsReadyV1


class SuggestionDecisionV1(Payload):
    person_id: uuid.UUID
    district_id: DistrictId
    opening_id: uuid.UUID
    suggestion_set_id: uuid.UUID | None
    case_id: uuid.UUID | None = Field(default=None, description="Accepted: the case it opened.")
    reason: str | None = Field(default=None, description="Dismissed: why, as the caseworker said.")


class SuggestionAccepted(Event):
    DESCRIPTION = "A caseworker accepted a suggestion and proposed it: a placement case opens."
    event_type: Literal["placement.suggestion.accepted"]
    event_version: Literal[1]
    payload: SuggestionDecisionV1


class SuggestionDismissed(Event):
    DESCRIPTION = "A caseworker dismissed a suggestion; it is not suggested again."
    event_type: Literal["placement.suggestion.dismissed"]
    event_version: Literal[1]
    payload: SuggestionDecisionV1


CaseStage = Literal[
    "proposed",
    "interview",
    "internship_started",
    "apprenticeship_started",
    "job_started",
    "employed_3_months",
    "employed_6_months",
]


class CaseFactsV1(Payload):
    """One step of a placement case: identifiers and the facts reports need."""

    case_id: uuid.UUID
    person_id: uuid.UUID
    district_id: DistrictId
    opening_id: uuid.UUID
    opening_type: OpeningType
    sector: Sector
    stage: CaseStage
    previous_stage: CaseStage | None
    on: date
    closing_reason: str | None = None


class CaseStageChanged(Event):
    DESCRIPTION = "A placement case moved on (proposed, interview, started, still employed)."
    event_type: Literal["placement.case.stage_changed"]
    event_version: Literal[1]
    payload: CaseFactsV1


class CaseClosed(Event):
    DESCRIPTION = "A placement case ended, with its reason (declined, dropped out, moved ...)."
    event_type: Literal["placement.case.closed"]
    event_version: Literal[1]
    payload: CaseFactsV1


class ImportRejectionV1(Payload):
    ref: str | None = Field(description="The partner's reference, if the record had one.")
    row: int | None = Field(description="CSV: line in the file; Jobsuche: position (from 1).")
    reason: str = Field(description="Names the partner's field, e.g. 'arbeitgeber: missing'.")


class ImportNoticeV1(Payload):
    ref: str | None = Field(description="The partner's reference, if the record had one.")
    row: int | None = Field(description="CSV: line in the file; Jobsuche: position (from 1).")
    reason: str = Field(
        description="What was imported differently than sent, e.g. 'hauptDkz 12345: no "
        "KldB 2010 code known'; the opening itself was imported."
    )


class ImportFileErrorV1(Payload):
    field: str = Field(description="What is wrong with the file as a whole, e.g. header.Betreib.")
    reason: str


class ImportCompletedV1(Payload):
    import_id: uuid.UUID
    source: str = Field(description="The partner whose openings were imported.")
    format: Literal["jobsuche", "csv"]
    full_feed: bool
    completed: bool = Field(
        default=True, description="False for one batch of an import still being sent."
    )
    received: int = Field(
        description="Records in the feed, rejected ones and earlier versions of the same "
        "reference included."
    )
    created: int
    updated: int
    unchanged: int = Field(description="Known and not changed: not published again.")
    closed: int = Field(description="Full feed: open openings the feed no longer names.")
    rejected: list[ImportRejectionV1] = Field(default_factory=list)
    notices: list[ImportNoticeV1] = Field(
        default_factory=list,
        description="Records imported with a caveat: an unknown occupation code, a place "
        "that could not be located among several, an older version kept as history.",
    )
    file_error: ImportFileErrorV1 | None = Field(
        default=None, description="Set when the file as a whole was refused; nothing imported."
    )


class ImportCompleted(Event):
    DESCRIPTION = "A partner's feed was imported: counts, and each rejected record with its reason."
    event_type: Literal["placement.import.completed"]
    event_version: Literal[1]
    payload: ImportCompletedV1
