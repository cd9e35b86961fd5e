"""notifications: inbox and email over a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook, WebhookVerificationError

from lotse_devstack.mailsink import MailSink
from lotse_devstack.ports import free_port
from lotse_devstack.samples import CASEWORKER, TODAY, enrolment_facts, snapshot
from lotse_notifications.bootstrap import Overrides, create_app
from lotse_notifications.delivery import ChannelDelivery
from lotse_notifications.domain.model import BERLIN, Channel
from lotse_notifications.repository import NotificationsRepository
from lotse_notifications.webhook import standard_secret, verify
from lotse_shared.auth import Role
from lotse_shared.contracts.common import CefrLevel, ContactRole, OpeningType
from lotse_shared.contracts.courses import (
    AttendanceRecorded,
    AttendanceRecordedV1,
    CourseDropped,
    CourseDroppedV1,
    Enrolled,
    EnrolledV1,
)
from lotse_shared.contracts.intake import (
    PersonRegistered,
    ResponsibleContact,
)
from lotse_shared.contracts.placement import SuggestionsReady, SuggestionsReadyV1, SuggestionV1
from lotse_shared.persistence.mongo import make_client
from tests.support import EventTap, applied, as_user, eventually, publish, running

# These tests use a suggestions event to exercise the channels (SMTP, webhook, consent,
# quiet hours): suggestions at once and no daily cap. What a caseworker gets by default
# is tested in test_alert_policy.py.
pytestmark = pytest.mark.usefixtures("one_alert_per_event")


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
    r = await http.get("/notifications", headers=as_user(recipient))
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
        assert note["email"]["status"] == "sent"
        assert note["read_at"] is None
        # nothing to escalate: no escalate_at at all, so the sparse index stays small
        stored = app.state.runtime.db["notifications"]
        raw = await stored.find_one({"_id": uuid.UUID(note["notification_id"])})
        assert raw is not None
        assert "escalate_at" not in raw

        [mail] = smtp.mails
        assert mail.rcpt_tos == (CASEWORKER,)
        assert mail.subject == note["subject"]
        assert "Ausbildung Fachkraft für Lagerlogistik – NH Logistik, Kassel" in mail.body
        assert "Warum: B1 erreicht, Stelle verlangt B1; 8 km, ohne Führerschein" in mail.body
        # the link leads to the person's file in the portal (no address in the link)
        assert f"/people/{note['person_id']}" in mail.body
        assert "recipient=" not in mail.body

        r = await http.post(f"/notifications/{note['notification_id']}/read")
        assert r.json()["read_at"] is not None
        assert await inbox(http) != []
        unread = await http.get(
            "/notifications", params={"recipient": CASEWORKER, "unread_only": True}
        )
        assert unread.json() == []
        assert len(tap.bodies("notifications.notification.delivered.v1")) == 1


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
            return bool(items) and items[0]["email"]["attempts"] == 1

        await eventually(failed_once, what="the first attempt")
        note = (await inbox(http))[0]
        assert note["email"]["status"] == "pending"
        assert note["email"]["last_error"].startswith("451")
        assert smtp.mails == []
        clock.advance(seconds=6)  # past the first retry delay
        app.state.delivery.kick()
        await eventually(lambda: _count(smtp, 1), what="the retried email")
        note = await first_where(http, lambda n: n["email"]["status"] == "sent")
        assert note["email"]["attempts"] == 2
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
    async with EventTap(rabbit_url, namespace, "notifications.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, person, event)
        [told] = await tap.wait_for("notifications.notification.failed.v1")
        assert told["payload"]["channel"] == "email"
        assert told["payload"]["attempts"] == 1
        assert told["payload"]["error"].startswith("550 5.1.1")

        async def failed() -> bool:
            items = await inbox(http)
            return bool(items) and items[0]["email"]["status"] == "failed"

        await eventually(failed, what="the failure to be recorded")
        note = (await inbox(http))[0]
        assert note["email"]["attempts"] == 1
        assert note["email"]["last_error"].startswith("550")
        assert smtp.mails == []
        log = (await http.get(f"/notifications/{note['notification_id']}/deliveries")).json()
        assert [(a["channel"], a["result"]) for a in log] == [
            ("inbox", "delivered"),
            ("email", "failed"),
        ]
        assert log[1]["detail"].startswith("550")
        app.state.delivery.kick()
        assert await app.state.delivery.deliver_due() == 0  # never tried again


# --- rules: dedup, throttling, preferences, quiet hours, digest, escalation, webhook -------


def dropped_for(snap, **changes: Any) -> CourseDropped:
    return CourseDropped.create(
        CourseDroppedV1(
            **{**enrolment_facts(snap.person_id), **changes},
            dropped_on=TODAY,
            reason="Krankheit",
        ),
        producer="courses",
    )


def with_guide_and_coordinator(**changes: Any):
    return snapshot(
        contacts=[
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra Schmidt", email=CASEWORKER),
            ResponsibleContact(role=ContactRole.INTEGRATION_GUIDE, name="Lina Lotsin", email=GUIDE),
            ResponsibleContact(
                role=ContactRole.EDUCATION_COORDINATOR, name="Bea Koordination", email=COORDINATOR
            ),
        ],
        **changes,
    )


GUIDE = "lina@lotsen.example"
COORDINATOR = "bea.koordination@landkreis-kassel.example"


async def test_duplicate_events_give_one_notification_per_recipient_and_one_email(
    service_env, smtp, rabbit_url, namespace
):
    snap = with_guide_and_coordinator()
    person = PersonRegistered.create(snap, producer="intake")
    dropped = dropped_for(snap)
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, dropped, dropped, dropped)
        await applied(app, dropped)
        await eventually(lambda: _count(smtp, 2), what="two emails")
        await app.state.delivery.deliver_due()
        assert len(await inbox(http)) == 1
        assert len(await inbox(http, GUIDE)) == 1
        assert await inbox(http, COORDINATOR) == []  # not in the drop-out row of the table
        assert sorted(m.rcpt_tos[0] for m in smtp.mails) == sorted([CASEWORKER, GUIDE])
        # the email names the facts and links to the person's file in the portal (whoever
        # signs in sees their own; no address in the link), not the provider's reason
        assert all("Krankheit" not in m.body for m in smtp.mails)
        assert all(f"/people/{snap.person_id}" in m.body for m in smtp.mails)
        assert all("recipient=" not in m.body for m in smtp.mails)
        assert "Krankheit" in (await inbox(http))[0]["body"]


def attendance(snap, enrolment_id: uuid.UUID, rate: float, day: int) -> AttendanceRecorded:
    facts = {**enrolment_facts(snap.person_id), "enrolment_id": enrolment_id}
    return AttendanceRecorded.create(
        AttendanceRecordedV1(
            **facts,
            session_date=TODAY + timedelta(days=day),
            present=rate >= 0.8,
            attendance_rate=rate,
        ),
        producer="courses",
    )


async def test_opt_out_is_kept_except_for_critical_alerts(service_env, smtp, rabbit_url, namespace):
    snap = snapshot()
    person = PersonRegistered.create(snap, producer="intake")
    suggestions = suggestions_for(snap.person_id)
    dropped = dropped_for(snap)
    app = office_app()
    async with running(app) as http:
        bad = await http.put(
            "/preferences", params={"recipient": CASEWORKER}, json={"opted_out": ["inbox"]}
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["pointer"] == "#/opted_out/0"
        ok = await http.put(
            "/preferences", params={"recipient": CASEWORKER}, json={"opted_out": ["email"]}
        )
        assert ok.status_code == 200
        got = await http.get("/preferences", params={"recipient": CASEWORKER.upper()})
        assert got.json()["opted_out"] == ["email"]
        assert got.json()["cadence"] == {}  # the district's defaults apply

        await publish(rabbit_url, namespace, person, suggestions)
        await applied(app, suggestions)
        note = (await inbox(http))[0]
        assert (note["kind"], note["email"]["status"]) == ("suggestions_ready", "opted_out")
        log = (await http.get(f"/notifications/{note['notification_id']}/deliveries")).json()
        assert [(a["channel"], a["result"]) for a in log] == [
            ("inbox", "delivered"),
            ("email", "opted_out"),
        ]

        await publish(rabbit_url, namespace, dropped)  # critical: emailed all the same
        await eventually(lambda: _count(smtp, 2), what="emails to caseworker and mentor")
        assert CASEWORKER in {m.rcpt_tos[0] for m in smtp.mails}
        assert all("Vorschläge" not in m.subject for m in smtp.mails)


async def test_replicas_sending_one_batch_never_send_an_email_twice(
    service_env, smtp, rabbit_url, namespace
):
    people = [PersonRegistered.create(snapshot(), producer="intake") for _ in range(6)]
    events = [suggestions_for(p.payload.person_id) for p in people]
    clock = Clock(datetime(2026, 11, 24, 22, 30, tzinfo=BERLIN))  # night: every email waits
    app = office_app(clock)
    async with (
        EventTap(rabbit_url, namespace, "notifications.notification.delivered.v1") as tap,
        running(app) as http,
    ):
        await publish(rabbit_url, namespace, *people, *events)
        for event in events:
            await applied(app, event)
        own = app.state.delivery.email
        sent_by: dict[str, list[str]] = {"a": [], "b": []}

        def replica(name: str) -> ChannelDelivery:
            async def send(n: Any, _: datetime) -> None:
                sent_by[name].append(str(n.notification_id))

            return ChannelDelivery(Channel.EMAIL, own.uow, own.repo, send, clock=clock)

        clock.advance(hours=10)  # 08:30: every email is due at once, for every replica
        tried = await asyncio.gather(replica("a").deliver_due(), replica("b").deliver_due())

        async def all_sent() -> bool:  # the service's own loop is a third replica
            return all(n["email"]["status"] == "sent" for n in await inbox(http))

        await eventually(all_sent, what="every email sent")
        notes = await inbox(http)
        assert sum(tried) + len(smtp.mails) == 6
        sent = sent_by["a"] + sent_by["b"]
        assert len(sent) == len(set(sent))  # no notification went out twice
        assert len(notes) == 6
        assert all(n["email"]["status"] == "sent" and n["email"]["attempts"] == 1 for n in notes)
        for note in notes:
            log = (await http.get(f"/notifications/{note['notification_id']}/deliveries")).json()
            assert [(a["channel"], a["result"]) for a in log] == [
                ("inbox", "delivered"),
                ("email", "sent"),
            ]
        await tap.wait_for("notifications.notification.delivered.v1", count=6)
        told = {m["payload"]["notification_id"] for m in tap.bodies()}
        assert told == {n["notification_id"] for n in notes}


async def test_low_priority_items_go_out_as_one_daily_digest(
    service_env, smtp, rabbit_url, namespace
):
    people = [
        PersonRegistered.create(snapshot(display_name=name), producer="intake")
        for name in ("Amal Haddad", "Olena Kovalenko")
    ]
    enrolments = [
        Enrolled.create(
            EnrolledV1(
                **enrolment_facts(p.payload.person_id),
                starts_on=TODAY,
                ends_on=TODAY + timedelta(days=180),
            ),
            producer="courses",
        )
        for p in people
    ]
    clock = Clock()  # Tuesday 10:00; the digest goes at 16:00
    app = office_app(clock)
    async with running(app) as http:
        await publish(rabbit_url, namespace, *people, *enrolments)
        for e in enrolments:
            await applied(app, e)
        items = await inbox(http)
        assert [n["email"]["status"] for n in items] == ["digest", "digest"]
        assert await app.state.delivery.deliver_due() == 0
        assert await app.state.delivery.digests() == 0
        clock.advance(hours=6)  # 16:00
        assert await app.state.delivery.digests() == 1
        # the digest's own email: sent by this call, or by the app's own dispatch loop
        # (it runs on the same clock) if that came first; either way exactly once
        await app.state.delivery.deliver_due()
        await eventually(lambda: _count(smtp, 1), what="the digest's email")
        await app.state.delivery.deliver_due()
        [mail] = smtp.mails
        assert mail.rcpt_tos == (CASEWORKER,)
        assert mail.subject == "Lotse: Ihre Übersicht – 2 Meldungen"
        assert "- Amal Haddad ist in einem Kurs angemeldet" in mail.body
        assert "- Olena Kovalenko ist in einem Kurs angemeldet" in mail.body
        items = await inbox(http)
        digest = next(n for n in items if n["kind"] == "digest")
        assert digest["email"]["status"] == "sent"
        bundled = [n for n in items if n["kind"] == "enrolled"]
        assert [n["email"]["status"] for n in bundled] == ["bundled", "bundled"]
        assert {n["digest_id"] for n in bundled} == {digest["notification_id"]}
        log = (await http.get(f"/notifications/{bundled[0]['notification_id']}/deliveries")).json()
        assert log[-1]["result"] == "bundled"
        assert log[-1]["detail"] == f"digest {digest['notification_id']}"
        clock.advance(days=1)
        assert await app.state.delivery.digests() == 0  # nothing twice
        assert await app.state.delivery.deliver_due() == 0
        assert len(smtp.mails) == 1


async def _has_mail_to(sink: MailSink, address: str) -> bool:
    return any(address in m.rcpt_tos for m in sink.mails)


async def test_escalation_falls_back_to_the_districts_coordinator(
    service_env, smtp, rabbit_url, namespace, monkeypatch
):
    monkeypatch.setenv("LOTSE_COORDINATORS", '{"kassel": "bk@kassel.example"}')
    monkeypatch.setenv("LOTSE_ESCALATE_AFTER_S", "3600")
    monkeypatch.setenv("LOTSE_DISPATCH_POLL_S", "3600")  # escalation only when the test asks
    snap = snapshot()  # caseworker and mentor only
    dropped = dropped_for(snap)
    clock = Clock()
    app = office_app(clock)
    async with running(app) as http:
        await publish(rabbit_url, namespace, PersonRegistered.create(snap, producer="intake"))
        await publish(rabbit_url, namespace, dropped)
        await applied(app, dropped)
        clock.advance(minutes=61)
        # three replicas at the same moment: write conflicts, retried; one escalation
        tried = [app.state.handlers.escalate_due() for _ in range(3)]
        assert sorted(await asyncio.gather(*tried)) == [0, 0, 1]
        assert [n["kind"] for n in await inbox(http, "bk@kassel.example")] == ["escalation"]


async def test_archive_moves_a_notification_out_of_the_inbox(
    service_env, smtp, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, event)
        await applied(app, event)
        note = (await inbox(http))[0]
        r = await http.post(f"/notifications/{note['notification_id']}/archive")
        assert r.json()["archived_at"] is not None
        assert r.json()["read_at"] is not None
        assert await inbox(http) == []
        archived = await http.get(
            "/notifications", params={"recipient": CASEWORKER, "archived": True}
        )
        assert [n["notification_id"] for n in archived.json()] == [note["notification_id"]]
        assert (await http.get(f"/notifications/{uuid.uuid4()}/deliveries")).status_code == 404
        bad = await http.get("/notifications", params={"recipient": "not-an-address"})
        assert (bad.json()["errors"][0]["in"], bad.json()["errors"][0]["field"]) == (
            "query",
            "recipient",
        )


class PartnerTool:
    """A partner's webhook receiver: answers with scripted statuses, keeps what came."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        tool = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = tool.statuses.pop(0) if tool.statuses else 200
                if status == 200:
                    tool.received.append((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/lotse"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_signed_webhook_retries_a_5xx_and_gives_up_on_a_4xx(
    service_env, smtp, rabbit_url, namespace, monkeypatch
):
    tool = PartnerTool(503, 200, 400)
    monkeypatch.setenv("LOTSE_WEBHOOK_URL", tool.url)
    monkeypatch.setenv("LOTSE_WEBHOOK_SECRET", "partner-secret")
    snap = snapshot()
    person = PersonRegistered.create(snap, producer="intake")
    first, second = suggestions_for(snap.person_id), suggestions_for(snap.person_id)
    clock = Clock()
    app = office_app(clock)
    try:
        async with running(app) as http:
            await publish(rabbit_url, namespace, person, first)
            note = await first_where(http, lambda n: n["webhook"]["attempts"] == 1)
            assert note["webhook"]["status"] == "pending"
            assert note["webhook"]["last_error"].startswith("HTTP 503")
            clock.advance(seconds=6)
            await app.state.delivery.deliver_due()
            note = await first_where(http, lambda n: n["webhook"]["status"] == "sent")
            [(headers, body)] = tool.received
            # what a partner does with the Standard Webhooks library and their whsec_ secret
            secret = standard_secret("partner-secret")
            assert secret == "whsec_" + base64.b64encode(b"partner-secret").decode()
            sent = Webhook(secret).verify(body, headers)
            assert headers["webhook-id"] == sent["notification_id"]  # the same on a retry
            with pytest.raises(WebhookVerificationError):
                Webhook(standard_secret("another-secret")).verify(body, headers)
            with pytest.raises(WebhookVerificationError):
                Webhook(secret).verify(body.replace(b"suggestions", b"suggestionz"), headers)
            # the deprecated headers, still sent for one release
            assert verify(
                "partner-secret",
                headers["X-Lotse-Timestamp"],
                body,
                headers["X-Lotse-Signature"],
            )
            assert sent["notification_id"] == note["notification_id"]
            assert sent["kind"] == "suggestions_ready"
            assert "Amal" not in body.decode()  # identifiers, no names
            assert "petra" not in body.decode().lower()

            await publish(rabbit_url, namespace, second)
            await applied(app, second)
            note = await first_where(http, lambda n: n["webhook"]["status"] == "failed")
            assert note["webhook"]["last_error"].startswith("HTTP 400")
            assert note["email"]["status"] in ("pending", "sent")  # one channel failing is alone
            log = (await http.get(f"/notifications/{note['notification_id']}/deliveries")).json()
            assert ("webhook", "failed") in [(a["channel"], a["result"]) for a in log]
    finally:
        tool.close()


async def test_a_district_override_from_settings_changes_who_is_told(
    service_env, smtp, rabbit_url, namespace, monkeypatch
):
    monkeypatch.setenv(
        "LOTSE_ROUTING_OVERRIDES", '{"kassel": {"suggestions_ready": ["caseworker", "mentor"]}}'
    )
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, event)
        await applied(app, event)
        assert len(await inbox(http)) == 1
        [mentor] = await inbox(http, "j.becker@paten.example")
        assert mentor["kind"] == "suggestions_ready"
        assert mentor["recipient_role"] == "mentor"


