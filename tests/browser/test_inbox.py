"""The caseworker's inbox in a real headless Chromium (Debian's), driven by Playwright.

notifications runs under uvicorn on a real port; events arrive over RabbitMQ. The
screenshot is kept in tests/artifacts/ (git-ignored); the test prints its path.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright, expect

from lotse_devstack.ports import free_port
from lotse_notifications.bootstrap import Overrides, create_app
from lotse_notifications.domain.model import BERLIN, Kind
from lotse_notifications.repository import NotificationsRepository
from lotse_shared.contracts.common import CefrLevel
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.persistence.mongo import Transaction, make_client
from tests.browser.conftest import CHROMIUM_ARGS
from tests.integration.test_inbox_volume import volume
from tests.integration.test_notifications import dropped_for, suggestions_for
from tests.samples import CASEWORKER, TODAY, enrolment_facts, snapshot
from tests.support import as_user, eventually, publish

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

pytestmark = pytest.mark.usefixtures("one_alert_per_event")


class ServedApp:
    """The service under uvicorn in a thread of its own, on a real port."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="inbox-server", daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("notifications did not start under uvicorn")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@asynccontextmanager
async def phone_page(chromium: str) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
        )
        try:
            yield await context.new_page()
        finally:
            await context.close()
            await browser.close()


async def inbox_size(url: str) -> int:
    async with httpx.AsyncClient(headers=as_user(CASEWORKER)) as client:
        r = await client.get(f"{url}/notifications")
        return len(r.json())


async def test_inbox_in_chromium_unread_first_read_archive_and_live(
    service_env, smtp, rabbit_url, namespace, chromium
):
    snap = snapshot()
    person = PersonRegistered.create(snap, producer="intake")
    tuesday = datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN)
    started = time.monotonic()
    app = create_app(  # Tuesday 10:00 in Berlin and running, so newer alerts sort first
        overrides=Overrides(clock=lambda: tuesday + timedelta(seconds=time.monotonic() - started))
    )
    completed = CourseCompleted.create(
        CourseCompletedV1(
            **enrolment_facts(snap.person_id), level_reached=CefrLevel.B1, completed_on=TODAY
        ),
        producer="courses",
    )
    with ServedApp(app) as served:
        await publish(rabbit_url, namespace, person, suggestions_for(snap.person_id))
        await publish(rabbit_url, namespace, dropped_for(snap))
        await eventually(lambda: _at_least(served.url, 2), what="two notifications")

        async with phone_page(chromium) as page:
            # the link in the email: first the sign-in form (a 401), then the inbox
            response = await page.goto(f"{served.url}/inbox?recipient={CASEWORKER}")
            assert response is not None
            assert response.status == 401
            token = as_user(CASEWORKER)["Authorization"].removeprefix("Bearer ")
            await page.locator("#token").fill(token)
            await page.get_by_role("button", name="Anmelden").click()
            await expect(page.locator("header p")).to_contain_text(CASEWORKER)
            cookies = await page.context.cookies()
            assert [c["httpOnly"] for c in cookies if c["name"] == "lotse_token"] == [True]
            viewport = page.locator('meta[name="viewport"]')
            assert "width=device-width" in (await viewport.get_attribute("content") or "")
            notes = page.locator("li.note")
            await expect(notes).to_have_count(2)
            await expect(page.locator("li.unread")).to_have_count(2)
            await expect(page.locator("#unread")).to_have_text("2")

            # mark the newest read: it moves below the unread one
            await notes.first.get_by_role("button", name="Gelesen").click()
            await expect(page.locator("li.read")).to_have_count(1)
            await expect(page.locator("#unread")).to_have_text("1")
            await expect(notes.last).to_have_class("note read")
            await expect(notes.first).to_have_class("note unread")

            # a new alert arrives while the page is open: it shows up without a click
            await publish(rabbit_url, namespace, completed)
            await expect(notes).to_have_count(3, timeout=15_000)
            await expect(notes.first).to_contain_text("B1 erreicht")
            await expect(page.locator("#unread")).to_have_text("2")

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "inbox.png"
            await page.screenshot(path=str(shot), full_page=True)
            print(f"\ninbox screenshot: {shot}")
            assert shot.stat().st_size > 10_000

            # archive the read one: gone from the inbox, present in the archive
            read_subject = await page.locator("li.read .subject").inner_text()
            await page.locator("li.read").get_by_role("button", name="Archivieren").click()
            await expect(notes).to_have_count(2)
            await expect(page.locator("li.read")).to_have_count(0)

            # readable on a phone: nothing wider than the screen
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0

            await page.get_by_role("link", name="Archiv").click()
            await expect(page.locator("li.note")).to_have_count(1)
            await expect(page.locator("li.note .subject")).to_have_text(read_subject)
            await page.goto(f"{served.url}/inbox?recipient=kein-adresse")
            assert "recipient" in await page.content()  # 422 names the field

        assert await inbox_size(served.url) == 2


