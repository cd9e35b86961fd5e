"""placement's pipeline: accept or dismiss a suggestion, move a case to a kept job,
close it with a reason; every change is an event; the district's report."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import timedelta

from lotse_devstack.samples import TODAY, enrolment_facts, opening_report, snapshot
from lotse_placement.bootstrap import Overrides, create_app
from lotse_shared.auth import Role
from lotse_shared.contracts import intake as i
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import CefrLevel, OpeningType, Sector
from lotse_shared.contracts.courses import (
    CourseCompleted,
    CourseCompletedV1,
    Enrolled,
    EnrolledV1,
)
from lotse_shared.contracts.intake import PersonRegistered, PersonUpdated
from tests.support import EventTap, applied, bearer, publish, running


def placement_app():
    return create_app(overrides=Overrides(today=lambda: TODAY))


def kitchen(**changes) -> p.OpeningReported:
    report = opening_report(
        source_ref=changes.pop("source_ref", "KUECHE"),
        opening_type=OpeningType.PRAKTIKUM,
        title="Praktikum Küche",
        sector=Sector.GASTRONOMIE,
        occupation_code="29301",
        required_german_level=CefrLevel.A2,
        location=p.OpeningLocation(municipality="Baunatal"),
        **changes,
    )
    return p.OpeningReported.create(report, producer="ihk-kassel")


async def suggested(rabbit_url, namespace, tap, *events) -> tuple[str, str]:
    await publish(rabbit_url, namespace, *events)
    ready = (await tap.wait_for("placement.suggestions.ready.v1"))[0]["payload"]
    return ready["person_id"], ready["suggestions"][0]["opening_id"]


async def test_a_suggestion_becomes_a_kept_job_and_every_step_is_an_event(
    service_env, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        person_id, opening_id = await suggested(rabbit_url, namespace, tap, person, kitchen())
        accept = f"/people/{person_id}/suggestions/{opening_id}/accept"
        r = await http.post(accept, json={"note": "Frau H. möchte es versuchen"})
        assert r.status_code == 200, r.text
        case = r.json()
        assert case["stage"] == "proposed"
        assert (await http.post(accept, json={})).json()["case_id"] == case["case_id"]  # same
        listed = (await http.get(f"/people/{person_id}/suggestions")).json()
        assert listed[0]["suggestions"][0]["decision"] == "accepted"

        step = f"/cases/{case['case_id']}/stage"
        r = await http.post(step, json={"stage": "employed_3_months", "on": str(TODAY)})
        assert r.status_code == 422
        assert "cannot go from proposed to employed_3_months" in r.text
        start = TODAY + timedelta(days=7)
        for stage, on in (("interview", TODAY), ("internship_started", start)):
            r = await http.post(step, json={"stage": stage, "on": str(on)})
            assert r.status_code == 200, r.text
        opening = (await http.get(f"/openings/{opening_id}")).json()
        assert opening["seats_taken"] == 1  # the only seat: the opening leaves the search
        assert await app.state.runtime.db["openings"].count_documents({"cell": {"$exists": 1}}) == 0

        r = await http.post(step, json={"stage": "job_started", "on": str(start)})
        assert r.status_code == 200
        r = await http.post(step, json={"stage": "employed_3_months", "on": str(start)})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "on"
        later = start + timedelta(days=91)
        r = await http.post(step, json={"stage": "employed_3_months", "on": str(later)})
        assert r.json()["stage"] == "employed_3_months"

        r = await http.post(
            f"/cases/{case['case_id']}/close",
            json={"reason": "moved_away", "on": str(later), "note": "nach Hamburg"},
        )
        assert r.json()["closed"] is True
        again = await http.post(step, json={"stage": "employed_6_months", "on": str(later)})
        assert again.status_code == 409
        assert (await http.get(f"/openings/{opening_id}")).json()["seats_taken"] == 0

        changes = await tap.wait_for("placement.case.stage_changed.v1", count=5)
        assert [c["payload"]["stage"] for c in changes] == [
            "proposed",
            "interview",
            "internship_started",
            "job_started",
            "employed_3_months",
        ]
        closed = (await tap.wait_for("placement.case.closed.v1"))[0]["payload"]
        assert closed["closing_reason"] == "moved_away"
        assert closed["previous_stage"] == "employed_3_months"
        accepted = (await tap.wait_for("placement.suggestion.accepted.v1"))[0]["payload"]
        assert accepted["case_id"] == case["case_id"]
        history = (await http.get(f"/cases/{case['case_id']}")).json()["history"]
        assert len(history) == 6
        assert history[0]["note"] == "Frau H. möchte es versuchen"


async def test_a_dismissed_suggestion_is_never_suggested_again(service_env, rabbit_url, namespace):
    snap = snapshot()
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        person_id, opening_id = await suggested(
            rabbit_url, namespace, tap, PersonRegistered.create(snap, producer="intake"), kitchen()
        )
        base = f"/people/{person_id}/suggestions/{opening_id}"
        r = await http.post(f"{base}/dismiss", json={})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "reason"
        r = await http.post(f"{base}/dismiss", json={"reason": "Arbeitszeiten passen nicht"})
        assert r.status_code == 204
        dismissed = (await tap.wait_for("placement.suggestion.dismissed.v1"))[0]["payload"]
        assert dismissed["reason"] == "Arbeitszeiten passen nicht"
        assert (await http.post(f"{base}/accept", json={})).status_code == 409
        other = uuid.uuid4()
        r = await http.post(f"/people/{person_id}/suggestions/{other}/accept", json={})
        assert r.status_code == 404

        # the partner sends the opening again with more seats: still not told again
        more = kitchen(seats=4)
        await publish(rabbit_url, namespace, more)
        await applied(app, more)
        await app.state.handlers.sweep_pending(older_than_s=0)
        assert len(tap.bodies("placement.suggestions.ready.v1")) == 1


async def test_report_counts_stages_sectors_places_and_the_headline(
    service_env, rabbit_url, namespace
):
    people = [
        PersonRegistered.create(snapshot(municipality=place), producer="intake")
        for place in ("Baunatal", "Baunatal", "Kassel")
    ]
    app = placement_app()
    async with (
        EventTap(rabbit_url, namespace, "placement.#") as tap,
        running(app, role=Role.COORDINATOR) as http,
    ):
        await publish(rabbit_url, namespace, *people, kitchen(seats=5))
        sets = await tap.wait_for("placement.suggestions.ready.v1", count=3)
        cases = []
        for ready in sets:
            pid, oid = (
                ready["payload"]["person_id"],
                ready["payload"]["suggestions"][0]["opening_id"],
            )
            cases.append(
                (await http.post(f"/people/{pid}/suggestions/{oid}/accept", json={})).json()
            )
        first = f"/cases/{cases[0]['case_id']}"
        await http.post(f"{first}/stage", json={"stage": "job_started", "on": str(TODAY)})
        await http.post(
            f"/cases/{cases[1]['case_id']}/close",
            json={"reason": "declined_by_person", "on": str(TODAY)},
        )
        report = (await http.get("/reports/placement")).json()
        assert report["people_registered"] == 3
        assert report["people_in_work_or_training"] == 1
        assert report["in_work_or_training_rate"] == round(1 / 3, 4)
        assert report["open_cases_by_stage"]["job_started"] == 1
        assert report["open_cases_by_stage"]["proposed"] == 1
        assert report["closed_cases_by_reason"] == {"declined_by_person": 1}
        assert report["by_sector"] == {"gastronomie": {"job_started": 1, "proposed": 1}}
        assert sum(sum(v.values()) for v in report["by_municipality"].values()) == 2

        r = await http.get("/reports/placement", params={"format": "csv"})
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.text), delimiter=";"))
        assert rows[0] == ["section", "key", "stage", "count"]
        assert ["headline", "people_registered", "", "3"] in rows
        assert ["sector", "gastronomie", "job_started", "1"] in rows
        fulda = bearer(app, Role.COORDINATOR, user="k@fulda.example", district="fulda")
        empty = (await http.get("/reports/placement", headers=fulda)).json()
        assert empty["people_registered"] == 0
        caseworker = bearer(app, Role.CASEWORKER)
        assert (await http.get("/reports/placement", headers=caseworker)).status_code == 403


async def test_withdrawn_consent_takes_effect_in_placement(service_env, rabbit_url, namespace):
    """Matching withdrawn: the open suggestions are withdrawn, "why not?" is refused, no
    new suggestions; given again: suggested anew. Sharing with employers is needed from
    the interview on."""
    snap = snapshot(consent=i.Consent(matching=True, email_notifications=True))
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        person_id, opening_id = await suggested(
            rabbit_url, namespace, tap, PersonRegistered.create(snap, producer="intake"), kitchen()
        )
        accept = f"/people/{person_id}/suggestions/{opening_id}/accept"
        case = (await http.post(accept, json={})).json()
        r = await http.post(
            f"/cases/{case['case_id']}/stage", json={"stage": "interview", "on": str(TODAY)}
        )
        assert r.status_code == 409
        assert "consent.share_with_employers" in r.json()["detail"]

        second = kitchen(source_ref="KUECHE-2")
        await publish(rabbit_url, namespace, second)
        await tap.wait_for("placement.suggestions.ready.v1", count=2)
        other_id = tap.bodies("placement.suggestions.ready.v1")[1]["payload"]["suggestions"][0][
            "opening_id"
        ]

        withdrawn = snapshot(
            person_id=snap.person_id, revision=2, consent=i.Consent(email_notifications=True)
        )
        event = PersonUpdated.create(withdrawn, producer="intake")
        await publish(rabbit_url, namespace, event)
        await applied(app, event)
        listed = (await http.get(f"/people/{person_id}/suggestions")).json()
        decisions = {s["opening_id"]: s["decision"] for ss in listed for s in ss["suggestions"]}
        assert decisions == {opening_id: "accepted", other_id: "withdrawn"}
        r = await http.post(f"/people/{person_id}/suggestions/{other_id}/accept", json={})
        assert r.status_code == 409
        assert "consent.matching" in r.json()["detail"]
        r = await http.get(f"/people/{person_id}/evaluation")
        assert r.status_code == 409
        assert "consent.matching" in r.json()["detail"]
        third = kitchen(source_ref="KUECHE-3")
        await publish(rabbit_url, namespace, third)
        await applied(app, third)
        await app.state.handlers.sweep_pending(older_than_s=0)
        assert len(tap.bodies("placement.suggestions.ready.v1")) == 2  # nothing new

        given = snapshot(
            person_id=snap.person_id,
            revision=3,
            consent=i.Consent(matching=True, share_with_employers=True),
        )
        await publish(rabbit_url, namespace, PersonUpdated.create(given, producer="intake"))
        again = (await tap.wait_for("placement.suggestions.ready.v1", count=3))[2]["payload"]
        assert {s["opening_id"] for s in again["suggestions"]} >= {other_id}
        r = await http.post(
            f"/cases/{case['case_id']}/stage", json={"stage": "interview", "on": str(TODAY)}
        )
        assert r.status_code == 200, r.text


async def test_a_double_click_accepts_once_moves_once_dismisses_once_and_closes_once(
    service_env, rabbit_url, namespace
):
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        person = PersonRegistered.create(snapshot(), producer="intake")
        await publish(rabbit_url, namespace, person, kitchen(), kitchen(source_ref="KUECHE-2"))
        sets = await tap.wait_for("placement.suggestions.ready.v1", count=2)
        person_id = sets[0]["payload"]["person_id"]
        first, second = (s["payload"]["suggestions"][0]["opening_id"] for s in sets)

        # both clicks at once: one case, the same one answered twice
        accept = f"/people/{person_id}/suggestions/{first}/accept"
        both = await asyncio.gather(http.post(accept, json={}), http.post(accept, json={}))
        assert [r.status_code for r in both] == [200, 200], [r.text for r in both]
        assert both[0].json()["case_id"] == both[1].json()["case_id"]
        again = await http.post(accept, json={})
        assert again.status_code == 200
        assert again.json()["case_id"] == both[0].json()["case_id"]
        assert await app.state.runtime.db["cases"].count_documents({}) == 1

        step = f"/cases/{both[0].json()['case_id']}/stage"
        moved = await http.post(step, json={"stage": "interview", "on": str(TODAY)})
        assert moved.status_code == 200, moved.text
        same = await http.post(step, json={"stage": "interview", "on": str(TODAY)})
        assert same.status_code == 200, same.text
        assert same.json() == moved.json()  # unchanged: same version, same history
        assert same.json()["version"] == 2
        # a stage that is not a step from here is still refused
        back = await http.post(step, json={"stage": "proposed", "on": str(TODAY)})
        assert back.status_code == 422

        dismiss = f"/people/{person_id}/suggestions/{second}/dismiss"
        for _ in range(2):
            r = await http.post(dismiss, json={"reason": "zu früh"})
            assert r.status_code == 204, r.text

        await tap.wait_for("placement.suggestion.dismissed.v1")
        await tap.wait_for("placement.case.stage_changed.v1", count=2)
        await asyncio.sleep(1.0)  # the outbox relay's polls: nothing more comes
        assert len(tap.bodies("placement.suggestion.accepted.v1")) == 1
        assert len(tap.bodies("placement.suggestion.dismissed.v1")) == 1
        assert [c["payload"]["stage"] for c in tap.bodies("placement.case.stage_changed.v1")] == [
            "proposed",
            "interview",
        ]

        # closing twice with the same reason closes once; another reason is still refused
        close = f"/cases/{both[0].json()['case_id']}/close"
        body = {"reason": "declined_by_person", "on": str(TODAY)}
        first_close, second_close = [await http.post(close, json=body) for _ in range(2)]
        assert [first_close.status_code, second_close.status_code] == [200, 200]
        assert second_close.json() == first_close.json()
        other = await http.post(close, json={**body, "reason": "moved_away"})
        assert other.status_code == 409
        await tap.wait_for("placement.case.closed.v1")
        await asyncio.sleep(1.0)
        assert len(tap.bodies("placement.case.closed.v1")) == 1


async def test_report_funnel_and_stages_by_month(service_env, rabbit_url, namespace):
    people = [
        PersonRegistered.create(snapshot(), producer="intake"),  # A2
        PersonRegistered.create(snapshot(german_level=CefrLevel.B1), producer="intake"),
        PersonRegistered.create(snapshot(consent=i.Consent()), producer="intake"),  # no matching
        PersonRegistered.create(snapshot(district_id="fulda"), producer="intake"),
    ]
    course = Enrolled.create(
        EnrolledV1(
            **enrolment_facts(people[2].payload.person_id),
            starts_on=TODAY,
            ends_on=TODAY + timedelta(days=100),
        ),
        producer="courses",
    )
    app = placement_app()
    async with (
        EventTap(rabbit_url, namespace, "placement.#") as tap,
        running(app, role=Role.COORDINATOR) as http,
    ):
        await publish(rabbit_url, namespace, *people, course)
        for event in (*people, course):
            await applied(app, event)
        await publish(rabbit_url, namespace, kitchen(seats=5))
        sets = await tap.wait_for("placement.suggestions.ready.v1", count=2)
        cases = []
        for ready in sets:
            pid, oid = (
                ready["payload"]["person_id"],
                ready["payload"]["suggestions"][0]["opening_id"],
            )
            r = await http.post(f"/people/{pid}/suggestions/{oid}/accept", json={})
            cases.append(r.json()["case_id"])
        kept = f"/cases/{cases[0]}/stage"
        for stage, days in (
            ("job_started", 0),
            ("employed_3_months", 91),
            ("employed_6_months", 182),
        ):
            on = str(TODAY + timedelta(days=days))
            r = await http.post(kept, json={"stage": stage, "on": on})
            assert r.status_code == 200, r.text

        report = (await http.get("/reports/placement")).json()
        assert report["funnel"] == [
            {"step": "registered", "count": 3},  # Fulda's person is not Kassel's
            {"step": "in_course", "count": 1},
            {"step": "b1_reached", "count": 1},
            {"step": "suggested", "count": 2},
            {"step": "in_case", "count": 2},
            {"step": "in_work_or_training", "count": report["people_in_work_or_training"]},
            {"step": "employed_6_months", "count": 1},
        ]
        assert report["people_in_work_or_training"] == 1
        months = list(report["by_month"])
        assert months == [f"2025-{m:02d}" for m in (12,)] + [f"2026-{m:02d}" for m in range(1, 12)]
        november = report["by_month"]["2026-11"]
        assert november["proposed"] == 2
        assert november["job_started"] == 1
        assert november["employed_6_months"] == 0  # recorded for May 2027: not in these months
        assert sum(report["by_month"]["2026-10"].values()) == 0

        r = await http.get("/reports/placement", params={"format": "csv"})
        rows = list(csv.reader(io.StringIO(r.text), delimiter=";"))
        assert ["funnel", "registered", "", "3"] in rows
        assert ["funnel", "employed_6_months", "", "1"] in rows
        assert ["month", "2026-11", "proposed", "2"] in rows
        assert ["month", "2025-12", "job_started", "0"] in rows
        fulda = bearer(app, Role.COORDINATOR, user="k@fulda.example", district="fulda")
        theirs = (await http.get("/reports/placement", headers=fulda)).json()
        assert theirs["funnel"][0] == {"step": "registered", "count": 1}
        assert theirs["funnel"][3] == {"step": "suggested", "count": 0}


OTHER_CASEWORKER = "jonas.weber@landkreis-kassel.example"


def theirs(**changes) -> i.PersonSnapshotV1:
    """A person of another caseworker of Kassel."""
    contact = i.ResponsibleContact(role="caseworker", name="Jonas Weber", email=OTHER_CASEWORKER)
    return snapshot(contacts=[contact], **changes)


async def caseload(app, http, tap, rabbit_url, namespace) -> dict[str, str]:
    """A caseworker's people in placement: ``amal`` (A2) told of four kitchens and,
    on a forecast and then confirmed, of an apprenticeship; one kitchen closed, one
    dismissed, one accepted (a case at interview); ``bilal`` in a course, no matching
    consent; Jonas's ``carla`` and Fulda's ``dara``, both never suggested anything."""
    amal = snapshot()
    bilal = snapshot(consent=i.Consent(share_with_employers=True))
    carla = theirs(residence_status="aufenthaltsgestattung", work_permission="not_allowed")
    dara = snapshot(district_id="fulda")
    people = [PersonRegistered.create(s, producer="intake") for s in (amal, bilal, carla, dara)]
    await publish(rabbit_url, namespace, *people)
    for event in people:
        await applied(app, event)
    refs = ["KUECHE-1", "KUECHE-2", "KUECHE-3", "KUECHE-4"]
    await publish(rabbit_url, namespace, *(kitchen(source_ref=ref) for ref in refs))
    await tap.wait_for("placement.suggestions.ready.v1", count=4)
    azubi = opening_report(source_ref="AZUBI", start_date=TODAY + timedelta(days=250))
    await publish(rabbit_url, namespace, p.OpeningReported.create(azubi, producer="ba-jobsuche"))
    await tap.wait_for("placement.opening.published.v1", count=5)
    courses = [
        Enrolled.create(
            EnrolledV1(
                **enrolment_facts(s.person_id) | {"target_level": CefrLevel.B1},
                starts_on=TODAY,
                ends_on=TODAY + timedelta(days=180),
            ),
            producer="courses",
        )
        for s in (amal, bilal)
    ]
    await publish(rabbit_url, namespace, *courses)
    await tap.wait_for("placement.suggestions.ready.v1", count=5)  # the apprenticeship, forecast
    done = CourseCompleted.create(
        CourseCompletedV1(
            **courses[0].payload.model_dump(exclude={"starts_on", "ends_on"}),
            level_reached=CefrLevel.B1,
            completed_on=TODAY,
        ),
        producer="courses",
    )
    await publish(rabbit_url, namespace, done)
    confirmed = (await tap.wait_for("placement.suggestions.ready.v1", count=6))[5]["payload"]
    await applied(app, courses[1])

    ids = {
        o["source_ref"]: o["opening_id"]
        for o in (await http.get("/openings", params={"limit": 10})).json()
    }
    amal_id = str(amal.person_id)
    r = await http.post(f"/openings/{ids['KUECHE-1']}/close", json={"reason": "besetzt"})
    assert r.status_code == 200
    r = await http.post(
        f"/people/{amal_id}/suggestions/{ids['KUECHE-2']}/dismiss", json={"reason": "zu spät"}
    )
    assert r.status_code == 204
    case = await http.post(f"/people/{amal_id}/suggestions/{ids['KUECHE-3']}/accept", json={})
    r = await http.post(
        f"/cases/{case.json()['case_id']}/stage", json={"stage": "interview", "on": str(TODAY)}
    )
    assert r.status_code == 200, r.text
    return {
        **ids,
        "amal": amal_id,
        "bilal": str(bilal.person_id),
        "carla": str(carla.person_id),
        "dara": str(dara.person_id),
        "confirming_set": confirmed["suggestion_set_id"],
    }


async def test_open_suggestions_show_each_open_opening_once_best_first(
    service_env, rabbit_url, namespace
):
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        ids = await caseload(app, http, tap, rabbit_url, namespace)
        url = f"/people/{ids['amal']}/suggestions/open"
        r = await http.get(url)
        assert r.status_code == 200, r.text
        page = r.json()
        # closed, dismissed and accepted are gone; the apprenticeship, told twice, is once
        assert page["total"] == 2
        assert {s["opening_id"] for s in page["items"]} == {ids["KUECHE-4"], ids["AZUBI"]}
        scores = [s["score"] for s in page["items"]]
        assert scores == sorted(scores, reverse=True)
        azubi = next(s for s in page["items"] if s["opening_id"] == ids["AZUBI"])
        assert azubi["suggestion_set_id"] == ids["confirming_set"]  # the latest set's
        assert azubi["reasons"][0] == "B1 erreicht, Stelle verlangt B1"
        assert azubi["forecast"] is False
        assert azubi["decision"] is None
        assert azubi["title"] == "Ausbildung Fachkraft für Lagerlogistik"
        assert azubi["employer"] == "Nordhessen Logistik GmbH"
        assert azubi["municipality"] == "Kassel"
        assert azubi["opening_type"] == "ausbildung"
        assert azubi["sector"] == "logistik"
        assert azubi["suggested_at"]
        # the endpoint of the 20 newest sets still shows them all, decisions included
        sets = (await http.get(f"/people/{ids['amal']}/suggestions")).json()
        assert len(sets) == 6

        second = (await http.get(url, params={"limit": 1, "offset": 1})).json()
        assert second["total"] == 2
        assert [s["opening_id"] for s in second["items"]] == [page["items"][1]["opening_id"]]
        assert (await http.get(url, params={"limit": 0})).status_code == 422

        # another caseworker, another district: as if the person did not exist
        jonas = bearer(app, user=OTHER_CASEWORKER)
        assert (await http.get(url, headers=jonas)).status_code == 404
        fulda = bearer(app, Role.COORDINATOR, user="k@fulda.example", district="fulda")
        assert (await http.get(url, headers=fulda)).status_code == 404
        coordinator = bearer(app, Role.COORDINATOR, user="k@landkreis-kassel.example")
        assert (await http.get(url, headers=coordinator)).json()["total"] == 2
        audit = app.state.runtime.db["audit_log"]
        assert await audit.count_documents(
            {"endpoint": "/people/{person_id}/suggestions/open", "subjects.person_id": ids["amal"]}
        )


async def test_overview_of_a_caseload_in_one_call_only_the_callers_people(
    service_env, rabbit_url, namespace, monkeypatch
):
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        ids = await caseload(app, http, tap, rabbit_url, namespace)
        suggestions = (await http.get(f"/people/{ids['amal']}/suggestions/open")).json()
        repo = app.state.handlers.repo
        calls: list[str] = []
        for name in ("candidate", "cases_of", "candidates_among", "cases_among"):
            real = getattr(repo, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                calls.append(_name)
                return _real(*args, **kwargs)

            monkeypatch.setattr(repo, name, counted)
        asked = [ids[k] for k in ("amal", "bilal", "carla", "dara")] + [str(uuid.uuid4())]
        r = await http.post("/people/overview", json={"person_ids": asked})
        assert r.status_code == 200, r.text
        rows = {row["person_id"]: row for row in r.json()}
        assert list(rows) == [ids["amal"], ids["bilal"]]  # in the order asked; none of theirs
        amal = rows[ids["amal"]]
        assert amal == {
            "person_id": ids["amal"],
            "german_level": "A2",
            "course_level": "B1",
            "work_permission": "allowed",
            "matching_consent": True,
            "in_course": False,  # completed
            "open_suggestions": 2,
            "best_score": suggestions["items"][0]["score"],
            "furthest_stage": "interview",
            "open_cases": 1,
        }
        bilal = rows[ids["bilal"]]
        assert bilal["in_course"] is True
        assert bilal["open_suggestions"] == 0
        assert bilal["best_score"] is None
        assert bilal["furthest_stage"] is None
        # bounded: one read of the people and one of the cases, never one per person
        assert sorted(calls) == ["candidates_among", "cases_among"]

        coordinator = bearer(app, Role.COORDINATOR, user="k@landkreis-kassel.example")
        r = await http.post("/people/overview", json={"person_ids": asked}, headers=coordinator)
        assert [row["person_id"] for row in r.json()] == [ids["amal"], ids["bilal"], ids["carla"]]
        r = await http.post("/people/overview", json={"person_ids": [ids["dara"]]})
        assert r.json() == []
        r = await http.post("/people/overview", json={"person_ids": []})
        assert r.status_code == 422
        many = [str(uuid.uuid4()) for _ in range(501)]
        r = await http.post("/people/overview", json={"person_ids": many})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "person_ids"