async def test_inbox_events_stream_says_unread_and_newest_then_ends_for_a_reconnect(
    service_env, smtp, rabbit_url, namespace
):
    """GET /notifications/events: what the portal's open inbox page listens to."""
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggestions_for(person.payload.person_id)
    app = office_app()
    app.state.changes.stream_s = 0.5
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, event)
        await applied(app, event)
        r = await http.get("/notifications/events")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-store"
        assert r.text.startswith("retry: 2000\n\n")
        assert "event: inbox\ndata: 1|2026-11-24T09:00:00+00:00\n\n" in r.text
        # the same with the recipient named, as the other routes take it
        r = await http.get("/notifications/events", params={"recipient": CASEWORKER})
        assert "event: inbox\ndata: 1|2026-11-24T09:00:00+00:00\n\n" in r.text
        # another caseworker's stream is their own (empty) inbox; naming hers is refused
        murat = as_user("murat.yilmaz@landkreis-kassel.example")
        r = await http.get("/notifications/events", headers=murat)
        assert "event: inbox\ndata: 0|\n\n" in r.text
        r = await http.get("/notifications/events", params={"recipient": CASEWORKER}, headers=murat)
        assert r.status_code == 403


async def test_inbox_events_stream_tells_a_change_while_it_is_open(
    service_env, smtp, rabbit_url, namespace
):
    snap = snapshot()
    person = PersonRegistered.create(snap, producer="intake")
    first, second = suggestions_for(snap.person_id), dropped_for(snap)
    app = office_app()
    app.state.changes.stream_s = 3
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, first)
        await applied(app, first)
        # the test client hands the stream over when it ends: a new alert arrives meanwhile
        streamed = asyncio.create_task(http.get("/notifications/events"))
        await asyncio.sleep(0.5)
        await publish(rabbit_url, namespace, second)
        await applied(app, second)
        r = await streamed
        states = [line.removeprefix("data: ") for line in r.text.splitlines() if "data:" in line]
        assert [s.split("|")[0] for s in states] == ["1", "2"]
        assert states[0] != states[1]


