"""Every endpoint of every service, taken from its OpenAPI document:

- without a token (and with a forged one): 401 with ``WWW-Authenticate: Bearer``;
- with a role the endpoint does not accept (its security requirement names the
  roles): 403;
- as the sample person's own mentor, on every endpoint that does not accept mentors:
  403 (a mentor reads and writes nothing); the endpoints that accept mentors are
  exactly the reads of ``MENTOR_MAY`` (issue #13);
- a real record of district Kassel asked for from another district: 404, as if it
  did not exist (where a path carries a person's, enrolment's or notification's id).

Only health and the event documentation stay public. The audit trail these calls leave
is checked on intake. Each test
writes what it measured to tests/artifacts/security-<service>.json for ``make security``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import (
    CASEWORKER,
    MENTOR,
    TODAY,
    course_details,
    opening_report,
    person_body,
    snapshot,
)
from lotse_intake.bootstrap import create_app as intake_app
from lotse_notifications.bootstrap import create_app as notifications_app
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.auth import Role
from lotse_shared.contracts import partner
from lotse_shared.contracts.common import CefrLevel, OpeningType
from lotse_shared.contracts.intake import PersonRegistered
from tests.integration.test_notifications import suggestions_for
from tests.support import applied, bearer, publish, running

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PUBLIC = {
    ("GET", "/livez"),
    ("GET", "/metrics"),
    ("GET", "/readyz"),
    ("GET", "/healthz"),
    ("GET", "/asyncapi.json"),
    ("GET", "/asyncapi"),
    ("GET", "/partners/asyncapi.json"),
    ("GET", "/partners/asyncapi"),
}


def from_fulda(app: FastAPI, roles: Sequence[str] = (Role.COORDINATOR.value,)) -> dict[str, str]:
    """Who asks across districts: a coordinator (who sees their whole district) of Fulda,
    or Fulda's admin where only admins are let in (an erasure, say)."""
    if Role.COORDINATOR.value in roles:
        return bearer(app, Role.COORDINATOR, user="koordination@fulda.example", district="fulda")
    return bearer(app, Role.ADMIN, user="admin@fulda.example", district="fulda")


WRONG_ROLE_ORDER = [
    Role.PARTNER,
    Role.OPERATOR,
    Role.MENTOR,
    Role.CASEWORKER,
    Role.COORDINATOR,
    Role.ADMIN,
]

# What a mentor (Berufspate, Integrationslotse) may call: reads of the people they
# accompany, the district's courses and openings, their own inbox and preferences.
# Anything else refuses them, the sample person's own mentor included.
MENTOR_MAY: dict[str, set[tuple[str, str]]] = {
    "intake": {("GET", "/people"), ("GET", "/people/{person_id}")},
    "courses": {
        ("GET", "/courses"),
        ("GET", "/courses/{course_id}"),
        ("GET", "/enrolments"),
        ("POST", "/enrolments/query"),
        ("GET", "/enrolments/{enrolment_id}"),
    },
    "placement": {
        ("GET", "/openings"),
        ("GET", "/openings/{opening_id}"),
        ("GET", "/openings/{opening_id}/candidates"),
        ("GET", "/people/{person_id}/suggestions"),
        ("GET", "/people/{person_id}/suggestions/open"),
        ("POST", "/people/overview"),
        ("GET", "/people/{person_id}/evaluation"),
        ("GET", "/people/{person_id}/cases"),
        ("GET", "/cases/{case_id}"),
    },
    "notifications": {
        ("GET", "/notifications"),
        ("GET", "/notifications/unread-counts"),
        ("GET", "/notifications/unread-by-person"),
        ("GET", "/notifications/upcoming"),
        ("GET", "/notifications/events"),  # the portal's live inbox, for mentors too
        ("POST", "/notifications/read-all"),
        ("GET", "/notifications/{notification_id}"),
        ("GET", "/notifications/{notification_id}/deliveries"),
        ("POST", "/notifications/{notification_id}/read"),
        ("POST", "/notifications/{notification_id}/archive"),
        ("GET", "/preferences"),
        ("PUT", "/preferences"),
    },
}


@dataclass
class Operation:
    method: str
    path: str
    roles: list[str]

    def url(self, ids: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), str(uuid.uuid4())), self.path)


