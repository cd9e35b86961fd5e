"""courses: partner reports over AMQP, HTTP, dead letters, parking, idempotency."""

from __future__ import annotations

import json
import uuid

from aio_pika.abc import AbstractIncomingMessage

from lotse_courses.bootstrap import create_app
from lotse_devstack.samples import COURSE_REF, TODAY, course_details, snapshot
from lotse_shared.auth import Role
from lotse_shared.contracts import intake as i
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import ContactRole
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.messaging.deadletter import HEADER_REASON, HEADER_ROUTING_KEY, HEADER_SERVICE
from tests.support import EventTap, applied, bearer, dead_letters, eventually, publish, running

SCHOOL = "vhs-region-kassel"


def reports(
    person_id: uuid.UUID,
) -> tuple[p.EnrolmentReported, p.ExamResultReported, p.CompletionReported]:
    return (
        p.EnrolmentReported.create(
            p.EnrolmentReportedV1(person_id=person_id, course=course_details()), producer=SCHOOL
        ),
        p.ExamResultReported.create(
            p.ExamResultReportedV1(
                person_id=person_id, course=COURSE_REF, exam="dtz", result="B1", taken_on=TODAY
            ),
            producer=SCHOOL,
        ),
        p.CompletionReported.create(
            p.CompletionReportedV1(person_id=person_id, course=COURSE_REF, completed_on=TODAY),
            producer=SCHOOL,
        ),
    )