async def test_the_inbox_stream_needs_a_bearer_token(service_env, smtp) -> None:
    app = office_app()
    async with running(app, role=None) as http:
        r = await http.get("/notifications/events")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        # the service serves no browser inbox any more: the portal has it
        assert (await http.get("/inbox")).status_code == 404
        assert (await http.get("/notifications/events", headers=as_user(CASEWORKER))).is_success


async def test_unread_by_person_counts_only_the_callers_unread_items_per_person(
    service_env, smtp, rabbit_url, namespace
):
    jonas = "jonas.weber@landkreis-kassel.example"
    theirs = [ResponsibleContact(role=ContactRole.CASEWORKER, name="Jonas Weber", email=jonas)]
    amal, bilal, carla = snapshot(), snapshot(), snapshot(contacts=theirs)
    people = [PersonRegistered.create(s, producer="intake") for s in (amal, bilal, carla)]
    alerts = [
        suggestions_for(amal.person_id),
        dropped_for(amal),
        suggestions_for(bilal.person_id),
        suggestions_for(carla.person_id),
    ]
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, *people)
        for event in people:
            await applied(app, event)
        await publish(rabbit_url, namespace, *alerts)
        for alert in alerts:
            await applied(app, alert)

        mine = await inbox(http)
        expected: dict[str, int] = {}
        for item in mine:
            expected[item["person_id"]] = expected.get(item["person_id"], 0) + 1
        assert set(expected) == {str(amal.person_id), str(bilal.person_id)}
        assert expected[str(amal.person_id)] >= 2  # an alert of each kind

        r = await http.get("/notifications/unread-by-person")
        assert r.status_code == 200, r.text
        assert r.json() == expected  # never Jonas's person

        # read or archived items are not counted; a person with none unread is left out
        for item in mine:
            if item["person_id"] == str(bilal.person_id):
                await http.post(f"/notifications/{item['notification_id']}/archive")
        first_of_amal = next(n for n in mine if n["person_id"] == str(amal.person_id))
        await http.post(f"/notifications/{first_of_amal['notification_id']}/read")
        r = await http.get("/notifications/unread-by-person")
        assert r.json() == {str(amal.person_id): expected[str(amal.person_id)] - 1}

        r = await http.get("/notifications/unread-by-person", headers=as_user(jonas))
        assert r.json() == {str(carla.person_id): 1}
        r = await http.get("/notifications/unread-by-person", params={"recipient": jonas})
        assert r.status_code == 403  # another caseworker's inbox
        admin = as_user("admin@landkreis-kassel.example", Role.ADMIN)
        r = await http.get(
            "/notifications/unread-by-person", params={"recipient": jonas}, headers=admin
        )
        assert r.json() == {str(carla.person_id): 1}
        fulda_admin = as_user("admin@fulda.example", Role.ADMIN, district="fulda")
        r = await http.get(
            "/notifications/unread-by-person", params={"recipient": jonas}, headers=fulda_admin
        )
        assert r.json() == {}  # not their district's


