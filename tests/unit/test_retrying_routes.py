"""HTTP routes run their use case again when it lost a write conflict."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pymongo.errors import OperationFailure

from lotse_shared.routes import api_router


def conflict() -> OperationFailure:
    return OperationFailure(
        "WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"]}
    )


def app_failing(times: int, error: Exception) -> tuple[FastAPI, list[dict[str, str]]]:
    calls: list[dict[str, str]] = []
    router = api_router()

    @router.post("/things")
    async def create(body: dict[str, str]) -> dict[str, int]:
        calls.append(body)
        if len(calls) <= times:
            raise error
        return {"attempts": len(calls)}

    app = FastAPI()
    app.include_router(router)
    return app, calls


async def call(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.post("/things", json={"name": "x"})


async def test_a_lost_write_conflict_is_retried_with_the_same_body() -> None:
    app, calls = app_failing(2, conflict())
    r = await call(app)
    assert r.status_code == 200, r.text
    assert r.json() == {"attempts": 3}
    assert calls == [{"name": "x"}] * 3


async def test_other_errors_are_not_retried() -> None:
    app, calls = app_failing(1, OperationFailure("bad value", code=2))
    r = await call(app)
    assert r.status_code == 500
    assert len(calls) == 1


async def test_retries_end() -> None:
    app, calls = app_failing(100, conflict())
    r = await call(app)
    assert r.status_code == 500  # no handler here; create_http_app answers 503
    assert len(calls) == 8
