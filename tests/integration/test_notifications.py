"""notifications: inbox and email over a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from lotse_devstack.mailsink import MailSink
from lotse_notifications.bootstrap import Overrides, create_app
from lotse_notifications.domain.model import BERLIN
from lotse_shared.contracts.common import CefrLevel, ContactRole, Language, OpeningType
from lotse_shared.contracts.courses import CourseDropped, CourseDroppedV1
from lotse_shared.contracts.intake import Consent, PersonRegistered, ResponsibleContact
from lotse_shared.contracts.placement import SuggestionsReady, SuggestionsReadyV1, SuggestionV1
from tests.samples import CASEWORKER, TODAY, enrolment_facts, snapshot
from tests.support import EventTap, applied, eventually, publish, running


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    sink = MailSink()
    sink.start()
    monkeypatch.setenv("LOTSE_SMTP_HOST", sink.host)
    monkeypatch.setenv("LOTSE_SMTP_PORT", str(sink.port))
    yield sink
    sink.stop()


class Clock:
    """The service's clock in these tests: starts on a Tuesday at 10:00 in Berlin."""

    def __init__(self, now: datetime = datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def office_app(clock: Clock | None = None, **overrides: Any) -> FastAPI:
    return create_app(overrides=Overrides(clock=clock or Clock(), **overrides))


def suggestions_for(person_id: uuid.UUID) -> SuggestionsReady:
    return SuggestionsReady.create(
        SuggestionsReadyV1(
            suggestion_set_id=uuid.uuid4(),
            person_id=person_id,
            district_id="kassel",
            trigger="course_completed",
            german_level=CefrLevel.B1,
            suggestions=[
                SuggestionV1(
                    opening_id=uuid.uuid4(),
                    opening_type=OpeningType.AUSBILDUNG,
                    title="Ausbildung Fachkraft für Lagerlogistik",
                    employer="NH Logistik",
                    municipality="Kassel",
                    distance_km=8.1,
                    score=71.0,
                    reasons=["B1 erreicht, Stelle verlangt B1", "8 km, ohne Führerschein"],
                )
            ],
        ),
        producer="placement",
    )


async def inbox(http, recipient: str = CASEWORKER) -> list[dict]:
    r = await http.get("/notifications", params={"recipient": recipient})
    assert r.status_code == 200, r.text
    return r.json()


async def test_suggestions_reach_inbox_and_mailbox(service_env, smtp, rabbit_url, namespace):
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    app = office_app()
    async with EventTap(rabbit_url, namespace, "notifications.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, person, event, event)  # delivered twice
        delivered = (await tap.wait_for("notifications.notification.delivered.v1"))[0]
        assert delivered["payload"]["recipient_role"] == "caseworker"
        assert delivered["payload"]["channel"] == "email"

        items = await inbox(http)
        assert len(items) == 1  # the mentor is not told about suggestions, and no duplicate
        note = items[0]
        assert note["kind"] == "suggestions_ready"
        assert note["subject"] == "Neue Vorschläge für Amal Haddad: 1 passende Stelle"
        assert note["email_status"] == "sent"
        assert note["read_at"] is None

        [mail] = smtp.mails
        assert mail.rcpt_tos == (CASEWORKER,)
        assert mail.subject == note["subject"]
        assert "Ausbildung Fachkraft für Lagerlogistik – NH Logistik, Kassel" in mail.body
        assert "Warum: B1 erreicht, Stelle verlangt B1; 8 km, ohne Führerschein" in mail.body
        assert f"recipient={CASEWORKER}" in mail.body

        r = await http.post(f"/notifications/{note['notification_id']}/read")
        assert r.json()["read_at"] is not None
        assert await inbox(http) != []
        unread = await http.get(
            "/notifications", params={"recipient": CASEWORKER, "unread_only": True}
        )
        assert unread.json() == []
        assert len(tap.bodies("notifications.notification.delivered.v1")) == 1


async def test_drop_out_tells_caseworker_and_mentor_in_their_language(
    service_env, smtp, rabbit_url, namespace
):
    snap = snapshot(
        contacts=[
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra Schmidt", email=CASEWORKER),
            ResponsibleContact(
                role=ContactRole.MENTOR,
                name="John Miller",
                email="john@mentors.example",
                language=Language.EN,
            ),
        ]
    )
    person = PersonRegistered.create(snap, producer="intake")
    dropped = CourseDropped.create(
        CourseDroppedV1(
            **enrolment_facts(snap.person_id), dropped_on=TODAY, reason="Umzug nach Bayern"
        ),
        producer="courses",
    )
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, dropped)
        await eventually(lambda: _count(smtp, 2), what="two emails")
        german = (await inbox(http))[0]
        assert german["subject"] == "Amal Haddad hat einen Kurs abgebrochen"
        assert "Umzug nach Bayern" in german["body"]
        english = (await inbox(http, "john@mentors.example"))[0]
        assert english["subject"] == "Amal Haddad dropped out of a course"
        assert english["language"] == "en"


async def first_where(http, predicate, recipient: str = CASEWORKER) -> dict:
    """The newest notification of a recipient, once it satisfies ``predicate``."""

    async def probe() -> dict | None:
        items = await inbox(http, recipient)
        return items[0] if items and predicate(items[0]) else None

    found = await eventually(probe, what="the notification's state")
    assert found is not None
    return found


async def _count(sink: MailSink, n: int) -> bool:
    return len(sink.mails) >= n


async def test_event_before_the_person_is_parked_then_delivered(
    service_env, smtp, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, event)
        await eventually(lambda: app.state.runtime.parking.count(), what="parked")
        assert await inbox(http) == []
        await publish(rabbit_url, namespace, person)
        await eventually(lambda: inbox(http), what="the notification")
        await eventually(lambda: _count(smtp, 1), what="the email")


async def test_temporary_smtp_failure_is_retried(service_env, smtp, rabbit_url, namespace):
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    clock = Clock()
    app = office_app(clock)
    smtp.reply_next("451 4.3.0 Mailbox busy, try later")
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, event)

        async def failed_once() -> bool:
            items = await inbox(http)
            return bool(items) and items[0]["email_attempts"] == 1

        await eventually(failed_once, what="the first attempt")
        note = (await inbox(http))[0]
        assert note["email_status"] == "pending"
        assert note["email_last_error"].startswith("451")
        assert smtp.mails == []
        clock.advance(seconds=6)  # past the first retry delay
        app.state.delivery.kick()
        await eventually(lambda: _count(smtp, 1), what="the retried email")
        note = await first_where(http, lambda n: n["email_status"] == "sent")
        assert note["email_attempts"] == 2
        log = (await http.get(f"/notifications/{note['notification_id']}/deliveries")).json()
        assert [(a["channel"], a["result"]) for a in log] == [
            ("inbox", "delivered"),
            ("email", "temporary_failure"),
            ("email", "sent"),
        ]
        assert log[1]["detail"].startswith("451")
        assert log[1]["at"] < log[2]["at"]