def one() -> dict[str, Any]:
    """A notification document with only what the unique index needs."""
    return {"_id": uuid.uuid4(), "recipient_email": CASEWORKER, "cause_event_id": uuid.uuid4()}


async def test_the_dispatcher_asks_the_database_when_the_next_item_falls_due(
    mongo_url: str, namespace: str
) -> None:
    """The read behind the idle dispatcher's sleep, against the database's indexes."""
    client = make_client(mongo_url)
    repo = NotificationsRepository(client[f"{namespace}-next-due"])
    await repo.ensure_indexes()
    at = datetime(2026, 11, 24, 9, 0, tzinfo=BERLIN)
    both = [Channel.EMAIL, Channel.WEBHOOK]
    try:
        assert await repo.next_due(both) is None
        await repo.notifications.insert_many(
            [
                {**one(), "email": {"status": "sent", "next_attempt_at": None}},
                {**one(), "email": {"status": "failed", "next_attempt_at": at}},
                {**one(), "escalate_at": at + timedelta(hours=24)},
            ]
        )
        assert await repo.next_due(both) == at + timedelta(hours=24)  # only the escalation
        await repo.entries.insert_one({"_id": uuid.uuid4(), "status": "waiting", "due_at": at})
        assert await repo.next_due(both) == at  # a digest entry
        soon = at - timedelta(minutes=3)
        await repo.notifications.insert_one(
            {**one(), "webhook": {"status": "pending", "next_attempt_at": soon}}
        )
        assert await repo.next_due(both) == soon
        assert await repo.next_due([Channel.EMAIL]) == at  # webhooks switched off
        sooner = soon - timedelta(minutes=1)
        await repo.notifications.insert_one(
            {**one(), "email": {"status": "digest", "next_attempt_at": sooner}}
        )
        assert await repo.next_due(both) == sooner
    finally:
        await client.drop_database(f"{namespace}-next-due")
        await client.close()


