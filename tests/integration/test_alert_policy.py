"""What a caseworker receives by default: one alert per thing that happened, a digest for
new openings, nothing twice, caps with a visible overflow (issue #12).

The service runs in-process against RabbitMQ, SecantusDB and a real SMTP server, with
an injected clock (Tuesday 10:00 in Berlin unless a test moves it).
"""

from __future__ import annotations

import uuid
from typing import Any

from lotse_devstack.mailsink import MailSink
from lotse_devstack.samples import (
    CASEWORKER,
    TODAY,
    enrolment_facts,
    snapshot,
    suggested,
    suggestion,
)
from lotse_shared.contracts.common import CefrLevel
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.contracts.placement import (
    OpeningClosed,
    OpeningClosedV1,
)
from tests.integration.test_notifications import Clock, dropped_for, inbox, office_app
from tests.support import applied, as_user, eventually, publish, running

MENTOR = "j.becker@paten.example"


def completion_for(person_id: uuid.UUID) -> CourseCompleted:
    return CourseCompleted.create(
        CourseCompletedV1(
            **enrolment_facts(person_id), level_reached=CefrLevel.B1, completed_on=TODAY
        ),
        producer="courses",
    )


def closed(opening_id: uuid.UUID) -> OpeningClosed:
    return OpeningClosed.create(
        OpeningClosedV1(
            opening_id=opening_id,
            district_id="kassel",
            source="ba-jobsuche",
            source_ref=f"REF-{opening_id}",
            reason="besetzt",
        ),
        producer="placement",
    )


async def mails_to(sink: MailSink, address: str, n: int) -> list[Any]:
    async def enough() -> list[Any]:
        found = [m for m in sink.mails if address in m.rcpt_tos]
        return found if len(found) >= n else []

    return await eventually(enough, what=f"{n} email(s) to {address}")


def announced(items: list[dict[str, Any]]) -> list[str]:
    """Every suggestion title an inbox shows, wherever: alerts and digest entries."""
    titles = []
    for n in items:
        titles += [s["title"] for s in n["facts"].get("suggestions", [])]
        for group in n["facts"].get("groups", []):
            titles += [s["title"] for s in group["entries"]]
    return titles


async def test_a_completion_and_its_suggestions_are_one_alert_and_one_email(
    service_env, smtp, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    done = completion_for(pid)
    found = suggested(
        pid,
        suggestion("Praktikum Lager Kassel", 72),
        suggestion("EQ Fachlagerist Baunatal", 55),
        suggestion("Helfer Kommissionierung Fuldatal", 12),  # too weak to announce
        cause=done,
    )
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, done)
        await applied(app, done)
        [held] = await inbox(http)
        assert held["kind"] == "course_completed"
        assert held["email"]["status"] == "pending"  # waits for the suggestions
        assert "erscheinen in dieser Meldung, sobald" in held["body"]
        # the mentor is told about the completion at once, without suggestions
        [to_mentor] = await mails_to(smtp, MENTOR, 1)
        assert to_mentor.subject == "Amal Haddad hat einen Kurs abgeschlossen: B1 erreicht"

        await publish(rabbit_url, namespace, found, found)  # delivered twice
        await applied(app, found)
        [mail] = await mails_to(smtp, CASEWORKER, 1)
        assert mail.subject == (
            "Amal Haddad hat einen Kurs abgeschlossen: B1 erreicht – 2 passende Stellen"
        )
        assert "1. Praktikum Lager Kassel" in mail.body
        assert "2. EQ Fachlagerist Baunatal" in mail.body
        assert "Kommissionierung" not in mail.body

        [alert] = await inbox(http)
        assert alert["notification_id"] == held["notification_id"]
        assert announced([alert]) == ["Praktikum Lager Kassel", "EQ Fachlagerist Baunatal"]
        assert [m.subject for m in smtp.mails if CASEWORKER in m.rcpt_tos] == [mail.subject]
        mentor_items = await inbox(http, MENTOR)
        assert [n["kind"] for n in mentor_items] == ["course_completed"]
        assert "suggestions" not in mentor_items[0]["facts"]


