"""Every refusal is RFC 9457 problem details, and each service's OpenAPI says so."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import OperationFailure

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import person_body
from lotse_intake.bootstrap import create_app as intake_app
from lotse_notifications.bootstrap import create_app as notifications_app
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.auth import Role
from lotse_shared.auth.audit import AuditLog
from tests.support import bearer, running

MEMBERS = {"type", "title", "status", "detail", "instance"}


def assert_problem(r: httpx.Response, status: int, path: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body.keys() >= MEMBERS, body
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["instance"] == path
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["title"], str)
    assert body["title"]
    return body


async def test_each_refusal_is_problem_details(service_env) -> None:
    app = intake_app()
    async with running(app) as http:
        r = await http.get("/people", headers={"Authorization": ""})
        body = assert_problem(r, 401, "/people")
        assert body["title"] == "Unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")

        r = await http.get("/audit")  # a caseworker is no admin
        assert assert_problem(r, 403, "/audit")["title"] == "Forbidden"
        assert "admin" in r.json()["detail"]

        missing = "/people/00000000-0000-0000-0000-000000000000"
        assert assert_problem(await http.get(missing), 404, missing)["title"] == "Not Found"
        assert_problem(await http.get("/no-such-route"), 404, "/no-such-route")

        pid = (await http.post("/people", json=person_body())).json()["person_id"]
        r = await http.put(f"/people/{pid}", json=person_body(), headers={"If-Match": "7"})
        assert assert_problem(r, 409, f"/people/{pid}")["title"] == "Conflict"

        r = await http.post(
            "/people", json=person_body(birth_year="nineteen", municipality="Atlantis")
        )
        body = assert_problem(r, 422, "/people")
        assert body["title"] == "Unprocessable Content"
        by_field = {e["field"]: e for e in body["errors"]}
        assert by_field["birth_year"]["in"] == "body"
        assert by_field["birth_year"]["pointer"] == "#/birth_year"
        assert by_field["birth_year"]["code"] == "int_parsing"
        assert "birth_year: " in body["detail"]

        # a rule checked after merging a change names its field the same way
        r = await http.patch(f"/people/{pid}", json={"max_commute_km": 999})
        [error] = assert_problem(r, 422, f"/people/{pid}")["errors"]
        assert (error["field"], error["pointer"]) == ("max_commute_km", "#/max_commute_km")

        r = await http.get("/people", params={"offset": -1})
        [error] = assert_problem(r, 422, "/people")["errors"]
        assert (error["in"], error["field"], error["pointer"]) == ("query", "offset", None)

        r = await http.post(
            "/people", content=b'{"given_name": ', headers={"content-type": "application/json"}
        )
        [error] = assert_problem(r, 422, "/people")["errors"]
        assert (error["field"], error["pointer"], error["code"]) == ("", "#", "json_invalid")


async def test_an_unavailable_audit_log_and_lost_write_conflicts_answer_503(
    service_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = intake_app()
    async with running(app) as http:
        pid = (await http.post("/people", json=person_body())).json()["person_id"]

        async def always_conflicting(*args: object, **kwargs: object) -> None:
            raise OperationFailure(
                "WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"]}
            )

        with monkeypatch.context() as patched:
            patched.setattr(app.state.handlers, "get", always_conflicting)
            r = await http.get(f"/people/{pid}")
            assert "try again" in assert_problem(r, 503, f"/people/{pid}")["detail"]
            assert r.headers["retry-after"] == "1"

        async def unavailable(*args: object, **kwargs: object) -> None:
            raise OSError("audit store down")

        monkeypatch.setattr(AuditLog, "append", unavailable)
        r = await http.get(f"/people/{pid}")
        assert "audit log" in assert_problem(r, 503, f"/people/{pid}")["detail"]


@pytest.mark.parametrize(
    "factory",
    [intake_app, courses_app, placement_app, notifications_app],
    ids=lambda f: f.__module__,
)
def test_the_openapi_documents_declare_the_problem_responses(service_env, factory) -> None:
    app: FastAPI = factory()
    schema = app.openapi()
    schemas = schema["components"]["schemas"]
    assert {"ProblemDetails", "ValidationProblemDetails", "FieldProblem"} <= schemas.keys()
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape is gone
    assert set(schemas["ValidationProblemDetails"]["required"]) >= {"status", "errors"}
    problem = {"$ref": "#/components/schemas/ProblemDetails"}
    checked = 0
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            if "422" in responses:
                assert responses["422"]["content"] == {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/ValidationProblemDetails"}
                    }
                }, (method, path)
            if not op.get("security"):
                continue
            expected = {"401", "403", "404", "503"} | ({"409"} if method != "get" else set())
            assert expected <= responses.keys(), (method, path, sorted(responses))
            for code in expected:
                content = responses[code]["content"]
                assert content == {"application/problem+json": {"schema": problem}}, (method, path)
            checked += 1
    assert checked > 3


async def test_a_partner_refused_by_role_reads_a_problem_too(service_env) -> None:
    app = placement_app()
    async with running(app, Role.PARTNER) as http:
        r = await http.get("/audit", headers=bearer(app, Role.PARTNER, partner="ihk-kassel"))
        assert_problem(r, 403, "/audit")
