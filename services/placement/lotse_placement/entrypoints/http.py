"""placement's HTTP routes: translate requests into handler calls, nothing more."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from lotse_placement.access import PlacementAccess, is_partner, source_for
from lotse_placement.domain.caseload import OpeningCandidate, OpenSuggestion, PersonOverview
from lotse_placement.domain.importing import ParsedFeed
from lotse_placement.domain.importing.feed import FeedFormat, parse_feed
from lotse_placement.domain.model import (
    Opening,
    OpeningFilter,
    OpeningStatus,
    OpeningVersion,
)
from lotse_placement.domain.pipeline import Case, ClosingReason, Stage
from lotse_placement.domain.reporting import PlacementReport, report_csv
from lotse_placement.handlers import PlacementHandlers
from lotse_placement.imports import ImportHandlers
from lotse_placement.pipeline import PipelineHandlers
from lotse_placement.views import PlacementViews
from lotse_shared.auth import READERS, STAFF, Principal, Role
from lotse_shared.auth.audit import concerning
from lotse_shared.auth.http import Authenticator
from lotse_shared.contracts.common import CefrLevel, OpeningType, Sector
from lotse_shared.contracts.partner import OpeningReportedV1
from lotse_shared.contracts.placement import ImportCompletedV1
from lotse_shared.errors import RuleViolation
from lotse_shared.http import MAX_OFFSET
from lotse_shared.places import find_place
from lotse_shared.routes import api_router

Source = Annotated[
    str, Query(pattern=r"^[a-z0-9-]{2,64}$", description="The partner, e.g. ihk-kassel.")
]


class OpeningRequest(OpeningReportedV1):
    """An opening entered over HTTP; ``source`` names who sent it."""

    source: str = Field(default="caseworker", min_length=1, max_length=64)


class OpeningDetail(Opening):
    history: list[OpeningVersion] = Field(
        default_factory=list, description="Earlier versions, oldest first."
    )


class PeopleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=500, description="The people (a caseload page), 1 to 500."
    )


class OpenSuggestionPage(BaseModel):
    total: int = Field(description="Open suggestions in all, beyond this page too.")
    items: list[OpenSuggestion]
    limit: int
    offset: int


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
    decision: Literal["accepted", "dismissed", "withdrawn"] | None = Field(
        default=None,
        description="What the caseworker decided (withdrawn: the person withdrew consent "
        "to matching); empty while open.",
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


@dataclass(frozen=True)
class RouteContext:
    """What every group of routes needs: the use cases, the access rules and views, the
    callers each route admits, and the access checks that also name the person for the
    audit log."""

    h: PlacementHandlers
    pipeline: PipelineHandlers
    imports: ImportHandlers
    access: PlacementAccess
    views: PlacementViews
    staff: Any
    readers: Any
    district_wide: Any
    publishers: Any
    opening_readers: Any
    importers: Any

    async def person_seen_by(
        self, viewer: Principal, person_id: uuid.UUID, request: Request
    ) -> None:
        await self.access.person(viewer, person_id)
        concerning(request, person_id=person_id)

    async def case_seen_by(self, viewer: Principal, case_id: uuid.UUID, request: Request) -> Case:
        case = await self.access.case(viewer, case_id)
        concerning(request, person_id=case.person_id)
        return case


def make_router(
    h: PlacementHandlers,
    pipeline: PipelineHandlers,
    imports: ImportHandlers,
    access: PlacementAccess,
    views: PlacementViews,
    auth: Authenticator,
) -> APIRouter:
    """Who may call what: staff (caseworker, coordinator, admin) see the people they may
    see (a caseworker their own cases, the others their district; anyone else's person
    or case answers 404); mentors read what a caseworker reads of the people they
    accompany, and the district's openings, and change nothing; partners publish and
    import openings under their own name and read no personal data; the report is for
    coordinators and admins."""
    c = RouteContext(
        h=h,
        pipeline=pipeline,
        imports=imports,
        access=access,
        views=views,
        staff=auth.require(*STAFF),
        readers=auth.require(*READERS),
        district_wide=auth.require(Role.COORDINATOR, Role.ADMIN),
        publishers=auth.require(Role.PARTNER, *STAFF),
        opening_readers=auth.require(Role.PARTNER, *READERS),
        importers=auth.require(Role.PARTNER, Role.COORDINATOR, Role.ADMIN),
    )
    router = api_router()
    for routes in (_openings, _suggestions, _pipeline, _report, _imports):
        routes(router, c)
    return router


def _openings(router: APIRouter, c: RouteContext) -> None:
    """Openings: partners publish and close their own; readers of the district search them."""

    @router.post(
        "/openings",
        status_code=status.HTTP_200_OK,
        tags=["openings"],
        summary="Publish or update an opening (same source and source_ref: update)",
    )
    async def publish_opening(body: OpeningRequest, viewer: Principal = c.publishers) -> Opening:
        report = OpeningReportedV1.model_validate(body.model_dump(exclude={"source"}))
        if report.district_id != viewer.district_id:
            raise RuleViolation("district_id", f"you publish for {viewer.district_id} only")
        source = source_for(viewer, body.source if "source" in body.model_fields_set else None)
        return await c.h.report_opening(report, source)

    @router.get(
        "/openings",
        tags=["openings"],
        summary="The district's openings (a partner's: its own), newest first, filtered",
    )
    async def list_openings(
        status_filter: Annotated[OpeningStatus | None, Query(alias="status")] = None,
        opening_type: OpeningType | None = None,
        sector: Sector | None = None,
        municipality: Annotated[
            str | None, Query(max_length=100, description="The town the opening is in.")
        ] = None,
        german_level: Annotated[
            CefrLevel | None,
            Query(description="Openings asking for at most this level (or for none)."),
        ] = None,
        starts_by: Annotated[
            date | None,
            Query(description="Starting on or before this day (no start date: at once)."),
        ] = None,
        q: Annotated[
            str | None,
            Query(max_length=100, description="Part of the title or employer, any case."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        viewer: Principal = c.opening_readers,
    ) -> list[Opening]:
        place = find_place(municipality) if municipality else None
        which = OpeningFilter(
            status=status_filter,
            opening_type=opening_type,
            sector=sector,
            municipality=place.name if place else municipality,
            german_level=german_level,
            starts_by=starts_by,
            text=q or None,
        )
        return await c.h.list_openings(
            viewer,
            which,
            limit=limit,
            offset=offset,
            source=viewer.partner_id if is_partner(viewer) else None,
        )

    @router.get(
        "/openings/{opening_id}",
        tags=["openings"],
        summary="One opening, with its earlier versions",
        description="history: each earlier version, oldest first, with when it was received, "
        "when the partner changed it (source_modified_at), whether it was ever applied (an "
        "older version arriving after a newer one is kept but not applied) and its values "
        "where they differ from the opening now.",
    )
    async def get_opening(
        opening_id: uuid.UUID, viewer: Principal = c.opening_readers
    ) -> OpeningDetail:
        opening = await c.access.opening(viewer, opening_id)
        history = await c.views.opening_history(opening)
        return OpeningDetail(**opening.model_dump(), history=history)

    @router.get(
        "/openings/{opening_id}/candidates",
        tags=["openings"],
        summary="The caller's people this opening suits best",
        description="Of the people the caller may see (a caseworker or mentor: their "
        "own; coordinators: the district), those who can reach the opening and consent to "
        "matching, rated as suggestions are: the eligible by score first, then near "
        "misses by the rules they fail.",
    )
    async def candidates(
        opening_id: uuid.UUID,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        viewer: Principal = c.readers,
    ) -> list[OpeningCandidate]:
        opening = await c.access.opening(viewer, opening_id)
        return await c.h.candidates_for_opening(opening, viewer, limit=limit)

    @router.post("/openings/{opening_id}/close", tags=["openings"])
    async def close_opening(
        opening_id: uuid.UUID, body: CloseRequest, viewer: Principal = c.publishers
    ) -> Opening:
        opening = await c.access.opening(viewer, opening_id)
        return await c.h.close_opening(opening.source, opening.source_ref, body.reason)


def _suggestions(router: APIRouter, c: RouteContext) -> None:
    """A person's suggestions, the caseload overview and "why not?"."""

    @router.get(
        "/people/{person_id}/suggestions",
        tags=["suggestions"],
        summary="The person's suggestion sets, newest first",
    )
    async def suggestions(
        person_id: uuid.UUID, request: Request, viewer: Principal = c.readers
    ) -> list[SuggestionSetOut]:
        await c.person_seen_by(viewer, person_id, request)
        sets, decisions = await c.views.suggestion_sets(person_id)
        return [_set_out(d, decisions) for d in sets]

    @router.get(
        "/people/{person_id}/suggestions/open",
        tags=["suggestions"],
        summary="Every open suggestion of the person, once each, best first",
        description="Across all suggestion sets, each opening once with the latest "
        "set's score and reasons; accepted, dismissed or withdrawn ones and closed "
        "openings are left out.",
    )
    async def open_suggestions(
        person_id: uuid.UUID,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        viewer: Principal = c.readers,
    ) -> OpenSuggestionPage:
        await c.person_seen_by(viewer, person_id, request)
        found = await c.h.open_suggestions(person_id)
        return OpenSuggestionPage(
            total=len(found), items=found[offset : offset + limit], limit=limit, offset=offset
        )

    @router.post(
        "/people/overview",
        tags=["suggestions"],
        summary="Where each of many people stands in placement (a caseload page)",
        description="For those of the given people the caller may see (anyone else's are "
        "left out silently): German, permit, a running course, open suggestions and the "
        "best score, the furthest stage and open cases. One call, a fixed number of "
        "queries.",
    )
    async def overview(body: PeopleQuery, viewer: Principal = c.readers) -> list[PersonOverview]:
        return await c.h.overviews(body.person_ids, viewer)

    @router.get(
        "/people/{person_id}/evaluation",
        tags=["suggestions"],
        summary="Open openings around the person with each hard rule's verdict (why not?)",
        description="Eligible openings first, then near misses by the number of rules they "
        "fail and distance; openings up to 25 km beyond the person's reach are included.",
    )
    async def evaluation(
        person_id: uuid.UUID,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        viewer: Principal = c.readers,
    ) -> list[EvaluationOut]:
        await c.person_seen_by(viewer, person_id, request)
        _, evaluations = await c.h.evaluate_person(person_id, limit=limit)
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