async def test_suggestions_that_overtake_their_completion_wait_for_it(
    service_env, smtp, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    done = completion_for(pid)
    found = suggested(pid, suggestion("Praktikum Lager Kassel", 72), cause=done)
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, found)
        parked = app.state.runtime.db["parked"]
        await eventually(lambda: parked.count_documents({}), what="the suggestions parked")
        assert await inbox(http) == []
        await publish(rabbit_url, namespace, done)
        await applied(app, found)
        [alert] = await inbox(http)
        assert alert["kind"] == "course_completed"
        assert announced([alert]) == ["Praktikum Lager Kassel"]
        [mail] = await mails_to(smtp, CASEWORKER, 1)
        assert "Praktikum Lager Kassel" in mail.body


async def test_new_openings_wait_for_the_digest_closed_ones_are_left_out_or_marked(
    service_env, smtp, rabbit_url, namespace
):
    clock = Clock()  # Tuesday 10:00; the digest goes at 16:00
    amal = PersonRegistered.create(snapshot(), producer="intake")
    olena = PersonRegistered.create(snapshot(display_name="Olena Kovalenko"), producer="intake")
    lager, eq, kueche = (
        suggestion(t, s) for t, s in [("Lager", 70), ("EQ Büro", 40), ("Küche", 55)]
    )
    events = [
        suggested(amal.payload.person_id, lager),
        suggested(amal.payload.person_id, eq),
        suggested(amal.payload.person_id, kueche, suggestion("Schwach", 5)),
        suggested(olena.payload.person_id, lager.model_copy(update={"score": 90.0})),
    ]
    app = office_app(clock)
    async with running(app) as http:
        await publish(rabbit_url, namespace, amal, olena, *events)
        for e in events:
            await applied(app, e)
        assert await inbox(http) == []  # nothing at once: new openings wait for the digest
        await publish(rabbit_url, namespace, gone := closed(eq.opening_id))
        await applied(app, gone)

        assert await app.state.delivery.digests() == 0  # not yet 16:00
        clock.advance(hours=6)
        assert await app.state.delivery.digests() == 1
        [digest] = await inbox(http)
        assert digest["kind"] == "digest"
        assert digest["subject"] == "Lotse: Ihre Übersicht – 3 neue Vorschläge für 2 Personen"
        groups = digest["facts"]["groups"]
        assert [g["person"] for g in groups] == ["Olena Kovalenko", "Amal Haddad"]  # best first
        assert [s["title"] for s in groups[1]["entries"]] == ["Lager", "Küche"]
        [mail] = await mails_to(smtp, CASEWORKER, 1)
        assert mail.subject == digest["subject"]
        for shown in ("Olena Kovalenko:", "Amal Haddad:"):
            assert shown in mail.body
        for left_out in ("EQ Büro", "Schwach"):
            assert left_out not in mail.body

        await publish(rabbit_url, namespace, later := closed(kueche.opening_id))
        await applied(app, later)
        [digest] = await inbox(http)
        marks = {s["title"]: s["unavailable"] for s in digest["facts"]["groups"][1]["entries"]}
        assert marks == {"Lager": False, "Küche": True}

        clock.advance(days=1)
        assert await app.state.delivery.digests() == 0  # nothing twice
        assert sorted(announced(await inbox(http))) == ["Küche", "Lager", "Lager"]


