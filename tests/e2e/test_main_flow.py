"""The four services as processes: person registered -> enrolled -> course completed ->
suggestions -> the caseworker's inbox holds the alert and the SMTP server got the email."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from lotse_devstack.demo import COURSE, PEOPLE, SCHOOL, openings
from lotse_devstack.partner import PartnerPublisher
from lotse_devstack.ports import free_port
from lotse_devstack.stack import SERVICES, LocalStack, StackConfig
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import CefrLevel, CourseType
from tests.support import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(rabbit_url: str, mongo_url: str, namespace: str, tmp_path):
    config = StackConfig(
        namespace=namespace,
        ports={s: free_port() for s in SERVICES},
        rabbit_url=rabbit_url,
        mongo_url=mongo_url,
        log_dir=tmp_path / "logs",
    )
    with LocalStack(config) as running:
        yield running


async def test_course_completion_alerts_the_caseworker(stack: LocalStack, namespace: str):
    today = date.today()
    caseworker = PEOPLE[0]["contacts"][0]["email"]
    async with httpx.AsyncClient(timeout=10) as http:
        ids = []
        for person in PEOPLE:
            r = await http.post(f"{stack.url('intake')}/people", json=person)
            assert r.status_code == 201, r.text
            ids.append(r.json()["person_id"])
        amal = ids[0]

        async with PartnerPublisher(stack.config.rabbit_url, namespace) as pub:
            details = p.CourseDetails(
                **COURSE.model_dump(),
                course_type=CourseType.INTEGRATIONSKURS,
                title="Integrationskurs",
                target_level=CefrLevel.B1,
                starts_on=today - timedelta(days=300),
                ends_on=today,
                municipality="Baunatal",
            )
            await pub.publish(
                p.EnrolmentReported.create(
                    p.EnrolmentReportedV1(person_id=amal, course=details), producer=SCHOOL
                )
            )

            async def enrolled() -> list:
                r = await http.get(f"{stack.url('courses')}/enrolments", params={"person_id": amal})
                return r.json()

            [enrolment] = await eventually(enrolled, timeout_s=30, what="enrolment")
            assert enrolment["status"] == "active"

            for source, report in openings(today):
                await pub.publish(p.OpeningReported.create(report, producer=source))

            async def five_openings() -> bool:
                return len((await http.get(f"{stack.url('placement')}/openings")).json()) == 5

            await eventually(five_openings, timeout_s=30, what="openings")

            await pub.publish(
                p.ExamResultReported.create(
                    p.ExamResultReportedV1(
                        person_id=amal, course=COURSE, exam="dtz", result="B1", taken_on=today
                    ),
                    producer=SCHOOL,
                )
            )
            await pub.publish(
                p.CompletionReported.create(
                    p.CompletionReportedV1(person_id=amal, course=COURSE, completed_on=today),
                    producer=SCHOOL,
                )
            )

        async def completed_alert() -> dict[str, Any]:
            r = await http.get(
                f"{stack.url('notifications')}/notifications", params={"recipient": caseworker}
            )
            for note in r.json():
                if (
                    note["kind"] == "suggestions_ready"
                    and "Amal Haddad" in note["subject"]
                    and "Lagerlogistik" in note["body"]
                ):
                    return dict(note)
            return {}

        note = await eventually(completed_alert, timeout_s=60, what="the caseworker's alert")
        assert "Warum: B1 erreicht, Stelle verlangt B1" in note["body"]
        assert "Interesse an Logistik" in note["body"]

        state = (
            await http.get(f"{stack.url('courses')}/enrolments", params={"person_id": amal})
        ).json()
        assert state[0]["status"] == "completed"
        assert state[0]["level_reached"] == "B1"

        sets = (await http.get(f"{stack.url('placement')}/people/{amal}/suggestions")).json()
        assert sets[0]["trigger"] == "course_completed"

    sink = stack.mail_sink
    assert sink is not None

    async def mailed() -> bool:
        return any(
            m.subject == note["subject"] and caseworker in m.rcpt_tos and "Lagerlogistik" in m.body
            for m in sink.mails
        )

    await eventually(mailed, timeout_s=30, what="the email at the SMTP server")
    # Yonas has no work permit yet: never suggested anything, however many openings
    yonas_mails = [m for m in sink.mails if "Yonas" in m.subject]
    assert yonas_mails == []


def test_services_stop_cleanly_on_sigterm(stack: LocalStack):
    for service in SERVICES:
        proc = stack.procs[service]
        stack.stop_service(service)
        # uvicorn re-raises the signal after a graceful shutdown, hence -15 rather than 0
        assert proc.returncode in (0, -15), f"{service} exited with {proc.returncode}"
        log = (stack.log_dir / f"{service}.log").read_text()
        assert f"{service} stopped" in log, log[-2000:]