def _pipeline(router: APIRouter, c: RouteContext) -> None:
    """Taking a suggestion up, and the case it opens, to its end."""

    @router.post(
        "/people/{person_id}/suggestions/{opening_id}/accept",
        tags=["pipeline"],
        summary="Accept a suggestion: propose it to the person; a placement case opens",
    )
    async def accept(
        person_id: uuid.UUID,
        opening_id: uuid.UUID,
        body: AcceptRequest,
        request: Request,
        viewer: Principal = c.staff,
    ) -> Case:
        await c.person_seen_by(viewer, person_id, request)
        return await c.pipeline.accept_suggestion(person_id, opening_id, body.note)

    @router.post(
        "/people/{person_id}/suggestions/{opening_id}/dismiss",
        tags=["pipeline"],
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Dismiss a suggestion with a reason; it is not suggested again",
    )
    async def dismiss(
        person_id: uuid.UUID,
        opening_id: uuid.UUID,
        body: DismissRequest,
        request: Request,
        viewer: Principal = c.staff,
    ) -> None:
        await c.person_seen_by(viewer, person_id, request)
        await c.pipeline.dismiss_suggestion(person_id, opening_id, body.reason)

    @router.get("/people/{person_id}/cases", tags=["pipeline"], summary="The person's cases")
    async def cases_of(
        person_id: uuid.UUID, request: Request, viewer: Principal = c.readers
    ) -> list[Case]:
        await c.person_seen_by(viewer, person_id, request)
        return await c.views.cases_of(person_id)

    @router.get("/cases/{case_id}", tags=["pipeline"], summary="A case with its history")
    async def get_case(case_id: uuid.UUID, request: Request, viewer: Principal = c.readers) -> Case:
        return await c.case_seen_by(viewer, case_id, request)

    @router.post(
        "/cases/{case_id}/stage",
        tags=["pipeline"],
        summary="Record the next stage (interview, internship/apprenticeship/job started, "
        "still employed after 3 and 6 months)",
    )
    async def advance(
        case_id: uuid.UUID, body: StageRequest, request: Request, viewer: Principal = c.staff
    ) -> Case:
        await c.case_seen_by(viewer, case_id, request)
        return await c.pipeline.advance_case(case_id, body.stage, body.on, body.note)

    @router.post("/cases/{case_id}/close", tags=["pipeline"], summary="Close a case with a reason")
    async def close_case(
        case_id: uuid.UUID, body: CloseCaseRequest, request: Request, viewer: Principal = c.staff
    ) -> Case:
        await c.case_seen_by(viewer, case_id, request)
        return await c.pipeline.close_case(case_id, body.reason, body.on, body.note)