async def test_the_daily_cap_moves_overflow_to_the_digest_and_critical_alerts_pass_it(
    service_env, smtp, rabbit_url, namespace, monkeypatch
):
    monkeypatch.setenv("LOTSE_DAILY_EMAIL_CAP", "2")
    clock = Clock()
    snap = snapshot()
    person = PersonRegistered.create(snap, producer="intake")
    events = [suggested(snap.person_id, suggestion(f"Stelle {i}", 60)) for i in range(4)]
    app = office_app(clock)
    async with running(app) as http:
        r = await http.put(
            "/preferences",
            headers=as_user(CASEWORKER),
            json={"cadence": {"suggestions_ready": "immediate", "course_dropped": "daily"}},
        )
        assert r.status_code == 200, r.text
        effective = r.json()["effective"]
        assert effective["daily_email_cap"] == 2
        assert effective["cadence"]["suggestions_ready"] == "immediate"
        assert effective["cadence"]["course_dropped"] == "immediate"  # critical: never held
        assert effective["cadence"]["enrolled"] == "daily"  # the district's default
        bad = await http.put(
            "/preferences", headers=as_user(CASEWORKER), json={"cadence": {"news": "daily"}}
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"].startswith("cadence.")

        await publish(rabbit_url, namespace, person, *events)
        for e in events:
            await applied(app, e)
        await mails_to(smtp, CASEWORKER, 2)
        await app.state.delivery.deliver_due()
        items = await inbox(http)
        assert sorted(n["email"]["status"] for n in items) == ["digest", "digest", "sent", "sent"]
        over = next(n for n in items if n["email"]["status"] == "digest")
        log = (await http.get(f"/notifications/{over['notification_id']}/deliveries")).json()
        assert log[-1]["result"] == "deferred"
        assert log[-1]["detail"].startswith("Tageslimit von 2 E-Mails erreicht")

        await publish(rabbit_url, namespace, drop := dropped_for(snap))
        await applied(app, drop)
        await mails_to(smtp, CASEWORKER, 3)  # a drop-out goes out over the cap

        clock.advance(hours=6)
        # the service's own dispatch loop may bundle it before this call does: either
        # way one digest is built, once
        built = await app.state.delivery.digests()
        [*_, digest_mail] = await mails_to(smtp, CASEWORKER, 4)
        assert built in (0, 1)
        assert await app.state.delivery.digests() == 0
        assert len([n for n in await inbox(http) if n["kind"] == "digest"]) == 1
        assert len([m for m in smtp.mails if CASEWORKER in m.rcpt_tos]) == 4
        assert digest_mail.subject == "Lotse: Ihre Übersicht – 2 Meldungen"
        assert "Stelle" in digest_mail.body


async def test_two_replicas_merge_a_completion_and_its_suggestions_once(
    service_env, smtp, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    done = completion_for(pid)
    found = suggested(pid, suggestion("Lager", 70), suggestion("Küche", 50), cause=done)
    first, second = office_app(), office_app()
    async with running(first) as http, running(second):
        await publish(rabbit_url, namespace, person)
        await applied(first, person)
        await publish(rabbit_url, namespace, found, done, found, done, found)
        await applied(first, done)
        await applied(first, found)
        [alert] = await inbox(http)
        assert sorted(announced([alert])) == ["Küche", "Lager"]
        [mail] = await mails_to(smtp, CASEWORKER, 1)
        assert "Küche" in mail.body
        await first.state.delivery.deliver_due()
        await second.state.delivery.deliver_due()
        assert len([m for m in smtp.mails if CASEWORKER in m.rcpt_tos]) == 1
        entries = first.state.runtime.db["suggestion_entries"]
        assert await entries.count_documents({"person_id": pid}) == 2


async def test_what_waits_for_the_digest_can_be_seen_before_it_goes(
    service_env, smtp, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    event = suggested(person.payload.person_id, suggestion("Lager", 70), suggestion("Küche", 40))
    app = office_app()
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, event)
        await applied(app, event)
        r = await http.get("/notifications/upcoming", headers=as_user(CASEWORKER))
        assert r.status_code == 200, r.text
        assert [(e["title"], e["due_at"]) for e in r.json()] == [
            ("Lager", "2026-11-24T15:00:00Z"),  # 16:00 in Berlin
            ("Küche", "2026-11-24T15:00:00Z"),
        ]
        other = await http.get("/notifications/upcoming", headers=as_user(MENTOR))
        assert other.json() == []
