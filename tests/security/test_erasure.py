"""Erasure on request and retention (issue #6, part 8), across the four services.

A person goes through the real flow (registered with a name and contacts one can
search for, enrolled, attendance, exam, course completed, suggestions, an inbox
entry and an email, a placement case), is erased by an admin, and then every
collection of every service's database (listed, not assumed) is scanned, byte for
byte in its BSON, for the person's id (as text and as binary UUID), name, phone and
email. Only the erasure records may hold the id: each service's ``erasures``
tombstone and the outbox row of the erasure event itself. The count is written to
tests/artifacts/erasure.json for ``make security``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import decode
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from fastapi import FastAPI

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import (
    COURSE_REF,
    TODAY,
    course_details,
    enrolment_facts,
    opening_report,
    person_body,
    snapshot,
)
from lotse_intake.bootstrap import create_app as intake_app
from lotse_notifications.bootstrap import Overrides as NotificationsOverrides
from lotse_notifications.bootstrap import create_app as notifications_app
from lotse_notifications.domain.model import BERLIN
from lotse_placement.bootstrap import Overrides as PlacementOverrides
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.auth import Role
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.catalogue import BY_ROUTING_KEY
from lotse_shared.contracts.common import CefrLevel
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1, Enrolled, EnrolledV1
from lotse_shared.contracts.intake import PersonErased, PersonRegistered, PersonUpdated
from tests.support import EventTap, bearer, eventually, publish, running

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SCHOOL = "vhs-region-kassel"
GIVEN, FAMILY = "Zuleika", "Quenstedt-Marbach"
PHONE, EMAIL = "+49 561 4711 0815", "zuleika.qm@mail.example"
ADMIN = "dpo.admin@landkreis-kassel.example"
# Tuesday 10:00 in Berlin: office hours, so the email goes out at once
OFFICE = datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN)


def _apps() -> dict[str, FastAPI]:
    return {
        "intake": intake_app(),
        "courses": courses_app(),
        "placement": placement_app(overrides=PlacementOverrides(today=lambda: TODAY)),
        "notifications": notifications_app(overrides=NotificationsOverrides(clock=lambda: OFFICE)),
    }


def _needles(person_id: uuid.UUID) -> dict[str, bytes]:
    return {
        "id (text)": str(person_id).encode(),
        "id (hex)": person_id.hex.encode(),
        "id (binary)": person_id.bytes,
        "given name": GIVEN.encode(),
        "family name": FAMILY.encode(),
        "phone": PHONE.encode(),
        "email": EMAIL.encode(),
    }


def _is_erasure_record(collection: str, doc: RawBSONDocument) -> bool:
    """The one trace an erasure keeps: the tombstones, and the erasure event's own
    outbox row (it has to name whom to forget; it expires with the outbox)."""
    if collection == "erasures":
        return True
    return collection == "outbox" and decode(doc.raw).get("event_type") == "intake.person.erased"


async def scan(apps: dict[str, FastAPI], person_id: uuid.UUID) -> dict[str, Any]:
    """Every collection of every service's database, every document, byte for byte."""
    needles = _needles(person_id)
    raw = CodecOptions(document_class=RawBSONDocument)
    leftovers: list[str] = []
    collections = documents = 0
    for service, app in apps.items():
        db = app.state.runtime.db
        for name in sorted(await db.list_collection_names()):
            collections += 1
            async for doc in db.get_collection(name, codec_options=raw).find({}):
                documents += 1
                found = [what for what, needle in needles.items() if needle in doc.raw]
                if found and not _is_erasure_record(name, doc):
                    leftovers.append(f"{service}.{name} {decode(doc.raw)['_id']}: {found}")
    return {
        "leftovers": leftovers,
        "collections_scanned": collections,
        "documents_scanned": documents,
    }


def _ignored(caplog: pytest.LogCaptureFixture, event_ids: Iterable[uuid.UUID]) -> int:
    ids = {str(e) for e in event_ids}
    return sum(
        1
        for r in caplog.records
        if "about an erased person ignored" in r.getMessage()
        and isinstance(r.args, tuple)
        and r.args[0] in ids
    )