def _report(router: APIRouter, c: RouteContext) -> None:
    """The district's placement figures, for coordinators and admins."""

    @router.get(
        "/reports/placement",
        tags=["reports"],
        summary="Cases per stage, sector and municipality, and the headline figure",
        description="`format=csv` gives `section;key;stage;count` rows for a spreadsheet.",
        response_model=PlacementReport,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def report(
        fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
        viewer: Principal = c.district_wide,
    ) -> PlacementReport | Response:
        district = viewer.district_id or ""
        result = await c.pipeline.report(district)
        if fmt == "csv":
            return Response(
                report_csv(result),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="placement-{district}.csv"'},
            )
        return result

    # --- imports: openings in partners' own formats (docs/imports.md) ---------------------


def _imports(router: APIRouter, c: RouteContext) -> None:
    """Partners' lists in their own formats, by HTTP."""

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
        source: Source | None = None,
        full_feed: bool = False,
        angebotsart: Annotated[
            int | None,
            Query(description="The search's angebotsart (1, 2, 4, 34) for untyped records."),
        ] = None,
        import_id: uuid.UUID | None = None,
        row_offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        viewer: Principal = c.importers,
    ) -> ImportCompletedV1:
        feed = parse_feed("jobsuche", document, angebotsart).shifted(row_offset)
        sent_by = source_for(viewer, source, default="ba-jobsuche")
        return await _import(feed, sent_by, "jobsuche", full_feed, import_id, viewer)

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
        source: Source | None = None,
        full_feed: bool = False,
        import_id: uuid.UUID | None = None,
        row_offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        viewer: Principal = c.importers,
    ) -> ImportCompletedV1:
        feed = parse_feed("csv", await request.body()).shifted(row_offset)
        return await _import(
            feed, source_for(viewer, source, default=None), "csv", full_feed, import_id, viewer
        )

    async def _import(
        feed: ParsedFeed,
        source: str,
        fmt: FeedFormat,
        full_feed: bool,
        import_id: uuid.UUID | None,
        viewer: Principal,
    ) -> ImportCompletedV1:
        district = viewer.district_id
        if import_id is None:
            return await c.imports.import_feed(
                feed, source, fmt=fmt, full_feed=full_feed, district_id=district
            )
        if full_feed:
            raise RuleViolation(
                "full_feed", "a batch cannot be a full feed; say so when completing the import"
            )
        await c.access.import_record(viewer, import_id, missing_ok=True)
        return await c.imports.import_batch(
            feed, source, fmt=fmt, import_id=import_id, district_id=district
        )

    @router.post(
        "/imports/{import_id}/complete",
        tags=["imports"],
        summary="End an import sent in batches; full_feed closes what no batch named",
    )
    async def complete_import(
        import_id: uuid.UUID, full_feed: bool = False, viewer: Principal = c.importers
    ) -> ImportCompletedV1:
        await c.access.import_record(viewer, import_id)
        return await c.imports.complete_import(import_id, full_feed=full_feed)

    @router.get("/imports/{import_id}", tags=["imports"], summary="An import's totals so far")
    async def import_status(
        import_id: uuid.UUID, viewer: Principal = c.importers
    ) -> ImportCompletedV1:
        await c.access.import_record(viewer, import_id)
        return await c.imports.import_status(import_id)
