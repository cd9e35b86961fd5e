"""The caseworkers' portal in a real headless Chromium (Debian's), driven by Playwright.

The whole stack runs as processes (``LocalStack`` with the portal): the four services,
the portal and the local OpenID provider, whose login page every sign-in goes through.
Each page is checked with axe-core (from the npm registry, injected into the page) for
serious or critical accessibility violations, and photographed at desktop and phone
width into tests/artifacts/portal/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from lotse_devstack.cleanup import delete_namespace
from lotse_devstack.ports import free_port
from lotse_devstack.samples import CASEWORKER, MENTOR, opening_report, person_body
from lotse_devstack.stack import SERVICES, LocalStack, StackConfig
from tests.browser.conftest import CHROMIUM_ARGS
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".tools/axe/node_modules/axe-core/axe.min.js"
SHOTS = ROOT / "tests/artifacts/portal"
COORDINATOR = "bildungskoordination@landkreis-kassel.example"
OTHER_CASEWORKER = "jonas.weber@landkreis-kassel.example"
OTHER_DISTRICT = "anna.becker@werra-meissner.example"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def stack(
    rabbit_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp("portal-stack")
    config = StackConfig(
        namespace=namespace,
        ports={s: free_port() for s in (*SERVICES, "portal", "oidc")},
        rabbit_url=rabbit_url,
        mongo_url=mongo_url,
        log_dir=tmp / "logs",
        dev_keys=tmp / "dev-keys",
        portal=True,
        # the new opening's suggestion is an alert at once, not tomorrow's digest entry
        extra_env={"LOTSE_ALERT_CADENCE": '{"suggestions_ready": "immediate"}'},
    )
    with LocalStack(config) as running:
        yield running
    asyncio.run(delete_namespace(rabbit_url, namespace, mongo_url))


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> dict[str, Any]:
    """Two of Petra's people, one opening that suits the first (placement suggests it)."""

    async def seed() -> dict[str, Any]:
        coordinator = {"Authorization": f"Bearer {stack.token('coordinator', COORDINATOR)}"}
        petra = {"Authorization": f"Bearer {stack.token('caseworker', CASEWORKER)}"}
        async with httpx.AsyncClient(timeout=10, headers=coordinator) as http:
            amal = (await http.post(f"{stack.url('intake')}/people", json=person_body())).json()
            karim = (
                await http.post(
                    f"{stack.url('intake')}/people",
                    json=person_body(
                        given_name="Karim",
                        family_name="Nasser",
                        municipality="Vellmar",
                        work_permission="needs_approval",
                        residence_status="aufenthaltsgestattung",
                    ),
                )
            ).json()
            report = opening_report(
                title="Fachlagerist/in (Ausbildung)",
                required_german_level="A2",
                location={"municipality": "Baunatal"},
                start_date=date.today() + timedelta(days=30),
            )
            r = await http.post(
                f"{stack.url('placement')}/openings", json=report.model_dump(mode="json")
            )
            r.raise_for_status()
            opening = r.json()
            report_before = (await http.get(f"{stack.url('placement')}/reports/placement")).json()

            async def suggested() -> bool:
                r = await http.get(
                    f"{stack.url('placement')}/people/{amal['person_id']}/suggestions/open",
                    headers=petra,
                )
                return r.status_code == 200 and r.json()["total"] >= 1

            await eventually(suggested, timeout_s=30, what="a suggestion for Amal", every_s=0.2)
        return {"amal": amal, "karim": karim, "opening": opening, "before": report_before}

    return asyncio.run(seed())


@asynccontextmanager
async def browser(chromium: str, viewport: dict[str, int]) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await b.new_context(viewport=viewport, locale="de-DE")  # type: ignore[arg-type]
        try:
            yield context
        finally:
            await context.close()
            await b.close()


async def sign_in(page: Page, stack: LocalStack, user: str, path: str = "/caseload") -> None:
    """Through the provider's own login page, as a person would."""
    await page.goto(stack.url("portal") + path)
    assert page.url.startswith(stack.idp.url if stack.idp else "?"), page.url
    await page.locator(f"button[value='{user}']").click()
    await page.wait_for_url(re.compile(re.escape(stack.url("portal"))))


