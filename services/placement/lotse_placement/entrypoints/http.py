"""placement's HTTP routes: translate requests into handler calls, nothing more."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from lotse_placement.domain.model import Opening, OpeningStatus
from lotse_placement.handlers import PlacementHandlers
from lotse_shared.contracts.partner import OpeningReportedV1
from lotse_shared.errors import NotFound


class OpeningRequest(OpeningReportedV1):
    """An opening entered over HTTP; ``source`` names who sent it."""

    source: str = Field(default="caseworker", min_length=1, max_length=64)


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="closed by caseworker", min_length=1, max_length=500)


class SuggestionOut(BaseModel):
    opening_id: uuid.UUID
    opening_type: str
    title: str
    employer: str
    municipality: str | None
    distance_km: float | None
    score: float
    reasons: list[str]


class SuggestionSetOut(BaseModel):
    suggestion_set_id: uuid.UUID
    person_id: uuid.UUID
    trigger: str
    german_level: str | None
    created_at: datetime
    suggestions: list[SuggestionOut]


class RuleOut(BaseModel):
    rule: str
    passed: bool
    reason: str


class EvaluationOut(BaseModel):
    opening_id: uuid.UUID
    title: str
    employer: str
    distance_km: float
    eligible: bool
    rules: list[RuleOut]


def _set_out(doc: dict[str, Any]) -> SuggestionSetOut:
    return SuggestionSetOut(
        suggestion_set_id=doc["_id"],
        person_id=doc["person_id"],
        trigger=doc["trigger"],
        german_level=doc.get("german_level"),
        created_at=doc["created_at"],
        suggestions=[SuggestionOut.model_validate(s) for s in doc["suggestions"]],
    )


def make_router(h: PlacementHandlers) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/openings",
        status_code=status.HTTP_200_OK,
        tags=["openings"],
        summary="Publish or update an opening (same source and source_ref: update)",
    )
    async def publish_opening(body: OpeningRequest) -> Opening:
        report = OpeningReportedV1.model_validate(body.model_dump(exclude={"source"}))
        return await h.report_opening(report, body.source)

    @router.get("/openings", tags=["openings"])
    async def list_openings(
        status_filter: Annotated[OpeningStatus | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[Opening]:
        return await h.repo.list_openings(
            status_filter.value if status_filter else None, limit, offset
        )

    @router.get("/openings/{opening_id}", tags=["openings"])
    async def get_opening(opening_id: uuid.UUID) -> Opening:
        opening = await h.repo.get_opening(opening_id)
        if opening is None:
            raise NotFound(f"opening {opening_id} not found")
        return opening

    @router.post("/openings/{opening_id}/close", tags=["openings"])
    async def close_opening(opening_id: uuid.UUID, body: CloseRequest) -> Opening:
        opening = await get_opening(opening_id)
        return await h.close_opening(opening.source, opening.source_ref, body.reason)

    @router.get(
        "/people/{person_id}/suggestions",
        tags=["suggestions"],
        summary="The person's suggestion sets, newest first",
    )
    async def suggestions(person_id: uuid.UUID) -> list[SuggestionSetOut]:
        return [_set_out(d) for d in await h.repo.sets_of(person_id)]

    @router.get(
        "/people/{person_id}/evaluation",
        tags=["suggestions"],
        summary="Every open opening with each hard rule's verdict (why not?)",
    )
    async def evaluation(person_id: uuid.UUID) -> list[EvaluationOut]:
        _, evaluations = await h.evaluate_person(person_id)
        return [
            EvaluationOut(
                opening_id=e.opening.opening_id,
                title=e.opening.title,
                employer=e.opening.employer,
                distance_km=e.distance_km,
                eligible=e.eligible,
                rules=[RuleOut(rule=r.rule, passed=r.passed, reason=r.reason) for r in e.results],
            )
            for e in evaluations
        ]

    return router