async def test_a_rounds_emails_take_their_places_under_the_cap_in_one_write_each(
    mongo_url: str, namespace: str
) -> None:
    """Two replicas counting a recipient's emails at once never take more than the cap
    between them, and each learns how many of its emails may go."""
    client = make_client(mongo_url)
    repo = NotificationsRepository(client[f"{namespace}-cap"])
    day = "2026-11-24"
    try:
        taken = await asyncio.gather(
            *(repo.take_email_slots(CASEWORKER.upper(), day, 5, 3) for _ in range(2))
        )
        assert sorted(taken) == [2, 3]  # the first comes, the second gets what is left
        assert await repo.take_email_slots(CASEWORKER, day, 5, 1) == 0
        assert await repo.take_email_slots(CASEWORKER, day, 7, 4) == 2  # the cap was raised
        assert await repo.take_email_slots(CASEWORKER, day, 3, 1) == 0  # lowered: none
        doc = await repo.email_counts.find_one({"_id": f"{CASEWORKER.lower()}|{day}"})
        assert doc is not None
        assert doc["sent"] == 7  # never counted down
        assert await repo.take_email_slots(CASEWORKER, day, 0, 2) == 0  # no cap: not counted
    finally:
        await client.drop_database(f"{namespace}-cap")
        await client.close()
