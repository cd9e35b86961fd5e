"""Schemathesis over every operation of every service (issue 6: no 500s).

Each service runs in this process against the real RabbitMQ and SecantusDB, with a few
real records seeded (a person, a course, an enrolment, an opening, a case, a
notification), so that generated requests also reach the handlers behind a found id.
Every operation is called with a token of a role it accepts (a coordinator of Kassel, an
admin for the audit, the recipient for notifications, and additionally a partner where
partners are accepted), never only against the 401 wall.

Writes tests/artifacts/fuzz-http-<service>.json; ``LOTSE_FUZZ_EXAMPLES`` (default 40 per
operation, role and generation mode) makes the run bigger.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import CASEWORKER, course_details, opening_report, person_body, snapshot
from lotse_intake.bootstrap import create_app as intake_app
from lotse_notifications.bootstrap import create_app as notifications_app
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.auth import Role
from lotse_shared.contracts import partner
from lotse_shared.contracts.common import CefrLevel, OpeningType
from lotse_shared.contracts.intake import PersonRegistered
from tests.integration.test_notifications import suggestions_for
from tests.security.fuzzing import FuzzResult, Target, plan, run
from tests.support import applied, bearer, publish, running

COORDINATOR = "koordination@landkreis-kassel.example"
ADMIN = "admin@landkreis-kassel.example"
PARTNER_ID = "ihk-kassel"

Targets = Callable[[str, str, list[str]], list[Target]]


def targets_for(app: FastAPI, ids: dict[str, str], user: str = COORDINATOR) -> Targets:
    """The district's coordinator (an admin where only admins are let in) and, where
    partners are accepted, a partner too."""
    staff = bearer(app, Role.COORDINATOR, user=user)
    if user == CASEWORKER:
        staff = bearer(app, Role.CASEWORKER, user=user)
    admin = bearer(app, Role.ADMIN, user=ADMIN)
    feed = bearer(app, Role.PARTNER, user="feed@ihk.example", partner=PARTNER_ID)

    def targets(method: str, path: str, roles: list[str]) -> list[Target]:
        if not roles:
            return [Target({}, ids)]
        found = []
        if Role.COORDINATOR.value in roles or Role.CASEWORKER.value in roles:
            found.append(Target(staff, ids))
        else:
            found.append(Target(admin, ids))
        if Role.PARTNER.value in roles:
            found.append(Target(feed, ids))
        return found

    return targets


async def fuzz(name: str, app: FastAPI, http: httpx.AsyncClient, targets: Targets) -> FuzzResult:
    planned = await asyncio.to_thread(plan, app.openapi(), targets)
    result = await run(f"http-{name}", http, planned)
    result.save()
    errors = [f for f in result.findings if f.status >= 500]
    assert result.server_errors == 0, json.dumps([f.__dict__ for f in errors[:5]], indent=1)
    assert not result.findings, json.dumps([f.__dict__ for f in result.findings[:5]], indent=1)
    assert result.fuzz_cases >= result.operations * 2
    # the fuzz reached the handlers: not everything was refused
    assert any(200 <= s < 300 for s in result.by_status), result.by_status
    assert 422 in result.by_status, result.by_status
    # and the service still answers afterwards
    assert (await http.get("/healthz")).status_code == 200
    return result


async def test_fuzz_intake(service_env) -> None:
    app = intake_app()
    async with running(app, role=None) as http:
        staff = bearer(app, Role.COORDINATOR, user=COORDINATOR)
        r = await http.post("/people", json=person_body(), headers=staff)
        assert r.status_code == 201, r.text
        ids = {"person_id": r.json()["person_id"]}
        await fuzz("intake", app, http, targets_for(app, ids))


async def test_fuzz_courses(service_env, rabbit_url, namespace) -> None:
    app = courses_app()
    person = PersonRegistered.create(snapshot(), producer="intake")
    async with running(app, role=None) as http:
        await publish(rabbit_url, namespace, person)
        await applied(app, person)
        staff = bearer(app, Role.COORDINATOR, user=COORDINATOR)
        r = await http.post(
            "/courses", json=course_details().model_dump(mode="json"), headers=staff
        )
        assert r.status_code == 201, r.text
        course_id = r.json()["course_id"]
        pid = str(person.payload.person_id)
        body = {"person_id": pid, "course_id": course_id}
        r = await http.post("/enrolments", json=body, headers=staff)
        assert r.status_code == 201, r.text
        ids = {"person_id": pid, "course_id": course_id, "enrolment_id": r.json()["enrolment_id"]}
        await fuzz("courses", app, http, targets_for(app, ids))


async def test_fuzz_placement(service_env, rabbit_url, namespace) -> None:
    app = placement_app()
    person = PersonRegistered.create(snapshot(), producer="intake")
    internship = opening_report(
        opening_type=OpeningType.PRAKTIKUM,
        required_german_level=CefrLevel.A2,
        location=partner.OpeningLocation(municipality="Baunatal"),
    )
    reported = partner.OpeningReported.create(internship, producer=PARTNER_ID)
    async with running(app, role=None) as http:
        await publish(rabbit_url, namespace, person, reported)
        await applied(app, person)
        await applied(app, reported)
        await app.state.handlers.sweep_pending(older_than_s=0)
        staff = bearer(app, Role.COORDINATOR, user=COORDINATOR)
        pid = str(person.payload.person_id)
        sets = (await http.get(f"/people/{pid}/suggestions", headers=staff)).json()
        oid = sets[0]["suggestions"][0]["opening_id"]
        r = await http.post(f"/people/{pid}/suggestions/{oid}/accept", json={}, headers=staff)
        assert r.status_code == 200, r.text
        ids = {"person_id": pid, "opening_id": oid, "case_id": r.json()["case_id"]}
        feed = bearer(app, Role.PARTNER, user="feed@ihk.example", partner=PARTNER_ID)
        r = await http.post("/imports/jobsuche", json={"stellenangebote": []}, headers=feed)
        assert r.status_code == 200, r.text
        ids["import_id"] = r.json()["import_id"]
        await fuzz("placement", app, http, targets_for(app, ids))


@pytest.mark.usefixtures("one_alert_per_event")
async def test_fuzz_notifications(service_env, smtp, rabbit_url, namespace) -> None:
    app = notifications_app()
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    async with running(app, role=None) as http:
        await publish(rabbit_url, namespace, person, event)
        await applied(app, event)
        mine = bearer(app, Role.CASEWORKER, user=CASEWORKER)
        [note] = (await http.get("/notifications", headers=mine)).json()
        ids = {"notification_id": note["notification_id"]}
        # notifications belong to their recipient: fuzz as her
        await fuzz("notifications", app, http, targets_for(app, ids, user=CASEWORKER))
