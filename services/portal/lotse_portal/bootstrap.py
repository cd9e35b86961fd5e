"""The composition root: ``create_app(settings, overrides)`` builds the portal.

Nothing here does I/O at import; the connection pool to the services opens with the
app's lifespan. Tests pass ``Overrides`` (a transport, say) instead of patching."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from lotse_shared.metrics import Metrics

from .backend import (
    SERVICE_LABELS,
    CallLog,
    NotYours,
    Refused,
    Services,
    SignedOut,
    Unavailable,
)
from .entrypoints.http import BadCsrf, make_pages_router
from .rendering import Pages
from .sessions import EncryptedSessionMiddleware
from .settings import PortalSettings
from .signin import PROVIDER, NeedsSignIn, User, current_user, make_oauth, make_signin_router

log = logging.getLogger(__name__)


@dataclass
class Overrides:
    services_transport: httpx.AsyncBaseTransport | None = None


def create_app(settings: PortalSettings, overrides: Overrides | None = None) -> FastAPI:
    overrides = overrides or Overrides()
    services = Services(
        {
            "intake": settings.intake_url.rstrip("/"),
            "courses": settings.courses_url.rstrip("/"),
            "placement": settings.placement_url.rstrip("/"),
            "notifications": settings.notifications_url.rstrip("/"),
        },
        timeout_s=settings.service_timeout_s,
        transport=overrides.services_transport,
    )
    pages = Pages()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await services.close()

    app = FastAPI(
        title="Lotse portal",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.mount(
        "/static", StaticFiles(directory=str(files("lotse_portal") / "static")), name="static"
    )
    oidc_client = make_oauth(settings).create_client(PROVIDER)
    app.state.oidc_client = oidc_client  # current_user renews tokens through it
    app.include_router(make_signin_router(oidc_client))
    app.include_router(make_pages_router(services, pages))

    metrics = Metrics(settings.service_name)
    app.middleware("http")(metrics.count_request)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return metrics.exposition()

    # the portal keeps no connection of its own: alive is ready (the services it calls
    # answer for themselves, and a page says which part is unavailable)
    @app.get("/livez", include_in_schema=False)
    @app.get("/readyz", include_in_schema=False)
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "service": settings.service_name})

    async def user_or_none(request: Request) -> User | None:
        """Who to show in an error page's header, if anyone (never a reason to fail)."""
        try:
            return await current_user(request)
        except Exception:
            return None

    @app.exception_handler(NeedsSignIn)
    async def sign_in(request: Request, exc: NeedsSignIn) -> Response:
        return RedirectResponse(f"/auth/login?next={quote(exc.next_url)}", status_code=303)

    @app.exception_handler(SignedOut)
    async def token_refused(request: Request, exc: SignedOut) -> Response:
        request.session.pop("user", None)
        here = request.url.path if request.method == "GET" else "/"
        return RedirectResponse(f"/auth/login?next={quote(here)}", status_code=303)

    @app.exception_handler(NotYours)
    async def not_yours(request: Request, exc: NotYours) -> HTMLResponse:
        return pages.render(request, "not_yours.html", await user_or_none(request), 404)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> HTMLResponse:
        label = SERVICE_LABELS.get(exc.service, exc.service)
        return pages.render(
            request,
            "unavailable.html",
            await user_or_none(request),
            503,
            part=label,
        )

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> HTMLResponse:
        return pages.render(
            request, "refused.html", await user_or_none(request), 422, errors=exc.errors
        )

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> HTMLResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return pages.render(request, "failed.html", await user_or_none(request), 500)

    @app.exception_handler(BadCsrf)
    async def bad_csrf(request: Request, exc: BadCsrf) -> HTMLResponse:
        return pages.render(request, "bad_form.html", await user_or_none(request), 403)

    @app.middleware("http")
    async def count_calls(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """How many service calls the page made, and its server time, in headers (the
        benchmark reads them; a browser's developer tools show them)."""
        request.state.calls = CallLog()
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Lotse-Api-Calls"] = str(len(request.state.calls))
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Referrer-Policy"] = "same-origin"
        return response

    # outermost, so every handler above sees request.session
    app.add_middleware(
        EncryptedSessionMiddleware, key=settings.session_key, max_age_s=settings.session_max_age_s
    )
    return app