@dataclass
class Measured:
    service: str
    endpoints: int = 0
    unauthenticated_refused: int = 0
    wrong_role_refused: int = 0
    mentor_refused: int = 0
    cross_district_refused: int = 0
    cross_district_not_checked: list[str] = field(default_factory=list)

    def save(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"security-{self.service}.json").write_text(json.dumps(self.__dict__))


def operations(app: FastAPI) -> tuple[list[Operation], set[tuple[str, str]]]:
    protected, public = [], set()
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            requirement = op.get("security")
            if requirement:
                protected.append(Operation(method.upper(), path, requirement[0]["bearer"]))
            else:
                public.add((method.upper(), path))
    return protected, public


async def check(
    app: FastAPI,
    http: httpx.AsyncClient,
    service: str,
    bodies: dict[tuple[str, str], Any],
    ids: dict[str, str],
    cross_district: set[tuple[str, str]],
) -> Measured:
    ops, public = operations(app)
    assert public <= PUBLIC, f"{service}: unprotected endpoints {public - PUBLIC}"
    measured = Measured(service, endpoints=len(ops))
    forged = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}
    mentor = bearer(app, Role.MENTOR, user=MENTOR)  # among the sample person's contacts
    mentor_reads: set[tuple[str, str]] = set()
    for op in ops:
        body = bodies.get((op.method, op.path))
        what = f"{service} {op.method} {op.path}"

        async def call(headers: dict[str, str], op: Operation = op, body: Any = body) -> Any:
            return await http.request(
                op.method, op.url(ids), json=body, headers=headers, params=ids_query(op, ids)
            )

        # no token at all: the client sends none (running(role=None))
        r = await call({})
        assert r.status_code == 401, f"{what}: {r.status_code} {r.text[:200]}"
        assert r.headers["www-authenticate"].startswith("Bearer"), what
        assert (await call(forged)).status_code == 401, what
        measured.unauthenticated_refused += 1

        assert op.roles, f"{what} names no role"
        wrong = next(r for r in WRONG_ROLE_ORDER if r.value not in op.roles)
        r = await call(bearer(app, wrong))
        assert r.status_code == 403, f"{what} as {wrong}: {r.status_code} {r.text[:200]}"
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 403
        measured.wrong_role_refused += 1

        if Role.MENTOR.value in op.roles:
            mentor_reads.add((op.method, op.path))
        else:
            r = await call(mentor)
            assert r.status_code == 403, f"{what} as mentor: {r.status_code} {r.text[:200]}"
            measured.mentor_refused += 1

        if (op.method, op.path) in cross_district:
            r = await call(from_fulda(app, op.roles))
            assert r.status_code == 404, f"{what} from Fulda: {r.status_code} {r.text[:200]}"
            measured.cross_district_refused += 1
        elif "{" in op.path or op.path in ("/enrolments",):
            measured.cross_district_not_checked.append(f"{op.method} {op.path}")
    assert mentor_reads == MENTOR_MAY[service], f"{service}: mentors may call {mentor_reads}"
    measured.save()
    return measured


def ids_query(op: Operation, ids: dict[str, str]) -> dict[str, str]:
    # GET /enrolments?person_id=: the person is named in the query
    return {"person_id": ids["person_id"]} if op.path == "/enrolments" else {}


