"""placement: suggestions on course completion and on new openings, with reasons."""

from __future__ import annotations

import uuid

from lotse_placement.bootstrap import Overrides, create_app
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import CefrLevel, OpeningType, Sector, WorkPermission
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1
from lotse_shared.contracts.intake import Consent, PersonRegistered, PersonUpdated
from tests.samples import TODAY, enrolment_facts, opening_report, snapshot
from tests.support import EventTap, applied, eventually, publish, running


def placement_app():
    return create_app(overrides=Overrides(today=lambda: TODAY))


def completed(person_id: uuid.UUID, level: CefrLevel = CefrLevel.B1) -> CourseCompleted:
    return CourseCompleted.create(
        CourseCompletedV1(**enrolment_facts(person_id), level_reached=level, completed_on=TODAY),
        producer="courses",
    )


def openings() -> list[p.OpeningReported]:
    return [
        p.OpeningReported.create(opening_report(source_ref="B1-LAGER"), producer="ba-jobsuche"),
        p.OpeningReported.create(
            opening_report(
                source_ref="A2-KUECHE",
                opening_type=OpeningType.PRAKTIKUM,
                title="Praktikum Küche",
                sector=Sector.GASTRONOMIE,
                occupation_code="29301",
                required_german_level=CefrLevel.A2,
                location=p.OpeningLocation(municipality="Baunatal"),
            ),
            producer="ba-jobsuche",
        ),
        p.OpeningReported.create(
            opening_report(source_ref="FAR", location=p.OpeningLocation(municipality="Wesertal")),
            producer="ihk-kassel",
        ),
    ]


async def test_course_completed_produces_ranked_suggestions_with_reasons(
    service_env, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(), producer="intake")  # A2, Baunatal, no car
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, person, *openings())
        # at A2 only the internship fits: it is suggested when it is published
        first = (await tap.wait_for("placement.suggestions.ready.v1"))[0]["payload"]
        assert first["trigger"] in ("opening_published", "person_registered")  # either came first
        assert [s["title"] for s in first["suggestions"]] == ["Praktikum Küche"]
        await tap.wait_for("placement.opening.published.v1", count=3)

        event = completed(person.payload.person_id)
        await publish(rabbit_url, namespace, event)
        sets = await tap.wait_for("placement.suggestions.ready.v1", count=2)
        ready = next(s for s in sets if s["causation_id"] == str(event.event_id))
        payload = ready["payload"]
        assert payload["trigger"] == "course_completed"
        assert payload["german_level"] == "B1"
        assert ready["correlation_id"] == str(event.correlation_id)
        # B1 opens the apprenticeship in Kassel; Wesertal is out of reach; the internship
        # was told already and is not repeated
        titles = [s["title"] for s in payload["suggestions"]]
        assert titles == ["Ausbildung Fachkraft für Lagerlogistik"]
        reasons = payload["suggestions"][0]["reasons"]
        assert reasons[0] == "B1 erreicht, Stelle verlangt B1"
        assert reasons[1].endswith("km, ohne Führerschein")
        assert "Interesse an Logistik" in reasons

        stored = (await http.get(f"/people/{person.payload.person_id}/suggestions")).json()
        assert stored[0]["trigger"] == "course_completed"
        assert len(stored) == 2

        why = (await http.get(f"/people/{person.payload.person_id}/evaluation")).json()
        far = next(e for e in why if e["employer"] and not e["eligible"])
        assert [r["rule"] for r in far["rules"] if not r["passed"]] == ["reachable"]


async def test_no_matching_consent_no_suggestions(service_env, rabbit_url, namespace):
    person = PersonRegistered.create(snapshot(consent=Consent(matching=False)), producer="intake")
    event = completed(person.payload.person_id)
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app):
        await publish(rabbit_url, namespace, person, *openings())
        await tap.wait_for("placement.opening.published.v1", count=3)
        await publish(rabbit_url, namespace, event)
        await applied(app, event)
        assert tap.bodies("placement.suggestions.ready.v1") == []


async def test_course_completed_before_the_person_is_known_is_kept(
    service_env, rabbit_url, namespace
):
    person = PersonRegistered.create(snapshot(german_level=None), producer="intake")
    event = completed(person.payload.person_id)
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app):
        await publish(rabbit_url, namespace, *openings())
        await tap.wait_for("placement.opening.published.v1", count=3)
        await publish(rabbit_url, namespace, event)
        await eventually(lambda: app.state.runtime.parking.count(), what="event parked")
        await publish(rabbit_url, namespace, person)
        ready = (await tap.wait_for("placement.suggestions.ready.v1"))[0]["payload"]
        assert ready["trigger"] == "course_completed"
        assert {s["title"] for s in ready["suggestions"]} == {
            "Ausbildung Fachkraft für Lagerlogistik",
            "Praktikum Küche",
        }


async def test_a_new_permit_rematches_and_an_update_of_an_opening_does_not_duplicate(
    service_env, rabbit_url, namespace
):
    snap = snapshot(
        german_level=CefrLevel.B1,
        residence_status="aufenthaltsgestattung",
        work_permission="needs_approval",
    )
    person = PersonRegistered.create(snap, producer="intake")
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, person, *openings())
        await tap.wait_for("placement.opening.published.v1", count=3)
        await applied(app, person)
        assert tap.bodies("placement.suggestions.ready.v1") == []  # no permit yet

        approved = PersonUpdated.create(
            snap.model_copy(update={"revision": 2, "work_permission": WorkPermission.APPROVED}),
            producer="intake",
        )
        await publish(rabbit_url, namespace, approved)
        ready = (await tap.wait_for("placement.suggestions.ready.v1"))[0]["payload"]
        assert ready["trigger"] == "person_changed"
        assert len(ready["suggestions"]) == 2

        # the same reference number again updates the opening, keeps its id and history
        again = p.OpeningReported.create(
            opening_report(source_ref="B1-LAGER", seats=3), producer="ba-jobsuche"
        )
        await publish(rabbit_url, namespace, again)
        await applied(app, again)
        listed = (await http.get("/openings")).json()
        assert len(listed) == 3
        doc = await app.state.runtime.db["openings"].find_one({"source_ref": "B1-LAGER"})
        assert doc["seats"] == 3
        assert len(doc["history"]) == 1
        assert len(tap.bodies("placement.suggestions.ready.v1")) == 1  # not told twice

        withdrawn = p.OpeningWithdrawn.create(
            p.OpeningWithdrawnV1(source_ref="B1-LAGER", reason="besetzt"), producer="ba-jobsuche"
        )
        await publish(rabbit_url, namespace, withdrawn)
        closed = (await tap.wait_for("placement.opening.closed.v1"))[0]["payload"]
        assert closed["reason"] == "besetzt"
        assert (await http.get("/openings", params={"status": "closed"})).json()[0][
            "source_ref"
        ] == "B1-LAGER"


async def test_http_openings(service_env, rabbit_url, namespace):
    app = placement_app()
    async with running(app) as http:
        body = opening_report().model_dump(mode="json") | {"source": "hwk-kassel"}
        r = await http.post("/openings", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["municipality"] == "Kassel"
        assert r.json()["lat"] > 51
        bad = body | {"location": {"postcode": "34117"}}
        r = await http.post("/openings", json=bad)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"][:3] == ["body", "location"]
        r = await http.post("/openings", json=body | {"occupation_code": "5132"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "occupation_code"]
        opening_id = (await http.get("/openings")).json()[0]["opening_id"]
        r = await http.post(f"/openings/{opening_id}/close", json={"reason": "besetzt"})
        assert r.json()["status"] == "closed"