async def test_partner_reports_lead_to_course_completed(service_env, rabbit_url, namespace):
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    enrolment, exam, completion = reports(pid)
    app = create_app()
    async with EventTap(rabbit_url, namespace, "courses.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, person)
        await applied(app, person)
        await publish(rabbit_url, namespace, enrolment)
        enrolled = (await tap.wait_for("courses.enrolment.created.v1"))[0]
        assert enrolled["causation_id"] == str(enrolment.event_id)
        assert enrolled["correlation_id"] == str(enrolment.correlation_id)
        await publish(rabbit_url, namespace, exam, completion)
        completed = (await tap.wait_for("courses.course.completed.v1"))[0]
        assert completed["payload"]["person_id"] == str(pid)
        assert completed["payload"]["level_reached"] == "B1"  # from the DTZ result
        assert completed["payload"]["course_type"] == "integrationskurs"
        state = (await http.get("/enrolments", params={"person_id": str(pid)})).json()
        assert [e["status"] for e in state] == ["completed"]


async def test_completion_overtaking_its_exam_result_waits_for_it(
    service_env, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    enrolment, exam, completion = reports(person.payload.person_id)
    app = create_app()
    async with EventTap(rabbit_url, namespace, "courses.course.#") as tap, running(app):
        await publish(rabbit_url, namespace, person)
        await applied(app, person)
        await publish(rabbit_url, namespace, enrolment)
        await applied(app, enrolment)
        await publish(rabbit_url, namespace, completion)  # before the exam result
        await eventually(lambda: app.state.runtime.parking.count(), what="completion parked")
        assert tap.bodies() == []
        await publish(rabbit_url, namespace, exam)
        completed = (await tap.wait_for("courses.course.completed.v1"))[0]
        assert completed["payload"]["level_reached"] == "B1"
        assert await app.state.runtime.parking.count() == 0


async def test_report_about_an_unknown_person_is_kept_until_they_arrive(
    service_env, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    enrolment, _, _ = reports(person.payload.person_id)
    app = create_app()
    async with EventTap(rabbit_url, namespace, "courses.#") as tap, running(app):
        await publish(rabbit_url, namespace, enrolment)
        await eventually(lambda: app.state.runtime.parking.count(), what="enrolment parked")
        await publish(rabbit_url, namespace, person)
        enrolled = await tap.wait_for("courses.enrolment.created.v1")
        assert len(enrolled) == 1

        # the replay takes it out of the lot after the commit that published its effect
        async def lot_empty() -> bool:
            return await app.state.runtime.parking.count() == 0

        await eventually(lot_empty, what="the parked enrolment taken out")


async def test_malformed_and_rule_breaking_events_are_dead_lettered_with_reason(
    service_env, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    enrolment, _, _ = reports(pid)
    bad_dtz = p.ExamResultReported.create(
        p.ExamResultReportedV1(
            person_id=pid, course=COURSE_REF, exam="dtz", result="passed", taken_on=TODAY
        ),
        producer=SCHOOL,
    )
    typo = json.loads(enrolment.to_wire())
    typo["event_id"] = str(uuid.uuid4())
    typo["payload"]["persn_id"] = typo["payload"].pop("person_id")
    app = create_app()
    async with running(app):
        await publish(rabbit_url, namespace, person, enrolment)
        await applied(app, enrolment)
        await publish(rabbit_url, namespace, bad_dtz)

        from lotse_devstack.partner import PartnerPublisher

        async with PartnerPublisher(rabbit_url, namespace) as pub:
            await pub.publish_raw(
                json.dumps(typo).encode(), enrolment.ROUTING_KEY, message_id=typo["event_id"]
            )
            await pub.publish_raw(b"{not json", enrolment.ROUTING_KEY, message_id="garbage-1")

        found: dict[str, AbstractIncomingMessage] = {}

        async def three() -> bool:
            for m in await dead_letters(rabbit_url, namespace, "courses"):
                found[m.message_id or ""] = m
            return len(found) >= 3

        await eventually(three, what="three dead letters")
        dtz = found[str(bad_dtz.event_id)]
        assert dtz.headers[HEADER_REASON] == "result: a DTZ result is A2, B1 or below_A2"
        assert dtz.headers[HEADER_SERVICE] == "courses"
        assert dtz.headers[HEADER_ROUTING_KEY] == "partner.course.exam_result_reported.v1"
        assert json.loads(dtz.body)["event_id"] == str(bad_dtz.event_id)  # original kept
        reason = str(found[typo["event_id"]].headers[HEADER_REASON])
        assert "payload.person_id: Field required" in reason
        assert "payload.persn_id: Extra inputs are not permitted" in reason
        assert found["garbage-1"].body == b"{not json"
        # nothing was half-applied: the rule-breaking exam left the enrolment untouched
        enrolments = await app.state.runtime.db["enrolments"].find().to_list()
        assert [e["exams"] for e in enrolments] == [[]]


async def test_the_same_event_five_times_has_one_effect(service_env, rabbit_url, namespace):
    person = PersonRegistered.create(snapshot(), producer="intake")
    enrolment, _, _ = reports(person.payload.person_id)
    attendance = p.AttendanceReported.create(
        p.AttendanceReportedV1(
            person_id=person.payload.person_id, course=COURSE_REF, session_date=TODAY, present=True
        ),
        producer=SCHOOL,
    )
    app = create_app()
    async with EventTap(rabbit_url, namespace, "courses.#") as tap, running(app):
        await publish(rabbit_url, namespace, person, enrolment)
        await applied(app, enrolment)
        await publish(rabbit_url, namespace, *[attendance] * 5)
        await tap.wait_for("courses.attendance.recorded.v1")
        marker = p.AttendanceReported.create(
            p.AttendanceReportedV1(
                person_id=person.payload.person_id,
                course=COURSE_REF,
                session_date=TODAY.replace(day=25),
                present=False,
            ),
            producer=SCHOOL,
        )
        await publish(rabbit_url, namespace, marker)
        await tap.wait_for("courses.attendance.recorded.v1", count=2)
        assert len(tap.bodies("courses.attendance.recorded.v1")) == 2
        enrolment_doc = await app.state.runtime.db["enrolments"].find_one()
        assert len(enrolment_doc["sessions"]) == 2


async def test_http_flow_and_errors(service_env, rabbit_url, namespace):
    person = PersonRegistered.create(snapshot(), producer="intake")
    app = create_app()
    async with EventTap(rabbit_url, namespace, "courses.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, person)
        await applied(app, person)
        course = {
            **course_details().model_dump(mode="json"),
            "teaching_units": 400,
            "course_type": "berufssprachkurs",
            "target_level": "B2",
        }
        r = await http.post("/courses", json=course)
        assert r.status_code == 201, r.text
        course_id = r.json()["course_id"]
        assert (await http.post("/courses", json=course)).status_code == 409

        r = await http.post(
            "/enrolments", json={"person_id": str(uuid.uuid4()), "course_id": course_id}
        )
        assert r.status_code == 404  # unknown, like another district's person
        assert "not found" in r.json()["detail"]

        r = await http.post(
            "/enrolments", json={"person_id": str(person.payload.person_id), "course_id": course_id}
        )
        assert r.status_code == 201
        eid = r.json()["enrolment_id"]
        r = await http.post(f"/enrolments/{eid}/completion", json={"completed_on": "2026-11-24"})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "level_reached"
        r = await http.post(
            f"/enrolments/{eid}/exams",
            json={
                "exam": "dtb",
                "level_tested": "B2",
                "result": "passed",
                "taken_on": "2026-11-20",
            },
        )
        assert r.status_code == 200, r.text
        r = await http.post(f"/enrolments/{eid}/completion", json={"completed_on": "2026-11-24"})
        assert r.json()["status"] == "completed"
        assert r.json()["level_reached"] == "B2"
        r = await http.post(
            f"/enrolments/{eid}/dropout", json={"dropped_on": "2026-11-25", "reason": "x"}
        )
        assert r.status_code == 409
        completed = (await tap.wait_for("courses.course.completed.v1"))[0]
        assert completed["payload"]["level_reached"] == "B2"


async def test_enrolments_of_many_people_in_one_call_only_the_callers(
    service_env, rabbit_url, namespace, monkeypatch
):
    mine = [PersonRegistered.create(snapshot(), producer="intake") for _ in range(3)]
    others = PersonRegistered.create(
        snapshot(
            contacts=[
                i.ResponsibleContact(
                    role=ContactRole.CASEWORKER, name="Jonas Weber", email="jonas@lk.example"
                )
            ]
        ),
        producer="intake",
    )
    fulda = PersonRegistered.create(snapshot(district_id="fulda"), producer="intake")
    app = create_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, *mine, others, fulda)
        for event in (*mine, others, fulda):
            await applied(app, event)
        handlers = app.state.handlers
        course = await handlers.create_course(course_details())
        enrolled = {}
        for event in (*mine[:2], others, fulda):
            e = await handlers.enrol(course.course_id, event.payload.person_id)
            enrolled[event.payload.person_id] = e.enrolment_id
        first = mine[0].payload.person_id
        await handlers.record_attendance(enrolled[first], TODAY, True)
        await handlers.record_attendance(enrolled[first], TODAY.replace(day=25), False)

        batches: list[list[uuid.UUID]] = []
        per_person: list[uuid.UUID] = []
        real_batch = handlers.repo.enrolments_of_people

        async def counted_batch(ids: list[uuid.UUID]) -> list[object]:
            batches.append(ids)
            return await real_batch(ids)

        async def one_by_one(pid: uuid.UUID) -> list[object]:
            per_person.append(pid)
            return []

        monkeypatch.setattr(handlers.repo, "enrolments_of_people", counted_batch)
        monkeypatch.setattr(handlers.repo, "enrolments_of_person", one_by_one)
        ids = [str(e.payload.person_id) for e in (*mine, others, fulda)]
        ids.append(str(uuid.uuid4()))  # unknown: left out like another's
        r = await http.post("/enrolments/query", json={"person_ids": ids})
        assert r.status_code == 200, r.text
        got = {e["person_id"]: e for e in r.json()}
        # the third of mine has no enrolment; Jonas's and Fulda's are not shown
        assert set(got) == {str(mine[0].payload.person_id), str(mine[1].payload.person_id)}
        row = got[str(first)]
        assert row["course_id"] == str(course.course_id)
        assert row["status"] == "active"
        assert row["attendance_rate"] == 0.5
        assert [s["present"] for s in row["sessions"]] == [True, False]
        assert row["exams"] == []
        assert row["level_reached"] is None
        assert len(batches) == 1  # one query for the batch
        assert per_person == []

        coordinator = bearer(app, Role.COORDINATOR, user="k@lk.example")
        r = await http.post("/enrolments/query", json={"person_ids": ids}, headers=coordinator)
        assert len(r.json()) == 3  # the district's: mine and Jonas's, never Fulda's
        assert str(fulda.payload.person_id) not in {e["person_id"] for e in r.json()}

        r = await http.post("/enrolments/query", json={"person_ids": []})
        assert r.status_code == 422
        r = await http.post(
            "/enrolments/query", json={"person_ids": [str(uuid.uuid4()) for _ in range(501)]}
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "person_ids"
        partner = bearer(app, Role.PARTNER, user="partner:vhs", partner="vhs")
        r = await http.post("/enrolments/query", json={"person_ids": ids}, headers=partner)
        assert r.status_code == 403
