"""placement's HTTP routes: translate requests into handler calls, nothing more."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from lotse_placement.domain.importing import ParsedFeed
from lotse_placement.domain.model import Opening, OpeningStatus
from lotse_placement.handlers import FeedFormat, PlacementHandlers, parse_feed
from lotse_shared.contracts.partner import OpeningReportedV1
from lotse_shared.contracts.placement import ImportCompletedV1
from lotse_shared.errors import NotFound, RuleViolation

Source = Annotated[
    str, Query(pattern=r"^[a-z0-9-]{2,64}$", description="The partner, e.g. ihk-kassel.")
]


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

    # --- imports: openings in partners' own formats (docs/imports.md) ---------------------
    @router.post(
        "/imports/jobsuche",
        tags=["imports"],
        summary="Import openings in the employment agency's Jobsuche format",
        description="Search results, one job detail or a list of them, as JSON. Without "
        "import_id the feed is imported at once (full_feed closes the source's open "
        "openings it does not name); with import_id it is one batch of an import that "
        "POST /imports/{import_id}/complete ends.",
    )
    async def import_jobsuche(
        document: Annotated[JsonValue, Body()],
        source: Source = "ba-jobsuche",
        full_feed: bool = False,
        angebotsart: Annotated[
            int | None,
            Query(description="The search's angebotsart (1, 2, 4, 34) for untyped records."),
        ] = None,
        import_id: uuid.UUID | None = None,
        row_offset: Annotated[int, Query(ge=0)] = 0,
    ) -> ImportCompletedV1:
        feed = parse_feed("jobsuche", document, angebotsart).shifted(row_offset)
        return await _import(feed, source, "jobsuche", full_feed, import_id)

    @router.post(
        "/imports/csv",
        tags=["imports"],
        summary="Import openings from a chamber's CSV list (IHK, HWK, VSB)",
        description="text/csv, UTF-8, ';' or ',' separated; the columns are in "
        "docs/imports.md. A wrong header refuses the whole file (422 naming the column).",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    )
    async def import_csv(
        request: Request,
        source: Source,
        full_feed: bool = False,
        import_id: uuid.UUID | None = None,
        row_offset: Annotated[int, Query(ge=0)] = 0,
    ) -> ImportCompletedV1:
        feed = parse_feed("csv", await request.body()).shifted(row_offset)
        return await _import(feed, source, "csv", full_feed, import_id)

    async def _import(
        feed: ParsedFeed,
        source: str,
        fmt: FeedFormat,
        full_feed: bool,
        import_id: uuid.UUID | None,
    ) -> ImportCompletedV1:
        if import_id is None:
            return await h.import_feed(feed, source, fmt=fmt, full_feed=full_feed)
        if full_feed:
            raise RuleViolation(
                "full_feed", "a batch cannot be a full feed; say so when completing the import"
            )
        return await h.import_batch(feed, source, fmt=fmt, import_id=import_id)

    @router.post(
        "/imports/{import_id}/complete",
        tags=["imports"],
        summary="End an import sent in batches; full_feed closes what no batch named",
    )
    async def complete_import(import_id: uuid.UUID, full_feed: bool = False) -> ImportCompletedV1:
        return await h.complete_import(import_id, full_feed=full_feed)

    @router.get("/imports/{import_id}", tags=["imports"], summary="An import's totals so far")
    async def import_status(import_id: uuid.UUID) -> ImportCompletedV1:
        return await h.import_status(import_id)

    return router