async def _at_least(url: str, n: int) -> bool:
    return await inbox_size(url) >= n


async def test_inbox_pages_filters_by_kind_and_marks_all_read_in_chromium(
    service_env, smtp, rabbit_url, namespace, mongo_url, chromium
):
    tuesday = datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN)
    app = create_app(overrides=Overrides(clock=lambda: tuesday))
    notes = volume([uuid.uuid4(), uuid.uuid4()], tuesday, n=75)  # every third one read
    dropped_unread = [n for n in notes if n.kind is Kind.COURSE_DROPPED and n.read_at is None]
    unread = sum(n.read_at is None for n in notes)
    with ServedApp(app) as served:
        # written as the use cases write them, from this test's own client (uvicorn's
        # event loop owns the app's)
        client = make_client(mongo_url)
        repo = NotificationsRepository(client[app.state.runtime.settings.database_name])
        async with client.start_session() as session, await session.start_transaction():
            await repo.add(Transaction(db=repo.db, session=session), notes)
        await client.close()

        async with phone_page(chromium) as page:
            await page.goto(f"{served.url}/inbox")
            token = as_user(CASEWORKER)["Authorization"].removeprefix("Bearer ")
            await page.locator("#token").fill(token)
            await page.get_by_role("button", name="Anmelden").click()
            notes_shown = page.locator("li.note")
            await expect(notes_shown).to_have_count(50)
            await expect(page.locator("#range")).to_have_text("1–50 von 75")
            await expect(page.locator("#unread")).to_have_text(str(unread))

            # the second page: the other 25, and the way back
            await page.get_by_role("link", name="Ältere →").click()
            await expect(notes_shown).to_have_count(25)
            await expect(page.locator("#range")).to_have_text("51–75 von 75")
            await expect(page.get_by_role("link", name="← Neuere")).to_be_visible()
            assert "offset=50" in page.url

            # one kind, from the filter bar
            await page.locator("#kind").select_option(label="Kurs abgebrochen")
            await page.get_by_role("button", name="Filtern").click()
            await expect(page).to_have_url(re.compile(r"kind=course_dropped"))
            assert "offset" not in page.url  # a new filter starts at the first page
            kinds = await notes_shown.evaluate_all("(els) => els.map((e) => e.dataset.kind)")
            assert kinds
            assert set(kinds) == {"course_dropped"}
            await expect(page.locator("li.unread")).to_have_count(len(dropped_unread))
            await expect(page.locator("#unread-counts")).to_contain_text("Kurs abgebrochen")

            # all of this kind read; back on the same filter, the other kinds untouched
            await page.get_by_role("button", name="Alle als gelesen markieren").click()
            await expect(page).to_have_url(re.compile(r"kind=course_dropped"))
            await expect(page.locator("li.unread")).to_have_count(0)
            await expect(notes_shown).to_have_count(len(kinds))
            await expect(page.locator("#unread")).to_have_text(str(unread - len(dropped_unread)))
            await expect(page.locator("#unread-counts")).not_to_contain_text("Kurs abgebrochen")
            await expect(
                page.get_by_role("button", name="Alle als gelesen markieren")
            ).to_have_count(0)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0

        async with httpx.AsyncClient(headers=as_user(CASEWORKER)) as api:
            counts = (await api.get(f"{served.url}/notifications/unread-counts")).json()
        assert counts["total"] == unread - len(dropped_unread)
        assert counts["by_kind"]["course_dropped"] == 0