async def test_intake_endpoints(service_env) -> None:
    app = intake_app()
    async with running(app, role=None) as http:
        kassel = bearer(app, Role.COORDINATOR, user="koordination@landkreis-kassel.example")
        r = await http.post("/people", json=person_body(), headers=kassel)
        assert r.status_code == 201, r.text
        pid = r.json()["person_id"]
        measured = await check(
            app,
            http,
            "intake",
            bodies={
                ("POST", "/people"): person_body(),
                ("PUT", "/people/{person_id}"): person_body(),
                ("PATCH", "/people/{person_id}"): {"german_level": "B1"},
                ("POST", "/people/{person_id}/erasure"): {"reason": "Art. 17 DSGVO"},
            },
            ids={"person_id": pid},
            cross_district={
                ("GET", "/people/{person_id}"),
                ("PUT", "/people/{person_id}"),
                ("PATCH", "/people/{person_id}"),
                ("POST", "/people/{person_id}/erasure"),
            },
        )
        assert measured.cross_district_refused == 4
        # Fulda's list does not show Kassel's people; Kassel's coordinator still sees them
        fulda = from_fulda(app)
        assert (await http.get("/people", headers=fulda)).json()["items"] == []
        assert (await http.get(f"/people/{pid}", headers=kassel)).status_code == 200

        # the audit trail: who touched Amal's data, refusals included; for admins only
        admin = bearer(app, Role.ADMIN, user="admin@landkreis-kassel.example")
        r = await http.get("/audit", params={"person_id": pid}, headers=admin)
        assert r.status_code == 200, r.text
        rows = r.json()
        assert {"user": "koordination@landkreis-kassel.example", "outcome": "allowed"} in [
            {"user": e["user"], "outcome": e["outcome"]}
            for e in rows
            if e["method"] == "GET" and e["endpoint"] == "/people/{person_id}"
        ]
        refused = [e for e in rows if e["outcome"] == "refused" and e["role"] == "partner"]
        assert {e["method"] for e in refused} == {"GET", "PUT", "PATCH", "POST"}  # POST: erasure
        assert all(e["service"] == "intake" and e["district_id"] == "kassel" for e in rows)
        # Fulda's admin sees Fulda's probing (its coordinator's, its own erasure attempt),
        # not Kassel's work
        fulda_admin = bearer(app, Role.ADMIN, user="admin@fulda.example", district="fulda")
        probes = (await http.get("/audit", headers=fulda_admin)).json()
        assert probes
        assert {e["user"] for e in probes} == {"koordination@fulda.example", "admin@fulda.example"}
        assert {e["outcome"] for e in probes if e["subjects"].get("person_id") == pid} == {
            "refused"
        }
        assert (await http.get("/audit", headers=kassel)).status_code == 403


async def test_intake_caseworker_sees_only_their_own_people(service_env) -> None:
    app = intake_app()
    async with running(app) as http:  # as CASEWORKER
        mine = (await http.post("/people", json=person_body())).json()["person_id"]
        colleague = "murat.yilmaz@landkreis-kassel.example"
        theirs_body = person_body(
            contacts=[{"role": "caseworker", "name": "Murat Yilmaz", "email": colleague}]
        )
        r = await http.post("/people", json=theirs_body)
        assert r.status_code == 403, r.text  # she would not see that person herself
        murat = bearer(app, Role.CASEWORKER, user=colleague)
        theirs = (await http.post("/people", json=theirs_body, headers=murat)).json()["person_id"]
        assert (await http.get(f"/people/{theirs}")).status_code == 404
        assert (await http.patch(f"/people/{theirs}", json={})).status_code == 404
        listed = (await http.get("/people")).json()["items"]
        assert [p["person_id"] for p in listed] == [mine]
        other = (await http.get("/people", params={"contact_email": colleague})).json()
        assert other["items"] == []
        r = await http.post("/people", json=person_body(district_id="fulda"))
        assert r.status_code == 403


async def test_courses_endpoints(service_env, rabbit_url, namespace) -> None:
    app = courses_app()
    person = PersonRegistered.create(snapshot(), producer="intake")
    async with running(app, role=None) as http:
        await publish(rabbit_url, namespace, person)
        await applied(app, person)
        kassel = bearer(app, Role.COORDINATOR, user="koordination@landkreis-kassel.example")
        r = await http.post(
            "/courses", json=course_details().model_dump(mode="json"), headers=kassel
        )
        assert r.status_code == 201, r.text
        course_id = r.json()["course_id"]
        pid = str(person.payload.person_id)
        r = await http.post(
            "/enrolments", json={"person_id": pid, "course_id": course_id}, headers=kassel
        )
        assert r.status_code == 201, r.text
        enrolment_id = r.json()["enrolment_id"]
        day = TODAY.isoformat()
        measured = await check(
            app,
            http,
            "courses",
            bodies={
                ("POST", "/courses"): course_details().model_dump(mode="json"),
                ("POST", "/enrolments"): {"person_id": pid, "course_id": course_id},
                ("POST", "/enrolments/{enrolment_id}/attendance"): {
                    "session_date": day,
                    "present": True,
                },
                ("POST", "/enrolments/{enrolment_id}/exams"): {
                    "exam": "dtz",
                    "result": "B1",
                    "taken_on": day,
                },
                ("POST", "/enrolments/{enrolment_id}/completion"): {"completed_on": day},
                ("POST", "/enrolments/{enrolment_id}/dropout"): {
                    "dropped_on": day,
                    "reason": "x",
                },
            },
            ids={"person_id": pid, "course_id": course_id, "enrolment_id": enrolment_id},
            cross_district={
                ("GET", "/courses/{course_id}"),
                ("GET", "/enrolments"),
                ("POST", "/enrolments"),
                ("GET", "/enrolments/{enrolment_id}"),
                ("POST", "/enrolments/{enrolment_id}/attendance"),
                ("POST", "/enrolments/{enrolment_id}/exams"),
                ("POST", "/enrolments/{enrolment_id}/completion"),
                ("POST", "/enrolments/{enrolment_id}/dropout"),
            },
        )
        assert measured.cross_district_refused == 8
        # nothing was changed by the refused calls
        r = await http.get(f"/enrolments/{enrolment_id}", headers=kassel)
        assert r.json()["status"] == "active"
        assert r.json()["sessions"] == []
        # the person's caseworker sees the enrolment; a colleague does not
        assert (await http.get(f"/enrolments/{enrolment_id}", headers=bearer(app))).is_success
        murat = bearer(app, Role.CASEWORKER, user="murat.yilmaz@landkreis-kassel.example")
        assert (await http.get(f"/enrolments/{enrolment_id}", headers=murat)).status_code == 404
        # the audit names the person behind the enrolment, for the calls that reached it
        admin = bearer(app, Role.ADMIN, user="admin@landkreis-kassel.example")
        rows = (await http.get("/audit", params={"person_id": pid}, headers=admin)).json()
        endpoints = {(e["method"], e["endpoint"], e["outcome"]) for e in rows}
        assert ("GET", "/enrolments/{enrolment_id}", "allowed") in endpoints
        assert ("POST", "/enrolments", "allowed") in endpoints


