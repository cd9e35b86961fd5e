"""Retries with growing delays, dead letters with their error, and replay after a fix."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from lotse_courses.bootstrap import create_app
from lotse_devstack.samples import COURSE_REF, TODAY, course_details, snapshot
from lotse_shared.auth import Role
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.ops.dead_letters import DeadLetterDesk
from tests.support import EventTap, applied, bearer, eventually, publish, running

SCHOOL = "vhs-region-kassel"


def attendance(person_id, day: int) -> p.AttendanceReported:
    return p.AttendanceReported.create(
        p.AttendanceReportedV1(
            person_id=person_id,
            course=COURSE_REF,
            session_date=TODAY.replace(day=day),
            present=True,
        ),
        producer=SCHOOL,
    )


async def test_poison_message_is_retried_then_dead_lettered_then_replayed_once(
    service_env, rabbit_url, namespace, monkeypatch: pytest.MonkeyPatch
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    enrolment = p.EnrolmentReported.create(
        p.EnrolmentReportedV1(person_id=pid, course=course_details()), producer=SCHOOL
    )
    poison, healthy = attendance(pid, 20), attendance(pid, 21)
    monkeypatch.setenv("LOTSE_RETRY_DELAYS_S", "[0.3, 0.6]")
    monkeypatch.setenv("LOTSE_CHAOS_FAIL_EVENT_IDS", json.dumps([str(poison.event_id)]))
    desk = DeadLetterDesk(rabbit_url, namespace)

    async with EventTap(rabbit_url, namespace, "courses.attendance.#") as tap:
        sick = create_app()
        async with running(sick):
            await publish(rabbit_url, namespace, person, enrolment)
            await applied(sick, enrolment)
            await publish(rabbit_url, namespace, poison, healthy)
            # the poison does not block the message behind it
            first = (await tap.wait_for("courses.attendance.recorded.v1"))[0]
            assert first["causation_id"] == str(healthy.event_id)

            async def dead() -> list:
                return await desk.list("courses")

            [letter] = await eventually(dead, timeout_s=20, what="the dead letter")
            assert letter.message_id == str(poison.event_id)
            assert letter.attempts == 3  # first try + two retries
            assert letter.reason.startswith("gave up after 3 attempts: InjectedFault")
            assert letter.routing_key == "partner.course.attendance_reported.v1"
            assert json.loads(letter.body)["event_id"] == str(poison.event_id)
            assert len(await desk.list("courses")) == 1  # listing does not take it away

        monkeypatch.setenv("LOTSE_CHAOS_FAIL_EVENT_IDS", "[]")  # "the fix"
        fixed = create_app()
        async with running(fixed):
            assert await desk.replay("courses", str(poison.event_id)) == 1
            await tap.wait_for("courses.attendance.recorded.v1", count=2)
            assert await desk.list("courses") == []
            # the same event again (a second replay, or the school resending) changes nothing
            await publish(rabbit_url, namespace, poison)
            marker = attendance(pid, 22)
            await publish(rabbit_url, namespace, marker)
            await tap.wait_for("courses.attendance.recorded.v1", count=3)
            causes = [b["causation_id"] for b in tap.bodies("courses.attendance.recorded.v1")]
            assert causes.count(str(poison.event_id)) == 1
            doc = await fixed.state.runtime.db["enrolments"].find_one()
            assert len(doc["sessions"]) == 3


async def test_replay_all_and_nothing_left(service_env, rabbit_url, namespace):
    desk = DeadLetterDesk(rabbit_url, namespace)
    app = create_app()
    async with running(app):
        for n in range(3):
            from lotse_devstack.partner import PartnerPublisher

            async with PartnerPublisher(rabbit_url, namespace) as pub:
                await pub.publish_raw(
                    b"not json", "partner.course.attendance_reported.v1", message_id=f"broken-{n}"
                )

        async def three() -> bool:
            return len(await desk.list("courses")) == 3

        await eventually(three, what="three dead letters")
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lotse_shared.ops",
            "dead-letters",
            "list",
            "--service",
            "courses",
            stdout=asyncio.subprocess.PIPE,
            env=os.environ.copy(),
        )
        listing = (await cli.communicate())[0].decode()
        assert cli.returncode == 0
        assert "broken-1" in listing
        assert "body is not UTF-8 JSON" in listing
        assert listing.strip().endswith("3 dead letter(s)")
        assert await desk.replay("courses", None) == 3
        # broken input stays broken: back in the dead letters, still with its reason
        await eventually(three, what="them dead-lettered again")
        reasons = {d.reason.split(":")[0] for d in await desk.list("courses")}
        assert reasons == {"body is not UTF-8 JSON"}


async def test_operator_lists_and_replays_dead_letters_over_http_without_bodies(
    service_env, rabbit_url, namespace
):
    app = create_app()
    async with running(app, role=Role.OPERATOR) as http:
        from lotse_devstack.partner import PartnerPublisher

        secret = b'{"payload": {"display_name": "Amal Haddad"'  # cut off: not JSON
        async with PartnerPublisher(rabbit_url, namespace) as pub:
            await pub.publish_raw(secret, "partner.course.attendance_reported.v1", message_id="m1")

        async def listed() -> list:
            r = await http.get("/ops/dead-letters")
            assert r.status_code == 200, r.text
            return r.json()

        [letter] = await eventually(listed, what="the dead letter over HTTP")
        assert letter["message_id"] == "m1"
        assert letter["routing_key"] == "partner.course.attendance_reported.v1"
        assert letter["reason"].startswith("body is not UTF-8 JSON")
        assert "Amal" not in r_text(letter)  # no body, no personal data

        caseworker = bearer(app, Role.CASEWORKER)
        assert (await http.get("/ops/dead-letters", headers=caseworker)).status_code == 403
        r = await http.post("/ops/dead-letters/replay", json={})
        assert r.status_code == 422
        assert "message_id" in r.text
        r = await http.post("/ops/dead-letters/replay", json={"message_id": "nope"})
        assert r.status_code == 404
        r = await http.post("/ops/dead-letters/replay", json={"message_id": "m1"})
        assert r.json() == {"replayed": 1}
        # still broken: back in the dead letters with its reason
        await eventually(listed, what="it dead-lettered again")


def r_text(value: object) -> str:
    return json.dumps(value)
