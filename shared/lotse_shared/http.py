"""The HTTP side every service shares: health, AsyncAPI, errors as problem details."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from faststream.specification import AsyncAPI, get_asyncapi_html
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import tracing
from .auth import Principal, Role
from .auth.audit import SUBJECT_KEYS, AuditEntry, AuditLog
from .auth.http import API_KEY_SCHEME, Authenticator
from .contracts.partner_asyncapi import partner_document
from .errors import Conflict, Forbidden, NotFound, RuleViolation
from .ops.dead_letters import DeadLetterDesk
from .ops.http import make_ops_router
from .ops.partner_contract import html_page
from .persistence.retry import is_transient
from .problems import (
    declare_problem_responses,
    field_problem,
    from_errors,
    problem,
    summary,
    title_of,
)
from .service import ServiceRuntime, ping_broker, ping_database

log = logging.getLogger("lotse.http")

# Paging offsets (and an import's row offset) are capped: MongoDB takes 8-byte integers
# only, and a larger number reached the driver unchecked as a 500.
MAX_OFFSET = 1_000_000_000


def _api_keys_for_partners_only(app: FastAPI) -> None:
    """FastAPI hands every scheme of a dependency the endpoint's roles; an API key
    only ever stands for a partner, so its requirement says so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for ops in schema.get("paths", {}).values():
                for op in ops.values():
                    for requirement in op.get("security", []) if isinstance(op, dict) else []:
                        if API_KEY_SCHEME in requirement:
                            requirement[API_KEY_SCHEME] = [Role.PARTNER.value]
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_responses_declared(app: FastAPI) -> None:
    """Every operation's error answers (401, 403, 404, 409, 422, 503) in its OpenAPI
    description, as problem details, declared here once rather than on each route."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            declare_problem_responses(generate())
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def create_http_app(
    rt: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    lifespan: Callable[[], AbstractAsyncContextManager[None]],
    auth: Authenticator,
) -> FastAPI:
    audit = AuditLog(rt.db, rt.settings.service_name)

    @asynccontextmanager
    async def app_lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with lifespan():
            await audit.ensure_indexes()
            yield

    app = FastAPI(title=title, description=description, version="1.0", lifespan=app_lifespan)
    if rt.settings.metrics:
        app.middleware("http")(rt.metrics.count_request)
    if tracing.enabled():
        FastAPIInstrumentor.instrument_app(app, excluded_urls="livez,readyz,healthz,metrics")
    _api_keys_for_partners_only(app)
    _problem_responses_declared(app)
    _operations(app, rt, title, description)
    _audit_trail(app, audit, auth)
    _problem_details(app)
    for router in routers:
        app.include_router(router)
    desk = DeadLetterDesk(rt.settings.rabbit_url, rt.settings.namespace)
    app.include_router(make_ops_router(desk, rt.settings.service_name, auth))
    return app


def _operations(app: FastAPI, rt: ServiceRuntime, title: str, description: str) -> None:
    """Health, and the machine-readable documents: the service's events and the
    partners' contract."""
    asyncapi = AsyncAPI(
        rt.broker,
        title=f"{title} — events",
        version="1.0",
        description=description,
    )

    @app.get(
        "/livez",
        tags=["operations"],
        summary="Alive: the process and its event loop answer (never asks the broker or "
        "the database, so an outage of theirs does not get the process restarted)",
    )
    async def livez() -> JSONResponse:
        return JSONResponse({"status": "alive", "service": rt.settings.service_name})

    async def readyz() -> JSONResponse:
        broker_ok = await ping_broker(rt)
        db_ok = await ping_database(rt)
        consuming = bool(rt.broker.running)
        ready = broker_ok and db_ok and consuming
        return JSONResponse(
            {
                "status": "ready" if ready else "unready",
                "service": rt.settings.service_name,
                "broker": "up" if broker_ok else "down",
                "database": "up" if db_ok else "down",
                "consumers": "started" if consuming else "stopped",
            },
            status_code=200 if ready else 503,
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics (text exposition format); see docs/operations.md",
        response_class=PlainTextResponse,
    )
    async def metrics() -> Response:
        with contextlib.suppress(PyMongoError):  # a database outage must not hide the rest
            rt.metrics.outbox(*await rt.relay.waiting())
        return rt.metrics.exposition()

    ready_summary = "Ready: broker and database answer and the consumers are started"
    app.get("/readyz", tags=["operations"], summary=ready_summary)(readyz)
    app.get("/healthz", tags=["operations"], summary="Same as /readyz", deprecated=True)(readyz)

    @app.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI 3 document of the events")
    async def asyncapi_json() -> Response:
        return Response(asyncapi.to_specification().to_json(), media_type="application/json")

    @app.get(
        "/asyncapi",
        tags=["operations"],
        summary="Human-readable AsyncAPI page",
        response_class=HTMLResponse,  # documented as text/html, not JSON
    )
    async def asyncapi_page() -> HTMLResponse:
        return HTMLResponse(get_asyncapi_html(asyncapi.to_specification(), try_it_out_path=None))

    # built on first request: generating it takes pydantic's schemas of every partner event
    partner_contract = functools.cache(lambda: partner_document(rt.settings.namespace))

    @app.get(
        "/partners/asyncapi.json",
        tags=["partners"],
        summary="The partners' AsyncAPI 3 document: what to publish, from the partner's side",
    )
    async def partner_asyncapi_json() -> Response:
        return Response(partner_contract().to_json(), media_type="application/json")

    @app.get(
        "/partners/asyncapi",
        tags=["partners"],
        summary="The partners' AsyncAPI document as a page",
        response_class=HTMLResponse,
    )
    async def partner_asyncapi_page() -> HTMLResponse:
        return HTMLResponse(html_page(partner_contract()))