@pytest.mark.usefixtures("one_alert_per_event")
async def test_notifications_endpoints(service_env, smtp, rabbit_url, namespace) -> None:
    app = notifications_app()
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    async with running(app, role=None) as http:
        await publish(rabbit_url, namespace, person, event)
        await applied(app, event)
        mine = bearer(app)  # CASEWORKER, the recipient
        [note] = (await http.get("/notifications", headers=mine)).json()
        nid = note["notification_id"]
        pid = str(person.payload.person_id)
        measured = await check(
            app,
            http,
            "notifications",
            bodies={("PUT", "/preferences"): {"opted_out": []}},
            ids={"notification_id": nid},
            cross_district={
                ("GET", "/notifications/{notification_id}"),
                ("GET", "/notifications/{notification_id}/deliveries"),
                ("POST", "/notifications/{notification_id}/read"),
                ("POST", "/notifications/{notification_id}/archive"),
            },
        )
        assert measured.cross_district_refused == 4
        r = await http.get(f"/notifications/{nid}", headers=mine)
        assert r.json()["read_at"] is None  # the refused calls changed nothing
        # a colleague in the same district cannot open it either, nor name her inbox
        murat = bearer(app, Role.CASEWORKER, user="murat.yilmaz@landkreis-kassel.example")
        assert (await http.get(f"/notifications/{nid}", headers=murat)).status_code == 404
        r = await http.get("/notifications", params={"recipient": CASEWORKER}, headers=murat)
        assert r.status_code == 403
        # an admin of the district may look into her inbox (support)
        admin = bearer(app, Role.ADMIN, user="admin@landkreis-kassel.example")
        r = await http.get("/notifications", params={"recipient": CASEWORKER}, headers=admin)
        assert [n["notification_id"] for n in r.json()] == [nid]
        fulda_admin = bearer(app, Role.ADMIN, user="admin@fulda.example", district="fulda")
        r = await http.get("/notifications", params={"recipient": CASEWORKER}, headers=fulda_admin)
        assert r.json() == []  # not another district's
        rows = (await http.get("/audit", params={"person_id": pid}, headers=admin)).json()
        assert {"/notifications/{notification_id}"} <= {e["endpoint"] for e in rows}