async def accessible(page: Page) -> None:
    """No serious or critical violation in axe-core's rules for this page."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: make test installs axe-core from the npm registry")
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => (await axe.run(document)).violations")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{page.url}: " + "; ".join(bad)


async def photograph(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    shot = SHOTS / f"{name}-{'phone' if width < 600 else 'desktop'}.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5_000


async def check(page: Page, name: str) -> None:
    await accessible(page)
    await photograph(page, name)
    if page.viewport_size and page.viewport_size["width"] < 600:
        # usable on a phone: nothing wider than the screen
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow}px wider than a phone's screen"


async def test_a_caseworker_takes_up_a_suggestion_and_the_district_counts_the_start(
    stack: LocalStack, seeded: dict[str, Any], chromium: str
) -> None:
    amal, opening = seeded["amal"], seeded["opening"]
    async with browser(chromium, DESKTOP) as context:
        page = await context.new_page()
        await sign_in(page, stack, CASEWORKER)
        cookie = next(c for c in await context.cookies() if c["name"] == "lotse_session")
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Lax"
        assert CASEWORKER not in cookie["value"]  # encrypted, not only signed

        # the caseload: both people, with the flags and the open suggestion
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Meine Fälle")
        rows = page.locator("table.caseload tbody tr")
        await expect(rows).to_have_count(2)
        karim_row = rows.filter(has_text="Karim Nasser")
        await expect(karim_row).to_contain_text("Arbeitserlaubnis beantragt")
        await expect(rows.filter(has_text="Amal Haddad").locator("td").nth(4)).to_have_text("1")
        await check(page, "caseload")
        await page.get_by_label("Hinweise").select_option("permission_pending")
        await page.get_by_role("button", name="Filtern").click()
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("Karim Nasser")
        await page.get_by_role("searchbox", name="Name").fill("amal")
        await page.get_by_label("Hinweise").select_option("")
        await page.get_by_role("button", name="Filtern").click()
        await expect(rows).to_have_count(1)

        # her file: the suggestion with its German reasons; take it up
        await page.get_by_role("link", name="Amal Haddad").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Amal Haddad")
        suggestion = page.locator("article.suggestion").filter(has_text=opening["title"])
        await expect(suggestion).to_contain_text("Interesse an Logistik")
        await check(page, "person")
        await suggestion.get_by_role("button", name="Vorschlagen").click()
        await expect(page.locator(".flash")).to_contain_text("Vermittlungsfall")
        case = page.locator("article.case").filter(has_text=opening["title"])
        await expect(case.locator(".stage")).to_have_text("Vorgeschlagen")

        # a double submit (two tabs, a quick second click) opens no second case
        form = page.locator("form[action$='/stage']").first
        token = await form.locator("input[name=csrf_token]").input_value()
        url = (
            stack.url("portal")
            + f"/people/{amal['person_id']}/suggestions/{opening['opening_id']}/accept"
        )
        answers = await asyncio.gather(
            *(page.request.post(url, form={"csrf_token": token}, max_redirects=0) for _ in range(2))
        )
        assert [a.status for a in answers] == [303, 303]
        await page.reload()
        await expect(page.locator("article.case")).to_have_count(1)

        # a form without the session's CSRF token changes nothing
        refused = await page.request.post(url, form={"csrf_token": "forged"}, max_redirects=0)
        assert refused.status == 403

        # move the case on: interview, then the job starts
        await case.get_by_label("Nächste Stufe").select_option("interview")
        await case.get_by_role("button", name="Speichern").click()
        await expect(case.locator(".stage")).to_have_text("Vorstellungsgespräch")
        await case.get_by_label("Nächste Stufe").select_option("apprenticeship_started")
        await case.get_by_role("button", name="Speichern").click()
        await expect(case.locator(".stage")).to_have_text("Ausbildung begonnen")

        # the opening and the inbox, each one step away
        await page.goto(stack.url("portal") + "/openings")
        await page.get_by_role("link", name=opening["title"]).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(opening["title"])
        await check(page, "opening")
        await page.goto(stack.url("portal") + "/openings")
        await check(page, "openings")
        await page.get_by_role("link", name=re.compile("Posteingang")).click()
        alert = page.locator("ul.inbox li.card").filter(has_text="Amal Haddad").first
        await expect(alert).to_be_visible()
        await check(page, "inbox")
        await alert.get_by_role("link").click()  # every alert leads to the person's file
        await expect(page.get_by_role("heading", level=1)).to_have_text("Amal Haddad")

        # sign out, also at the provider
        await page.get_by_role("button", name="Abmelden").click()
        if stack.idp and page.url.startswith(stack.idp.url):
            await page.get_by_role("button").first.click()  # the provider's confirmation
        await expect(page.get_by_role("heading", level=1)).to_have_text("Abgemeldet")
        await check(page, "signed-out")
        await page.goto(stack.url("portal") + "/caseload")
        assert stack.idp is not None
        assert page.url.startswith(stack.idp.url)

        # the coordinator's figures count the start
        await page.locator(f"button[value='{COORDINATOR}']").click()
        await page.wait_for_url(re.compile(re.escape(stack.url("portal"))))
        await page.get_by_role("link", name="Kennzahlen").click()
        before = next(
            f["count"] for f in seeded["before"]["funnel"] if f["step"] == "in_work_or_training"
        )
        step = page.locator("#funnel tr[data-step=in_work_or_training] td")
        await expect(step).to_have_text(str(before + 1))
        await check(page, "figures")
        async with page.expect_download() as download:
            await page.get_by_role("link", name="CSV herunterladen").click()
        saved = Path(await (await download.value).path())
        csv = await asyncio.to_thread(saved.read_text, encoding="utf-8")
        assert f"funnel;in_work_or_training;;{before + 1}" in csv


async def test_another_caseworker_and_another_district_get_the_not_yours_page(
    stack: LocalStack, seeded: dict[str, Any], chromium: str
) -> None:
    path = f"/people/{seeded['amal']['person_id']}"
    for user in (OTHER_CASEWORKER, OTHER_DISTRICT):
        async with browser(chromium, DESKTOP) as context:
            page = await context.new_page()
            await sign_in(page, stack, user, path)
            assert page.url == stack.url("portal") + path  # back where they wanted to go
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Nicht gefunden oder nicht Ihre Zuständigkeit"
            )
            assert "Amal" not in await page.content()
            await page.goto(stack.url("portal") + "/caseload")
            await expect(page.locator("table.caseload tbody tr")).to_have_count(0)
            if user == OTHER_CASEWORKER:
                await check(page, "not-yours")


async def test_a_refused_form_shows_each_error_at_its_field_and_keeps_what_was_typed(
    stack: LocalStack, seeded: dict[str, Any], chromium: str
) -> None:
    async with browser(chromium, DESKTOP) as context:
        page = await context.new_page()
        await sign_in(page, stack, CASEWORKER, "/people/new")
        await page.get_by_label("Vorname").fill("Samira")
        await page.get_by_label("Nachname").fill("Rahimi")
        await page.get_by_label("Geburtsjahr").fill("1890")  # before intake's earliest year
        await page.get_by_label("Wohnort").select_option("Kassel")
        await page.get_by_role("button", name="Speichern").click()
        await expect(page.locator(".flash.error")).to_contain_text("markierten Felder")
        await expect(page.locator("#err-birth_year")).to_be_visible()
        await expect(page.locator("#err-residence_status")).to_contain_text("Bitte")
        await expect(page.get_by_label("Vorname")).to_have_value("Samira")
        await expect(page.get_by_label("Wohnort")).to_have_value("Kassel")
        await check(page, "register-errors")

        await page.get_by_label("Geburtsjahr").fill("1994")
        await page.get_by_label("Aufenthaltsstatus").select_option("aufenthaltserlaubnis")
        await page.get_by_label("Arbeitserlaubnis").select_option("allowed")
        await page.get_by_role("button", name="Speichern").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Samira Rahimi")


async def test_without_a_session_the_wanted_page_comes_back_after_sign_in(
    stack: LocalStack, seeded: dict[str, Any], chromium: str
) -> None:
    path = f"/people/{seeded['karim']['person_id']}#faelle"
    async with browser(chromium, DESKTOP) as context:
        page = await context.new_page()
        await sign_in(page, stack, CASEWORKER)
        await context.clear_cookies()  # as when the session runs out
        await page.goto(stack.url("portal") + path)
        assert stack.idp is not None
        assert page.url.startswith(stack.idp.url)
        await page.locator(f"button[value='{CASEWORKER}']").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Karim Nasser")


async def test_every_page_on_a_phone(
    stack: LocalStack, seeded: dict[str, Any], chromium: str
) -> None:
    amal, opening = seeded["amal"], seeded["opening"]
    pages = {
        "caseload": "/caseload",
        "person": f"/people/{amal['person_id']}",
        "register": "/people/new",
        "openings": "/openings",
        "opening": f"/openings/{opening['opening_id']}",
        "inbox": "/inbox",
        "figures": "/figures",
    }
    async with browser(chromium, PHONE) as context:
        page = await context.new_page()
        await sign_in(page, stack, COORDINATOR)
        for name, path in pages.items():
            response = await page.goto(stack.url("portal") + path)
            assert response is not None
            assert response.status == 200, name
            await check(page, name)


async def test_a_service_that_is_down_leaves_the_rest_of_the_page(
    stack: LocalStack, seeded: dict[str, Any], chromium: str
) -> None:
    stack.stop_service("courses")
    try:
        async with browser(chromium, DESKTOP) as context:
            page = await context.new_page()
            await sign_in(page, stack, CASEWORKER)
            await expect(page.locator(".missing")).to_contain_text("Kurse")
            await expect(page.get_by_role("link", name="Karim Nasser")).to_be_visible()
            await page.get_by_role("link", name="Amal Haddad").click()
            await expect(page.locator(".missing")).to_contain_text("Kurse")
            await expect(page.locator("#vorschlaege")).to_be_visible()
    finally:
        stack.start_service("courses")
        stack.wait_healthy(("courses",))


async def test_a_registration_sent_twice_registers_one_person(
    stack: LocalStack, seeded: dict[str, Any], chromium: str
) -> None:
    async with browser(chromium, DESKTOP) as context:
        page = await context.new_page()
        await sign_in(page, stack, CASEWORKER, "/people/new")
        form: dict[str, str | float | bool] = {
            "csrf_token": await page.locator("input[name=csrf_token]").first.input_value(),
            "form_key": await page.locator("input[name=form_key]").input_value(),
            "given_name": "Dawit",
            "family_name": "Tesfaye",
            "birth_year": "1999",
            "municipality": "Kassel",
            "residence_status": "aufenthaltserlaubnis",
            "work_permission": "allowed",
            "education_level": "none",
            "max_commute_km": "20",
            "caseworker_name": "Petra Schmidt",
            "caseworker_email": CASEWORKER,
        }
        url = stack.url("portal") + "/people/new"
        answers = await asyncio.gather(
            *(page.request.post(url, form=form, max_redirects=0) for _ in range(2))
        )
        assert [a.status for a in answers] == [303, 303]
        assert answers[0].headers["location"] == answers[1].headers["location"]
        await page.goto(stack.url("portal") + "/caseload?q=Dawit")
        await expect(page.locator("table.caseload tbody tr")).to_have_count(1)


async def test_a_mentor_reads_the_people_they_accompany_and_is_offered_no_actions(
    stack: LocalStack, seeded: dict[str, Any], chromium: str
) -> None:
    assert stack.idp is not None
    stack.idp.add_user(
        MENTOR,
        {"email": MENTOR, "name": "Jürgen Becker", "roles": ["mentor"], "district": "kassel"},
    )
    async with browser(chromium, DESKTOP) as context:
        page = await context.new_page()
        await page.goto(stack.url("portal") + "/caseload")
        await page.locator("input[name=sub]").fill(MENTOR)  # the login form's own field
        await page.get_by_role("button", name="Authorize").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Meine Begleitungen")
        rows = page.locator("table.caseload tbody tr")
        await expect(rows.filter(has_text="Amal Haddad")).to_have_count(1)
        await expect(rows.filter(has_text="Samira")).to_have_count(0)  # not accompanied
        await expect(page.get_by_role("link", name="Person anlegen")).to_have_count(0)
        await rows.filter(has_text="Amal Haddad").get_by_role("link").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Amal Haddad")
        await expect(page.locator("#vorschlaege")).to_be_visible()
        await expect(page.get_by_role("button", name="Vorschlagen")).to_have_count(0)
        await expect(page.get_by_role("button", name="Speichern")).to_have_count(0)
        await check(page, "mentor-person")
