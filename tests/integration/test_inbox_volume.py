"""The inbox at volume, as JSON (the portal's inbox page shows it): paging to the last
item, filters, read-all, unread counts per kind, and emails that are not sent once their
item was read.

Most notifications here are written straight into the service's database (as its use
cases write them), spread over weeks before the test clock, so the time windows and
the per-recipient tally of ``lotse_notifications.inbox`` are both exercised; the
skip-if-read test goes through events, quiet hours and SMTP.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from lotse_devstack.samples import CASEWORKER, snapshot
from lotse_notifications.domain.model import (
    BERLIN,
    ChannelState,
    DeliveryStatus,
    Kind,
    Notification,
)
from lotse_notifications.inbox import READ_BEFORE_SENT
from lotse_shared.auth import Role
from lotse_shared.contracts.common import ContactRole, Language
from lotse_shared.contracts.intake import PersonRegistered
from tests.integration.test_notifications import Clock, attendance, inbox, office_app
from tests.support import applied, as_user, eventually, publish, running

COLLEAGUE = "murat.yilmaz@landkreis-kassel.example"
KINDS = [
    Kind.SUGGESTIONS_READY,
    Kind.COURSE_COMPLETED,
    Kind.ENROLLED,
    Kind.COURSE_DROPPED,
    Kind.ATTENDANCE_AT_RISK,
]


def note(
    person_id: uuid.UUID,
    kind: Kind,
    created_at: datetime,
    *,
    read: bool = False,
    archived: bool = False,
    recipient: str = CASEWORKER,
    email: DeliveryStatus = DeliveryStatus.SENT,
    facts: dict[str, Any] | None = None,
    subject: str | None = None,
) -> Notification:
    return Notification(
        person_id=person_id,
        district_id="kassel",
        kind=kind,
        recipient_email=recipient,
        recipient_name="Petra Schmidt",
        recipient_role=ContactRole.CASEWORKER,
        language=Language.DE,
        subject=subject or f"{kind.value} {created_at:%d.%m. %H:%M}",
        body="Guten Tag Petra Schmidt,\n\nes gibt Neues.\n",
        facts=facts or {},
        cause_event_id=str(uuid.uuid4()),
        created_at=created_at,
        read_at=created_at + timedelta(minutes=5) if read or archived else None,
        archived_at=created_at + timedelta(minutes=6) if archived else None,
        email=ChannelState(
            status=email,
            next_attempt_at=(
                created_at + timedelta(days=40)
                if email in (DeliveryStatus.PENDING, DeliveryStatus.DIGEST)
                else None
            ),
        ),
    )


async def insert(app: FastAPI, notes: list[Notification]) -> None:
    async with app.state.runtime.uow.transaction() as tx:
        await app.state.handlers.repo.add(tx, notes)


def volume(people: list[uuid.UUID], now: datetime, n: int = 130) -> list[Notification]:
    """``n`` notifications every 11 hours back from ``now`` (about two months), kinds and
    people in turn, every third one read."""
    return [
        note(
            people[i % len(people)],
            KINDS[i % len(KINDS)],
            now - timedelta(hours=11 * i + 1),
            read=i % 3 == 0,
        )
        for i in range(n)
    ]


def inbox_order(notes: list[Notification]) -> list[str]:
    """Unread first, newest first: what the JSON (and so the portal's page) shows."""
    shown = [n for n in notes if n.archived_at is None]
    shown.sort(key=lambda n: (n.read_at is None, n.created_at, n.notification_id), reverse=True)
    return [str(n.notification_id) for n in shown]


async def json_pages(http: httpx.AsyncClient, **params: Any) -> list[str]:
    seen: list[str] = []
    while True:
        r = await http.get("/notifications", params={**params, "limit": 50, "offset": len(seen)})
        assert r.status_code == 200, r.text
        got = [n["notification_id"] for n in r.json()]
        seen += got
        if len(got) < 50:
            return seen


async def registered(rabbit_url: str, namespace: str, app: FastAPI, *names: str) -> list[uuid.UUID]:
    people = [
        PersonRegistered.create(snapshot(display_name=name), producer="intake") for name in names
    ]
    await publish(rabbit_url, namespace, *people)
    for p in people:
        await applied(app, p)
    return [p.payload.person_id for p in people]


async def test_paging_reaches_every_item_unread_first_newest_first(
    service_env, smtp, rabbit_url, namespace
):
    clock = Clock()
    app = office_app(clock)
    people = [uuid.uuid4() for _ in range(4)]
    notes = volume(people, clock.now)
    archived = [note(people[0], Kind.ENROLLED, clock.now - timedelta(days=3), archived=True)]
    others = [
        note(people[1], Kind.ENROLLED, clock.now - timedelta(hours=h), recipient=COLLEAGUE)
        for h in range(3)
    ]
    async with running(app) as http:
        await insert(app, notes + archived + others)
        expected = inbox_order(notes)

        assert await json_pages(http) == expected
        assert await json_pages(http, archived=True) == [str(archived[0].notification_id)]


async def test_filters_by_kind_person_and_unread_as_json(service_env, smtp, rabbit_url, namespace):
    clock = Clock()
    app = office_app(clock)
    async with running(app) as http:
        amal, omar = await registered(rabbit_url, namespace, app, "Amal Haddad", "Omar Nasser")
        notes = volume([amal, omar, omar, uuid.uuid4()], clock.now, n=120)
        await insert(app, notes)

        def expected(keep: Any) -> list[str]:
            return inbox_order([n for n in notes if keep(n)])

        dropped = expected(lambda n: n.kind is Kind.COURSE_DROPPED)
        assert await json_pages(http, kind="course_dropped") == dropped
        assert await json_pages(http, person_id=str(omar)) == expected(
            lambda n: n.person_id == omar
        )
        assert await json_pages(http, unread_only=True) == expected(lambda n: n.read_at is None)
        assert await json_pages(http, kind="enrolled", person_id=str(amal), unread_only=True) == (
            expected(
                lambda n: n.kind is Kind.ENROLLED and n.person_id == amal and n.read_at is None
            )
        )
        assert (await http.get("/notifications", params={"kind": "nonsense"})).status_code == 422

        # a person filter is audited as concerning that person
        audit = app.state.runtime.db["audit_log"]
        row = await audit.find_one({"endpoint": "/notifications", "subjects.person_id": str(omar)})
        assert row is not None


async def test_read_all_marks_only_the_filters_items_and_stops_their_emails(
    service_env, smtp, rabbit_url, namespace
):
    clock = Clock()
    app = office_app(clock)
    async with running(app) as http:
        amal, omar = await registered(rabbit_url, namespace, app, "Amal Haddad", "Omar Nasser")
        notes = volume([amal, omar], clock.now, n=60)
        waiting = [
            note(
                amal,
                Kind.COURSE_DROPPED,
                clock.now - timedelta(days=2),
                email=DeliveryStatus.PENDING,
            ),
            note(
                amal,
                Kind.COURSE_DROPPED,
                clock.now - timedelta(hours=2),
                email=DeliveryStatus.DIGEST,
            ),
            note(omar, Kind.ENROLLED, clock.now - timedelta(hours=3), email=DeliveryStatus.DIGEST),
        ]
        await insert(app, notes + waiting)
        everything = notes + waiting

        def unread(keep: Any) -> set[str]:
            return {str(n.notification_id) for n in everything if n.read_at is None and keep(n)}

        dropped = unread(lambda n: n.kind is Kind.COURSE_DROPPED)
        r = await http.post("/notifications/read-all", params={"kind": "course_dropped"})
        assert r.status_code == 200, r.text
        assert r.json() == {"marked": len(dropped)}
        assert set(await json_pages(http, unread_only=True)) == unread(
            lambda n: n.kind is not Kind.COURSE_DROPPED
        )
        first, second, other = [
            (await http.get(f"/notifications/{n.notification_id}")).json() for n in waiting
        ]
        assert first["email"]["status"] == second["email"]["status"] == "read"
        assert first["email"]["next_attempt_at"] is None
        assert (first["deliveries"][-1]["result"], first["deliveries"][-1]["detail"]) == (
            "skipped",
            READ_BEFORE_SENT,
        )
        assert other["email"]["status"] == "digest"
        assert other["read_at"] is None
        assert (
            await http.post("/notifications/read-all", params={"kind": "course_dropped"})
        ).json() == {"marked": 0}

        # one person's unread (the portal's button on a page filtered by person)
        r = await http.post("/notifications/read-all", params={"person_id": str(omar)})
        assert r.status_code == 200, r.text
        left = unread(lambda n: n.kind is not Kind.COURSE_DROPPED and n.person_id != omar)
        assert set(await json_pages(http, unread_only=True)) == left
        assert (await http.get(f"/notifications/{waiting[2].notification_id}")).json()["email"][
            "status"
        ] == "read"
        counts = (await http.get("/notifications/unread-counts")).json()
        assert counts["total"] == len(left)
        assert counts["by_kind"]["course_dropped"] == 0

        # another's inbox: not a caseworker's to clear
        theirs = await http.post("/notifications/read-all", params={"recipient": COLLEAGUE})
        assert theirs.status_code == 403
        audit = app.state.runtime.db["audit_log"]
        row = await audit.find_one(
            {"endpoint": "/notifications/read-all", "subjects.person_id": str(omar)}
        )
        assert row is not None


async def test_unread_counts_per_kind_follow_reads_archives_and_new_items(
    service_env, smtp, rabbit_url, namespace
):
    clock = Clock()
    app = office_app(clock)
    person = uuid.uuid4()
    days = timedelta(days=1)
    settled = [  # older than an hour: counted in the tally
        note(person, Kind.COURSE_DROPPED, clock.now - 3 * days),
        note(person, Kind.COURSE_DROPPED, clock.now - 4 * days),
        note(person, Kind.ENROLLED, clock.now - 5 * days, read=True),
        note(person, Kind.ESCALATION, clock.now - 6 * days),
    ]
    fresh = [note(person, Kind.DIGEST, clock.now - timedelta(minutes=10))]  # counted live
    async with running(app) as http:
        await insert(app, settled + fresh)

        async def counts() -> dict[str, Any]:
            r = await http.get("/notifications/unread-counts")
            assert r.status_code == 200, r.text
            return r.json()

        got = await counts()
        assert got["total"] == 4
        assert {k: n for k, n in got["by_kind"].items() if n} == {
            "course_dropped": 2,
            "escalation": 1,
            "digest": 1,
        }
        assert set(got["by_kind"]) == {k.value for k in Kind}

        await http.post(f"/notifications/{settled[0].notification_id}/read")
        await http.post(f"/notifications/{settled[3].notification_id}/archive")
        await http.post(f"/notifications/{settled[2].notification_id}/archive")  # read already
        await insert(app, [note(person, Kind.COURSE_DROPPED, clock.now)])
        got = await counts()
        assert (got["total"], got["by_kind"]["course_dropped"], got["by_kind"]["escalation"]) == (
            3,
            2,
            0,
        )
        assert len(await json_pages(http, archived=True)) == 2

        # what changes elsewhere (an erasure deletes) is counted once the tally is
        # rebuilt, in the background, an hour after it was built
        await app.state.runtime.db["notifications"].delete_one({"_id": settled[1].notification_id})
        assert (await counts())["total"] == 3
        clock.advance(hours=2)
        assert (await counts())["total"] == 3  # the old tally, while the new one is made

        async def rebuilt() -> bool:
            got = await counts()
            return (got["total"], got["by_kind"]["course_dropped"]) == (2, 1)

        await eventually(rebuilt, what="the tally rebuilt")


async def test_an_email_waiting_for_the_morning_is_not_sent_once_read(
    service_env, smtp, rabbit_url, namespace
):
    snap = snapshot()
    person = PersonRegistered.create(snap, producer="intake")
    at_risk = attendance(snap, uuid.uuid4(), 0.6, 0)
    clock = Clock(datetime(2026, 11, 24, 20, 0, tzinfo=BERLIN))  # Tuesday evening
    app = office_app(clock)
    async with running(app) as http:
        await publish(rabbit_url, namespace, person, at_risk)
        await applied(app, at_risk)
        [item] = await inbox(http)
        assert item["kind"] == "attendance_at_risk"
        assert item["email"]["status"] == "pending"
        assert item["email"]["next_attempt_at"].startswith("2026-11-25T07:00:00")  # 08:00 Berlin

        clock.advance(minutes=10)
        read = (await http.post(f"/notifications/{item['notification_id']}/read")).json()
        assert read["email"]["status"] == "read"
        assert read["email"]["next_attempt_at"] is None
        log = (await http.get(f"/notifications/{item['notification_id']}/deliveries")).json()
        assert (log[-1]["channel"], log[-1]["result"], log[-1]["detail"]) == (
            "email",
            "skipped",
            "im Posteingang gelesen, bevor die E-Mail ausging",
        )

        clock.advance(hours=12, minutes=30)  # Wednesday 08:40: the office is open
        await app.state.delivery.deliver_due()
        assert smtp.mails == []
        [after] = await inbox(http)
        assert after["email"]["status"] == "read"
        assert [a["result"] for a in after["deliveries"] if a["channel"] == "email"] == ["skipped"]


async def test_an_admin_may_clear_another_inbox_of_their_district_only(
    service_env, smtp, rabbit_url, namespace
):
    clock = Clock()
    app = office_app(clock)
    person = uuid.uuid4()
    kassel = note(person, Kind.COURSE_DROPPED, clock.now - timedelta(hours=1))
    fulda = note(person, Kind.COURSE_DROPPED, clock.now - timedelta(hours=2))
    fulda.district_id = "fulda"
    async with running(app, Role.ADMIN, user="admin@landkreis-kassel.example") as http:
        await insert(app, [kassel, fulda])
        r = await http.post("/notifications/read-all", params={"recipient": CASEWORKER})
        assert r.json() == {"marked": 1}
        # she still has the other district's item unread
        r = await http.get(f"/notifications/{fulda.notification_id}", headers=as_user(CASEWORKER))
        assert r.status_code == 200, r.text
        assert r.json()["read_at"] is None
        r = await http.get(f"/notifications/{kassel.notification_id}", headers=as_user(CASEWORKER))
        assert r.json()["read_at"] is not None