async def test_an_erased_person_leaves_no_trace_in_any_service(
    service_env, smtp, rabbit_url, namespace, caplog
):
    caplog.set_level(logging.INFO, logger="lotse.messaging")
    apps = _apps()
    intake, courses, placement, notifications = apps.values()
    body = person_body(
        given_name=GIVEN, family_name=FAMILY, contact={"phone": PHONE, "email": EMAIL}
    )
    async with (
        EventTap(rabbit_url, namespace, "#") as tap,
        running(intake) as people,
        running(courses) as course_api,
        running(placement) as placement_api,
        running(notifications) as inbox_api,
    ):
        r = await people.post("/people", json=body)
        assert r.status_code == 201, r.text
        pid = uuid.UUID(r.json()["person_id"])
        assert (await people.get(f"/people/{pid}")).status_code == 200  # an audit entry

        # the school reports: enrolment, attendance, exam, completion; an opening that fits
        enrolment = p.EnrolmentReported.create(
            p.EnrolmentReportedV1(person_id=pid, course=course_details()), producer=SCHOOL
        )
        attendance = p.AttendanceReported.create(
            p.AttendanceReportedV1(
                person_id=pid, course=COURSE_REF, session_date=TODAY, present=False
            ),
            producer=SCHOOL,
        )
        exam = p.ExamResultReported.create(
            p.ExamResultReportedV1(
                person_id=pid, course=COURSE_REF, exam="dtz", result="B1", taken_on=TODAY
            ),
            producer=SCHOOL,
        )
        completion = p.CompletionReported.create(
            p.CompletionReportedV1(person_id=pid, course=COURSE_REF, completed_on=TODAY),
            producer=SCHOOL,
        )
        opening = p.OpeningReported.create(opening_report(), producer="ihk-kassel")
        await publish(rabbit_url, namespace, opening)
        await publish(rabbit_url, namespace, enrolment)
        await tap.wait_for("courses.enrolment.created.v1")
        await publish(rabbit_url, namespace, attendance, exam)
        await tap.wait_for("courses.exam_result.recorded.v1")
        await publish(rabbit_url, namespace, completion)
        ready = (await tap.wait_for("placement.suggestions.ready.v1"))[0]["payload"]
        assert ready["person_id"] == str(pid)
        opening_id = ready["suggestions"][0]["opening_id"]

        async def mailed() -> bool:
            return any(f"{GIVEN} {FAMILY}" in m.subject for m in smtp.mails)

        await eventually(mailed, timeout_s=20, what="the suggestions email")
        inbox = (await inbox_api.get("/notifications")).json()
        assert any(f"{GIVEN} {FAMILY}" in n["subject"] for n in inbox)
        r = await placement_api.post(
            f"/people/{pid}/suggestions/{opening_id}/accept",
            json={"note": f"{GIVEN} möchte es versuchen"},
        )
        assert r.status_code == 200, r.text
        assert (await course_api.get("/enrolments", params={"person_id": str(pid)})).json()
        before = await scan(apps, pid)
        assert len(before["leftovers"]) > 10, before  # the scan does see the person

        # who may erase: admins only, of the person's own district, with a reason
        url = f"/people/{pid}/erasure"
        reason = {"reason": "Art. 17 DSGVO: Antrag vom 20.11.2026"}
        for role in (Role.CASEWORKER, Role.MENTOR, Role.COORDINATOR, Role.OPERATOR, Role.PARTNER):
            r = await people.post(url, json=reason, headers=bearer(intake, role))
            assert r.status_code == 403, (role, r.text)
        fulda = bearer(intake, Role.ADMIN, user="admin@fulda.example", district="fulda")
        assert (await people.post(url, json=reason, headers=fulda)).status_code == 404
        admin = bearer(intake, Role.ADMIN, user=ADMIN)
        r = await people.post(url, json={}, headers=admin)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "reason"
        r = await people.post(f"/people/{uuid.uuid4()}/erasure", json=reason, headers=admin)
        assert r.status_code == 404

        r = await people.post(url, json=reason, headers=admin)
        assert r.status_code == 202, r.text
        erasure = r.json()
        assert erasure["erased_by"] == ADMIN
        assert erasure["person_id"] == str(pid)
        again = await people.post(url, json=reason, headers=admin)
        assert again.status_code == 200
        assert again.json()["erasure_id"] == erasure["erasure_id"]

        # the event names whom to forget, nothing else (no name, no reason); asking
        # again announces the same erasure again
        announced = await tap.wait_for("intake.person.erased.v1", count=2)
        assert {e["payload"]["erasure_id"] for e in announced} == {erasure["erasure_id"]}
        assert len({e["event_id"] for e in announced}) == 2
        for erased in announced:
            assert set(erased["payload"]) == {
                "person_id",
                "district_id",
                "erasure_id",
                "erased_at",
            }
            assert GIVEN not in json.dumps(erased)
            assert "DSGVO" not in json.dumps(erased)

        async def everyone_applied() -> bool:
            for app in (courses, placement, notifications):
                if await app.state.runtime.db["erasures"].find_one({"_id": pid}) is None:
                    return False
            return True

        await eventually(everyone_applied, timeout_s=20, what="every service applied it")
        after = await scan(apps, pid)

        # the erasure is in intake's audit log, naming the erasure, not the person
        log = (await people.get("/audit", headers=admin)).json()
        [entry] = [
            e for e in log if e["endpoint"] == "/people/{person_id}/erasure" and e["status"] == 202
        ]
        assert entry["subjects"]["person_id"] == f"erased:{erasure['erasure_id']}"
        assert entry["user"] == ADMIN
        reads = [e for e in log if e["method"] == "GET" and e["path"].startswith("/people/")]
        assert reads, "the caseworker's read stays in the audit log, anonymised"
        assert {e["subjects"].get("person_id") for e in reads} == {
            f"erased:{erasure['erasure_id']}"
        }

        # late events about the erased person: acknowledged and ignored, nothing comes back
        late_update = PersonUpdated.create(
            snapshot(person_id=pid, revision=7, display_name=f"{GIVEN} {FAMILY}"),
            producer="intake",
        )
        late_register = PersonRegistered.create(
            snapshot(person_id=pid, display_name=f"{GIVEN} {FAMILY}"), producer="intake"
        )
        late_attendance = p.AttendanceReported.create(
            p.AttendanceReportedV1(
                person_id=pid, course=COURSE_REF, session_date=TODAY, present=True
            ),
            producer=SCHOOL,
        )
        await publish(rabbit_url, namespace, late_update, late_register, late_attendance)
        late = [late_update.event_id, late_register.event_id, late_attendance.event_id]

        async def all_ignored() -> bool:
            # updated and registered: 3 consumers each; attendance: courses
            return _ignored(caplog, late) == 7

        await eventually(all_ignored, timeout_s=20, what="the late events ignored")
        # a transaction applying no event (an email delivered as the erasure landed,
        # say) does not put an event about the erased person into the outbox
        async with courses.state.runtime.uow.transaction() as tx:
            tx.publish(
                Enrolled.create(
                    EnrolledV1(**enrolment_facts(pid), starts_on=TODAY, ends_on=TODAY),
                    producer="courses",
                )
            )
        assert tx.events == []
        after_late = await scan(apps, pid)
        assert (await people.get(f"/people/{pid}")).status_code == 404

    leftovers = len(after["leftovers"]) + len(after_late["leftovers"])
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "erasure.json").write_text(
        json.dumps(
            {
                "erasure_leftovers": leftovers,
                "collections_scanned": after["collections_scanned"],
                "documents_scanned": after["documents_scanned"],
                "traces_before_erasure": len(before["leftovers"]),
                "late_events_ignored": _ignored(caplog, late),
            },
            indent=2,
        )
    )
    assert after["leftovers"] == [], after["leftovers"]
    assert after_late["leftovers"] == [], after_late["leftovers"]


