"""The caseworker's inbox in the portal, in a real headless Chromium (Debian's).

The whole stack runs as processes (``LocalStack`` with the portal, the stack fixture of
test_portal.py, a stack of this module's own); every sign-in goes through the local
OpenID provider's login page. Alerts arrive as the services' events over RabbitMQ, or
are written straight into notifications' database where a test needs many (paging) or
a digest. Each page is checked with axe-core and photographed (tests/artifacts/portal/).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.async_api import Page, expect

from lotse_devstack.samples import CASEWORKER, TODAY, enrolment_facts, person_body
from lotse_devstack.stack import LocalStack
from lotse_notifications.domain.model import Kind, Notification
from lotse_notifications.repository import NotificationsRepository
from lotse_shared.contracts.common import CefrLevel
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1
from lotse_shared.persistence.mongo import MongoTransaction, make_client
from tests.browser.test_portal import (
    COORDINATOR,
    DESKTOP,
    OTHER_CASEWORKER,
    PHONE,
    browser,
    check,
    sign_in,
    stack,
)
from tests.integration.test_inbox_volume import note
from tests.integration.test_notifications import dropped_for, suggestions_for
from tests.support import eventually, publish

__all__ = ["stack"]  # the module-scoped stack: this module runs one of its own


async def alerts_of(stack: LocalStack, user: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {stack.token('caseworker', user)}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        r = await http.get(f"{stack.url('notifications')}/notifications", params={"limit": 100})
        r.raise_for_status()
        result: list[dict[str, Any]] = r.json()
        return result


async def registered(stack: LocalStack, **changes: Any) -> dict[str, Any]:
    """A person of Petra's, registered through intake (notifications learns of them)."""
    headers = {"Authorization": f"Bearer {stack.token('coordinator', COORDINATOR)}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        r = await http.post(f"{stack.url('intake')}/people", json=person_body(**changes))
        r.raise_for_status()
        person: dict[str, Any] = r.json()
        return person


class Person:
    def __init__(self, person_id: str) -> None:
        self.person_id = uuid.UUID(person_id)


async def write_straight(stack: LocalStack, notes: list[Notification]) -> None:
    """As the use cases write them, into the stack's notifications database."""
    client = make_client(stack.mongo_url)
    try:
        repo = NotificationsRepository(client[f"{stack.config.namespace}_notifications"])
        async with client.start_session() as session, await session.start_transaction():
            await repo.add(MongoTransaction(db=repo.db, session=session), notes)
    finally:
        await client.close()


async def unread_shown(page: Page) -> int:
    text = await page.locator("#live-state").inner_text()
    return int(text.split()[0])


async def test_the_inbox_unread_first_read_archive_filter_and_live_on_a_phone(
    stack: LocalStack, rabbit_url: str, chromium: str
) -> None:
    amal = await registered(stack)
    person = Person(amal["person_id"])
    namespace = stack.config.namespace

    # (an event that comes before intake's news of the person waits for it, parked)
    await publish(rabbit_url, namespace, suggestions_for(person.person_id))

    async def first() -> bool:
        return len(await alerts_of(stack, CASEWORKER)) == 1

    await eventually(first, timeout_s=30, what="the suggestions alert")
    await publish(rabbit_url, namespace, dropped_for(person))  # the newest

    async def both() -> bool:
        return len(await alerts_of(stack, CASEWORKER)) == 2

    await eventually(both, timeout_s=30, what="two alerts")
    before = 2

    async with browser(chromium, PHONE) as context:
        page = await context.new_page()
        # the link in an alert email: the provider's login page, then the inbox
        await sign_in(page, stack, CASEWORKER, "/inbox")
        assert page.url.endswith("/inbox")
        cards = page.locator("ul.inbox li.card")
        await expect(cards).to_have_count(before)
        await expect(page.locator("li.card.unread")).to_have_count(before)
        assert await unread_shown(page) == before
        # each alert leads to the person's file
        hrefs = await cards.locator("h2 a").evaluate_all("(els) => els.map((a) => a.href)")
        assert hrefs
        assert all(h.endswith(f"/people/{person.person_id}") for h in hrefs)

        # mark the newest (the drop-out) read: it moves below the unread one
        await cards.first.get_by_role("button", name="Gelesen").click()
        await expect(page.locator("li.card.read")).to_have_count(1)
        await expect(cards.last).to_have_class(re.compile(r"\bread\b"))
        await expect(cards.first).to_have_class(re.compile(r"\bunread\b"))
        assert await unread_shown(page) == before - 1

        # a new alert arrives while the page is open: it shows without a click or reload
        await page.evaluate("window.stillHere = true")
        completed = CourseCompleted.create(
            CourseCompletedV1(
                **enrolment_facts(person.person_id),
                level_reached=CefrLevel.B1,
                completed_on=TODAY,
            ),
            producer="courses",
        )
        await publish(rabbit_url, namespace, completed)
        await expect(cards).to_have_count(before + 1, timeout=20_000)
        await expect(cards.first).to_contain_text("B1")
        await expect(page.locator("#live-state")).to_contain_text(str(before))
        assert await page.evaluate("window.stillHere === true")  # not reloaded
        await expect(page.locator("#live-notice")).to_be_visible()
        await check(page, "inbox-live")

        # archive the read one: gone from the inbox, present in the archive
        read_subject = await page.locator("li.card.read h2").inner_text()
        await page.locator("li.card.read").get_by_role("button", name="Archivieren").click()
        await expect(cards).to_have_count(before)
        await expect(page.locator("li.card.read")).to_have_count(0)
        await page.get_by_role("link", name="Archiv", exact=True).click()
        await expect(page).to_have_url(re.compile(r"archived=true"))
        await expect(cards).to_have_count(1)
        await expect(cards.locator("h2")).to_have_text(read_subject)
        await check(page, "inbox-archive")

        # one kind, from the filter bar (a new filter starts at the first page)
        await page.locator("p.tabs a").first.click()
        await expect(cards).to_have_count(before)
        await page.locator("#kind").select_option(label="Kurs abgeschlossen")
        await page.get_by_role("button", name="Filtern").click()
        await expect(page).to_have_url(re.compile(r"kind=course_completed"))
        kinds = await cards.evaluate_all("(els) => els.map((e) => e.dataset.kind)")
        assert kinds == ["course_completed"]
        await expect(page.locator("#unread-counts")).to_contain_text("Kurs abgeschlossen (1)")
        unread_before = await unread_shown(page)

        # all of this kind read; back on the same filter, the other kinds untouched
        await page.get_by_role("button", name="Alle als gelesen markieren").click()
        await expect(page).to_have_url(re.compile(r"kind=course_completed"))
        await expect(page.locator("li.card.unread")).to_have_count(0)
        await expect(page.locator("#unread-counts")).not_to_contain_text("Kurs abgeschlossen")
        await expect(page.get_by_role("button", name="Alle als gelesen markieren")).to_have_count(0)
        assert await unread_shown(page) == unread_before - 1
        await check(page, "inbox-filtered")

        # from the person's file: all of her alerts
        await page.goto(stack.url("portal") + f"/people/{person.person_id}")
        await page.get_by_role("link", name="Alle Benachrichtigungen").click()
        await expect(page).to_have_url(re.compile(f"person_id={person.person_id}"))
        await expect(page.locator("#person-filter")).to_contain_text("Amal Haddad")
        await expect(cards).to_have_count(before)  # the archived one is in the archive
        await page.get_by_role("link", name="Personenfilter aufheben").click()
        await expect(page).not_to_have_url(re.compile("person_id"))

    left = await alerts_of(stack, CASEWORKER)
    assert [a["kind"] for a in left if a["read_at"] is None] == ["suggestions_ready"]


def digest_note(recipient: str, at: datetime, people: list[uuid.UUID]) -> Notification:
    def entry(title: str, score: float, **changes: Any) -> dict[str, Any]:
        return {
            "opening_id": str(uuid.uuid4()),
            "title": title,
            "employer": "NH Logistik",
            "municipality": "Kassel",
            "opening_type": "ausbildung",
            "score": score,
            "reasons": ["B1 erreicht, Stelle verlangt B1"],
            **changes,
        }

    digest = note(
        people[0],
        Kind.DIGEST,
        at,
        recipient=recipient,
        subject="Lotse: Ihre Übersicht – 3 neue Vorschläge für 2 Personen",
        facts={
            "groups": [
                {
                    "person_id": str(people[0]),
                    "person": "Amal Haddad",
                    "entries": [
                        entry("Lagerhelfer", 40.0, unavailable=True),
                        entry("Fachkraft Lagerlogistik", 71.0),
                    ],
                },
                {
                    "person_id": str(people[1]),
                    "person": "Omar Nasser",
                    "entries": [entry("Pflegehelfer", 88.0, confirmed_note="B1 jetzt erreicht")],
                },
                {"person": "Ohne Einträge", "entries": "kaputt"},  # never breaks the page
            ],
            "items": [{"subject": "Omar Nasser wurde angemeldet"}, "kaputt"],
        },
    )
    digest.person_id = None  # a digest is about several people
    return digest


async def test_paging_and_a_digest_opened_into_its_entries(
    stack: LocalStack, chromium: str
) -> None:
    """Jonas's inbox: 30 alerts and a digest, written straight into the database."""
    now = datetime.now(UTC)
    people = [uuid.uuid4(), uuid.uuid4()]
    kinds = [Kind.ENROLLED, Kind.COURSE_DROPPED, Kind.ATTENDANCE_AT_RISK]
    notes = [
        note(
            people[i % 2],
            kinds[i % 3],
            now - timedelta(minutes=i + 2),
            recipient=OTHER_CASEWORKER,
            read=i % 4 == 0,
        )
        for i in range(30)
    ]
    await write_straight(stack, [*notes, digest_note(OTHER_CASEWORKER, now, people)])

    async with browser(chromium, DESKTOP) as context:
        page = await context.new_page()
        await sign_in(page, stack, OTHER_CASEWORKER, "/inbox")
        cards = page.locator("ul.inbox li.card")
        await expect(cards).to_have_count(25)
        assert await unread_shown(page) == 1 + sum(n.read_at is None for n in notes)

        # the digest (newest, unread) opens into its entries, by person, best first
        digest = cards.first
        await expect(digest).to_have_attribute("data-kind", "digest")
        summary = digest.locator("details.digest summary")
        await expect(summary).to_have_text("3 Stellen für 3 Personen")
        await summary.click()
        groups = digest.locator("h3")
        await expect(groups).to_have_text(["Omar Nasser", "Amal Haddad", "Ohne Einträge"])
        await expect(groups.first.get_by_role("link")).to_have_attribute(
            "href", f"/people/{people[1]}"
        )
        amal = digest.locator("ol.openings").nth(1).locator("li")
        await expect(amal).to_have_count(2)
        await expect(amal.first).to_contain_text("Fachkraft Lagerlogistik")
        await expect(amal.last).to_have_class("unavailable")
        await expect(digest).to_contain_text("B1 jetzt erreicht")
        await expect(digest.locator("ul.bundled li")).to_have_text(["Omar Nasser wurde angemeldet"])
        await check(page, "inbox-digest")

        # the second page, and the way back
        await page.get_by_role("link", name="Weiter").click()
        await expect(page).to_have_url(re.compile(r"offset=25"))
        await expect(cards).to_have_count(6)
        await expect(page.locator("a[rel=next]")).to_have_count(0)
        await page.locator("a[rel=prev]").click()
        await expect(cards).to_have_count(25)
        assert "offset" not in page.url

        # unread only
        await page.get_by_role("link", name="Nur ungelesene").click()
        await expect(page.locator("li.card.read")).to_have_count(0)
        await expect(cards).to_have_count(await unread_shown(page))
