"""The HTTP side every service shares: health, AsyncAPI, error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from faststream.specification import AsyncAPI, get_asyncapi_html
from pydantic import ValidationError

from .errors import Conflict, Forbidden, NotFound, RuleViolation
from .service import ServiceRuntime, ping_broker, ping_database


def create_http_app(
    rt: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    lifespan: Callable[[], AbstractAsyncContextManager[None]],
) -> FastAPI:
    @asynccontextmanager
    async def app_lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with lifespan():
            yield

    app = FastAPI(title=title, description=description, version="1.0", lifespan=app_lifespan)
    asyncapi = AsyncAPI(
        rt.broker,
        title=f"{title} — events",
        version="1.0",
        description=description,
    )

    @app.get("/healthz", tags=["operations"], summary="Ready while broker and database answer")
    async def healthz() -> JSONResponse:
        broker_ok = await ping_broker(rt)
        db_ok = await ping_database(rt)
        ready = broker_ok and db_ok
        return JSONResponse(
            {
                "status": "ready" if ready else "unready",
                "service": rt.settings.service_name,
                "broker": "up" if broker_ok else "down",
                "database": "up" if db_ok else "down",
            },
            status_code=200 if ready else 503,
        )

    @app.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI 3 document of the events")
    async def asyncapi_json() -> Response:
        return Response(asyncapi.to_specification().to_json(), media_type="application/json")

    @app.get("/asyncapi", tags=["operations"], summary="Human-readable AsyncAPI page")
    async def asyncapi_page() -> HTMLResponse:
        return HTMLResponse(get_asyncapi_html(asyncapi.to_specification(), try_it_out_path=None))

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: ValidationError) -> JSONResponse:
        # A rule checked after merging a change (PATCH): name each field like FastAPI does.
        return JSONResponse(
            {
                "detail": [
                    {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False)
                ]
            },
            status_code=422,
        )

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RuleViolation)
    async def rule_violation(_: Request, exc: RuleViolation) -> JSONResponse:
        return JSONResponse(
            {
                "detail": [
                    {
                        "loc": ["body", *exc.field.split(".")],
                        "msg": exc.reason,
                        "type": "value_error",
                    }
                ]
            },
            status_code=422,
        )

    for router in routers:
        app.include_router(router)
    return app