def test_the_erasure_event_is_in_the_catalogue_and_carries_no_personal_data():
    assert BY_ROUTING_KEY["intake.person.erased.v1"] is PersonErased
    fields = set(PersonErased.model_fields["payload"].annotation.model_fields)  # type: ignore[union-attr]
    assert fields == {"person_id", "district_id", "erasure_id", "erased_at"}


async def test_closed_cases_are_deleted_after_the_retention_period(
    service_env, rabbit_url, namespace, monkeypatch
):
    monkeypatch.setenv("LOTSE_CLOSED_CASE_RETENTION_DAYS", str(2 / 86400))  # two seconds
    monkeypatch.setenv("LOTSE_RETENTION_SWEEP_S", "0.3")
    app = placement_app(overrides=PlacementOverrides(today=lambda: TODAY))
    people = [PersonRegistered.create(snapshot(), producer="intake") for _ in range(2)]
    opening = p.OpeningReported.create(opening_report(seats=5), producer="ihk-kassel")
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, *people)
        completed = [
            _completed(person.payload.person_id, person) for person in people
        ]  # B1 reached: the opening fits
        await publish(rabbit_url, namespace, opening, *completed)
        ready = await tap.wait_for("placement.suggestions.ready.v1", count=2)
        cases = []
        for suggestion in ready:
            person_id = suggestion["payload"]["person_id"]
            opening_id = suggestion["payload"]["suggestions"][0]["opening_id"]
            r = await http.post(f"/people/{person_id}/suggestions/{opening_id}/accept", json={})
            assert r.status_code == 200, r.text
            cases.append(r.json()["case_id"])
        closed, kept = cases
        r = await http.post(
            f"/cases/{closed}/close", json={"reason": "moved_away", "on": str(TODAY)}
        )
        assert r.json()["closed"] is True

        async def gone() -> bool:
            return (await http.get(f"/cases/{closed}")).status_code == 404

        await eventually(gone, timeout_s=15, what="the closed case deleted")
        assert (await http.get(f"/cases/{kept}")).status_code == 200  # open: stays


def _completed(person_id: uuid.UUID, cause: PersonRegistered) -> CourseCompleted:
    return CourseCompleted.create(
        CourseCompletedV1(
            **enrolment_facts(person_id),
            level_reached=CefrLevel.B1,
            completed_on=TODAY - timedelta(days=1),
        ),
        producer="courses",
        cause=cause,
    )