async def test_permanent_smtp_failure_is_recorded_and_inbox_keeps_it(
    service_env, smtp, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    app = office_app()
    smtp.reply_next("550 5.1.1 Mailbox unknown")
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, event)

        async def failed() -> bool:
            items = await inbox(http)
            return bool(items) and items[0]["email_status"] == "failed"

        await eventually(failed, what="the failure to be recorded")
        note = (await inbox(http))[0]
        assert note["email_attempts"] == 1
        assert note["email_last_error"].startswith("550")
        assert smtp.mails == []
        log = (await http.get(f"/notifications/{note['notification_id']}/deliveries")).json()
        assert [(a["channel"], a["result"]) for a in log] == [
            ("inbox", "delivered"),
            ("email", "failed"),
        ]
        assert log[1]["detail"].startswith("550")
        app.state.delivery.kick()
        assert await app.state.delivery.deliver_due() == 0  # never tried again


async def test_no_email_without_consent(service_env, smtp, rabbit_url, namespace):
    person = PersonRegistered.create(
        snapshot(consent=Consent(matching=True, email_notifications=False)), producer="intake"
    )
    event = suggestions_for(person.payload.person_id)
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, event)
        await applied(app, event)
        note = (await inbox(http))[0]
        assert note["email_status"] == "skipped"
        app.state.delivery.kick()
        assert await app.state.delivery.deliver_due() == 0
        assert smtp.mails == []
