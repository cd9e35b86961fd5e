"""placement's HTTP routes: translate requests into handler calls, nothing more."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from lotse_placement.domain.importing import ParsedFeed
from lotse_placement.domain.model import Opening, OpeningStatus
from lotse_placement.domain.pipeline import Case, ClosingReason, Stage
from lotse_placement.domain.reporting import PlacementReport, report_csv
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
    forecast: bool = False
    decision: Literal["accepted", "dismissed"] | None = Field(
        default=None, description="What the caseworker decided; empty while open."
    )


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


class AcceptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class DismissRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500, examples=["Arbeitszeiten passen nicht"])


class StageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Stage
    on: date = Field(description="When it happened (the interview, the first day).")
    note: str = Field(default="", max_length=2000)


class CloseCaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: ClosingReason
    on: date
    note: str = Field(default="", max_length=2000)


def _set_out(doc: dict[str, Any], decisions: dict[str, str]) -> SuggestionSetOut:
    return SuggestionSetOut(
        suggestion_set_id=doc["_id"],
        person_id=doc["person_id"],
        trigger=doc["trigger"],
        german_level=doc.get("german_level"),
        created_at=doc["created_at"],
        suggestions=[
            SuggestionOut.model_validate(s | {"decision": decisions.get(str(s["opening_id"]))})
            for s in doc["suggestions"]
        ],
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
        decisions = await h.repo.decisions_of(person_id)
        return [_set_out(d, decisions) for d in await h.repo.sets_of(person_id)]

    @router.get(
        "/people/{person_id}/evaluation",
        tags=["suggestions"],
        summary="Open openings around the person with each hard rule's verdict (why not?)",
        description="Eligible openings first, then near misses by the number of rules they "
        "fail and distance; openings up to 25 km beyond the person's reach are included.",
    )
    async def evaluation(
        person_id: uuid.UUID, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[EvaluationOut]:
        _, evaluations = await h.evaluate_person(person_id, limit=limit)
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

    @router.post(
        "/people/{person_id}/suggestions/{opening_id}/accept",
        tags=["pipeline"],
        summary="Accept a suggestion: propose it to the person; a placement case opens",
    )
    async def accept(person_id: uuid.UUID, opening_id: uuid.UUID, body: AcceptRequest) -> Case:
        return await h.accept_suggestion(person_id, opening_id, body.note)

    @router.post(
        "/people/{person_id}/suggestions/{opening_id}/dismiss",
        tags=["pipeline"],
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Dismiss a suggestion with a reason; it is not suggested again",
    )
    async def dismiss(person_id: uuid.UUID, opening_id: uuid.UUID, body: DismissRequest) -> None:
        await h.dismiss_suggestion(person_id, opening_id, body.reason)

    @router.get("/people/{person_id}/cases", tags=["pipeline"], summary="The person's cases")
    async def cases_of(person_id: uuid.UUID) -> list[Case]:
        return await h.repo.cases_of(person_id)

    @router.get("/cases/{case_id}", tags=["pipeline"], summary="A case with its history")
    async def get_case(case_id: uuid.UUID) -> Case:
        case = await h.repo.case(case_id)
        if case is None:
            raise NotFound(f"case {case_id} not found")
        return case

    @router.post(
        "/cases/{case_id}/stage",
        tags=["pipeline"],
        summary="Record the next stage (interview, internship/apprenticeship/job started, "
        "still employed after 3 and 6 months)",
    )
    async def advance(case_id: uuid.UUID, body: StageRequest) -> Case:
        return await h.advance_case(case_id, body.stage, body.on, body.note)

    @router.post("/cases/{case_id}/close", tags=["pipeline"], summary="Close a case with a reason")
    async def close_case(case_id: uuid.UUID, body: CloseCaseRequest) -> Case:
        return await h.close_case(case_id, body.reason, body.on, body.note)

    @router.get(
        "/reports/placement",
        tags=["reports"],
        summary="Cases per stage, sector and municipality, and the headline figure",
        description="`format=csv` gives `section;key;stage;count` rows for a spreadsheet.",
        response_model=PlacementReport,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def report(
        district: Annotated[str, Query(min_length=1, max_length=64)] = "kassel",
        fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    ) -> PlacementReport | Response:
        result = await h.report(district)
        if fmt == "csv":
            return Response(
                report_csv(result),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="placement-{district}.csv"'},
            )
        return result

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