async def test_placement_endpoints(service_env, rabbit_url, namespace) -> None:
    app = placement_app()
    person = PersonRegistered.create(snapshot(), producer="intake")
    internship = opening_report(
        opening_type=OpeningType.PRAKTIKUM,
        required_german_level=CefrLevel.A2,
        location=partner.OpeningLocation(municipality="Baunatal"),
    )
    reported = partner.OpeningReported.create(internship, producer="ihk-kassel")
    async with running(app, role=None) as http:
        await publish(rabbit_url, namespace, person, reported)
        await applied(app, person)
        await applied(app, reported)
        await app.state.handlers.sweep_pending(older_than_s=0)
        kassel = bearer(app, Role.COORDINATOR, user="koordination@landkreis-kassel.example")
        pid = str(person.payload.person_id)
        sets = (await http.get(f"/people/{pid}/suggestions", headers=kassel)).json()
        oid = sets[0]["suggestions"][0]["opening_id"]
        r = await http.post(f"/people/{pid}/suggestions/{oid}/accept", json={}, headers=kassel)
        assert r.status_code == 200, r.text
        case_id = r.json()["case_id"]
        r = await http.post("/imports/jobsuche", json={"stellenangebote": []}, headers=kassel)
        assert r.status_code == 200, r.text
        import_id = r.json()["import_id"]
        day = TODAY.isoformat()
        person_paths = {
            ("GET", "/people/{person_id}/suggestions"),
            ("GET", "/people/{person_id}/evaluation"),
            ("POST", "/people/{person_id}/suggestions/{opening_id}/accept"),
            ("POST", "/people/{person_id}/suggestions/{opening_id}/dismiss"),
            ("GET", "/people/{person_id}/cases"),
            ("GET", "/cases/{case_id}"),
            ("POST", "/cases/{case_id}/stage"),
            ("POST", "/cases/{case_id}/close"),
        }
        measured = await check(
            app,
            http,
            "placement",
            bodies={
                ("POST", "/openings"): internship.model_dump(mode="json"),
                ("POST", "/openings/{opening_id}/close"): {"reason": "x"},
                ("POST", "/people/{person_id}/suggestions/{opening_id}/accept"): {},
                ("POST", "/people/{person_id}/suggestions/{opening_id}/dismiss"): {"reason": "x"},
                ("POST", "/cases/{case_id}/stage"): {"stage": "interview", "on": day},
                ("POST", "/cases/{case_id}/close"): {"reason": "other", "on": day},
                ("POST", "/imports/jobsuche"): {"stellenangebote": []},
            },
            ids={"person_id": pid, "opening_id": oid, "case_id": case_id, "import_id": import_id},
            cross_district={
                ("GET", "/openings/{opening_id}"),
                ("POST", "/openings/{opening_id}/close"),
                ("GET", "/imports/{import_id}"),
                ("POST", "/imports/{import_id}/complete"),
                *person_paths,
            },
        )
        assert measured.cross_district_refused == 12
        assert (await http.get(f"/imports/{import_id}", headers=kassel)).status_code == 200
        # nothing was changed by the refused calls
        case = (await http.get(f"/cases/{case_id}", headers=kassel)).json()
        assert (case["stage"], case["closed"]) == ("proposed", False)
        opening = (await http.get(f"/openings/{oid}", headers=kassel)).json()
        assert opening["status"] == "open"
        # a caseworker who is not Amal's sees neither her nor her case
        other = bearer(app, Role.CASEWORKER, user="someone.else@landkreis-kassel.example")
        assert (await http.get(f"/people/{pid}/suggestions", headers=other)).status_code == 404
        assert (await http.get(f"/cases/{case_id}", headers=other)).status_code == 404
        mine = bearer(app, Role.CASEWORKER, user=CASEWORKER)
        assert (await http.get(f"/cases/{case_id}", headers=mine)).status_code == 200


async def test_a_partner_publishes_and_imports_only_as_itself(service_env) -> None:
    app = placement_app()
    async with running(app, role=None) as http:
        ihk = bearer(app, Role.PARTNER, user="feed@ihk.example", partner="ihk-kassel")
        body = opening_report().model_dump(mode="json")
        r = await http.post("/openings", json=body, headers=ihk)
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "ihk-kassel"
        r = await http.post("/openings", json=body | {"source": "hwk-kassel"}, headers=ihk)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "source"
        listed = (await http.get("/openings", headers=ihk)).json()
        assert [o["source"] for o in listed] == ["ihk-kassel"]
        r = await http.post(
            "/imports/jobsuche", params={"source": "ba-jobsuche"}, json={}, headers=ihk
        )
        assert r.status_code == 422
        assert (await http.get(f"/people/{uuid.uuid4()}/cases", headers=ihk)).status_code == 403


@pytest.mark.parametrize("factory", [intake_app, courses_app, notifications_app, placement_app])
def test_docs_stay_public_and_name_the_bearer_scheme(service_env, factory) -> None:
    schema = factory().openapi()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