def _audit_trail(app: FastAPI, audit: AuditLog, auth: Authenticator) -> None:
    """Every answer to a signed-in caller is recorded before it leaves; admins read the
    trail of their district."""

    @app.middleware("http")
    async def audit_trail(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # public, or no valid token: nobody to name
            return response
        subjects = {k: str(v) for k, v in request.path_params.items() if k in SUBJECT_KEYS}
        subjects.update(getattr(request.state, "audit_subjects", {}))
        for key in SUBJECT_KEYS:
            if key in request.query_params:
                subjects.setdefault(key, request.query_params[key])
        path = request.url.path
        for value, replacement in getattr(request.state, "audit_redactions", {}).items():
            path = path.replace(value, replacement)
            subjects = {k: replacement if v == value else v for k, v in subjects.items()}
        entry = audit.entry(
            principal,
            method=request.method,
            endpoint=getattr(request.scope.get("route"), "path", request.url.path),
            path=path,
            subjects=subjects,
            status=response.status_code,
        )
        try:
            await audit.append(entry)
        except Exception:
            # no answer with personal data leaves unrecorded
            log.exception("audit log unavailable; answering 503")
            return problem(request, 503, "the audit log is unavailable; try again")
        return response

    admin_only = auth.require(Role.ADMIN)  # a default: annotations here are strings

    @app.get(
        "/audit",
        tags=["audit"],
        summary="Who read or changed what in this service (admins; their district only)",
    )
    async def audit_entries(
        person_id: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        admin: Principal = admin_only,
    ) -> list[AuditEntry]:
        if admin.district_id is None:
            return []
        return await audit.query(
            district_id=admin.district_id,
            person_id=person_id,
            user=user,
            since=since,
            limit=limit,
            offset=offset,
        )


def _problem_details(app: FastAPI) -> None:
    """Every error as RFC 9457 problem details (see problems.py)."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = from_errors(exc.errors())
        return problem(request, 422, summary(errors), errors=errors)

    @app.exception_handler(ValidationError)
    async def invalid(request: Request, exc: ValidationError) -> Response:
        # a rule checked after merging a change (PATCH): its fields are the body's
        errors = from_errors(exc.errors(include_url=False), prefix=("body",))
        return problem(request, 422, summary(errors), errors=errors)

    @app.exception_handler(RuleViolation)
    async def rule_violation(request: Request, exc: RuleViolation) -> Response:
        errors = [field_problem(["body", *exc.field.split(".")], exc.reason, "value_error")]
        return problem(request, 422, summary(errors), errors=errors)

    @app.exception_handler(PyMongoError)
    async def database_error(request: Request, exc: PyMongoError) -> Response:
        # a write conflict that lost every retry (RetryingRoute): the caller may try again
        if not is_transient(exc):
            raise exc
        log.warning("%s %s: write conflicts on every attempt", request.method, request.url.path)
        return problem(
            request,
            503,
            "the data changed concurrently on every attempt; try again",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return problem(request, 404, str(exc))

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return problem(request, 403, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> Response:
        return problem(request, 409, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # 401/403 from the authenticator, and Starlette's own 404s and 405s
        headers = getattr(exc, "headers", None)
        if exc.status_code in (204, 304):  # answers without a body
            return Response(status_code=exc.status_code, headers=headers)
        detail = exc.detail if isinstance(exc.detail, str) else title_of(exc.status_code)
        return problem(request, exc.status_code, detail, headers=headers)
