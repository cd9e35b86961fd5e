"""placement: suggestions on course completion and on new openings, with reasons."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from lotse_placement.bootstrap import Overrides, create_app
from lotse_placement.domain.matching import rank
from lotse_placement.domain.model import Opening
from lotse_placement.handlers import candidate_from
from lotse_placement.repository import _opening_doc
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import CefrLevel, OpeningType, Sector, WorkPermission
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1
from lotse_shared.contracts.intake import Consent, PersonRegistered, PersonUpdated
from lotse_shared.places import all_places, find_place
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


async def test_ring_search_finds_exactly_the_best_of_all_openings(
    service_env, namespace, monkeypatch
):
    """The early-stopping search against ranking every opening: the same top list.
    Half the openings fit the person perfectly, so the search can stop early."""
    rng = random.Random(7)
    places = [pl for pl in all_places().values()]
    openings = []
    for n in range(400):
        place = rng.choice(places)
        logistics = rng.random() < 0.5
        openings.append(
            Opening(
                source="bench",
                source_ref=f"R{n}",
                opening_type=OpeningType.PRAKTIKUM if logistics else rng.choice(list(OpeningType)),
                title=f"Stelle {n}",
                employer="Firma",
                occupation_code="51312" if logistics else "29301",
                sector=Sector.LOGISTIK if logistics else Sector.GASTRONOMIE,
                required_german_level=CefrLevel.A1
                if logistics
                else rng.choice([None, CefrLevel.A1, CefrLevel.A2, CefrLevel.B1]),
                municipality=place.name,
                lat=place.lat + rng.uniform(-0.03, 0.03),
                lon=place.lon + rng.uniform(-0.04, 0.04),
                start_date=TODAY + timedelta(days=rng.randint(0, 60) if logistics else 200),
            )
        )
    kassel = find_place("Kassel")
    assert kassel is not None
    for n in range(8):  # eligible but poor fits right at the door: the best lie farther
        openings.append(
            Opening(
                source="bench",
                source_ref=f"NEAR{n}",
                opening_type=OpeningType.PRAKTIKUM,
                title=f"Nah {n}",
                employer="Firma",
                sector=Sector.REINIGUNG,
                municipality="Kassel",
                lat=kassel.lat,
                lon=kassel.lon,
            )
        )
    for n, far in enumerate(("Bad Karlshafen", "Trendelburg", "Wesertal")):
        there = find_place(far)
        assert there is not None
        openings.append(  # the only crafts openings: the best for a crafts-minded driver
            Opening(
                source="bench",
                source_ref=f"FAR{n}",
                opening_type=OpeningType.AUSBILDUNG,
                title=f"Tischler {n}",
                employer="Werkstatt",
                occupation_code="22342",
                sector=Sector.HANDWERK,
                municipality=there.name,
                lat=there.lat,
                lon=there.lon,
                start_date=TODAY + timedelta(days=30),
            )
        )
    monkeypatch.setattr("lotse_placement.handlers.SCAN_BELOW", 0)  # the rings, not a scan
    app = placement_app()
    async with running(app):
        h = app.state.handlers
        await h.repo.openings.insert_many([_opening_doc(o) for o in openings])
        fetched = []
        openings_in = h.repo.openings_in

        async def counting(cells, max_rank=6, session=None):
            found = await openings_in(cells, max_rank, session)
            fetched.extend(found)
            return found

        h.repo.openings_in = counting
        for home, car, km, sector in (
            ("Baunatal", False, 25, Sector.LOGISTIK),
            ("Wolfhagen", True, 40, Sector.LOGISTIK),
            ("Kassel", True, 80, Sector.LOGISTIK),
            ("Kassel", True, 80, Sector.HANDWERK),
        ):
            person = candidate_from(
                snapshot(
                    municipality=home,
                    driving_licence=car,
                    max_commute_km=km,
                    sectors_of_interest=[sector],
                    experience_occupations=[],
                )
            )
            fetched.clear()
            got = await h.search(person, {})
            want = rank(person, openings, TODAY, limit=h.suggestions_per_set)
            assert [s.opening.source_ref for s in got] == [s.opening.source_ref for s in want]
            assert [s.score for s in got] == [s.score for s in want]
            if sector is Sector.LOGISTIK and km == 80:  # reaches all, stops near
                assert len(fetched) < len(openings)
            if sector is Sector.HANDWERK:
                assert {s.opening.title for s in got} >= {"Tischler 0", "Tischler 1"}
