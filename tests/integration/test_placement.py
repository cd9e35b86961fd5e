"""placement: suggestions on course completion and on new openings, with reasons."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta

from lotse_devstack.samples import TODAY, enrolment_facts, erasure, opening_report, snapshot
from lotse_placement.bootstrap import Overrides, create_app
from lotse_placement.domain.matching import rank
from lotse_placement.domain.model import Opening
from lotse_placement.handlers import candidate_from
from lotse_placement.repository import _opening_doc
from lotse_shared.auth import Role
from lotse_shared.contracts import intake as i
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import (
    CefrLevel,
    ContactRole,
    OpeningType,
    Sector,
    WorkPermission,
)
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1
from lotse_shared.contracts.intake import PersonRegistered, PersonUpdated
from lotse_shared.places import all_places, find_place
from tests.support import EventTap, applied, bearer, eventually, publish, running


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


async def test_an_event_parked_for_a_person_then_erased_is_accounted_for_not_dropped(
    service_env, rabbit_url, namespace
):
    """The erasure deletes what is parked about the person; each such event is recorded
    in the inbox as handled without effects, as one arriving after the erasure is."""
    person_id = uuid.uuid4()
    event = completed(person_id)
    erased = erasure(person_id)
    app = placement_app()
    async with running(app):
        await publish(rabbit_url, namespace, event)
        await eventually(lambda: app.state.runtime.parking.count(), what="event parked")
        await publish(rabbit_url, namespace, erased)
        await applied(app, erased)
        db = app.state.runtime.db
        assert await db["parked"].count_documents({"person_id": str(person_id)}) == 0
        row = await db["inbox"].find_one({"_id": str(event.event_id)})
        assert row is not None
        assert row["ignored"] == "person erased while the event was parked"
        await publish(rabbit_url, namespace, event)  # delivered again: recognised, not parked
        await asyncio.sleep(0.5)
        assert await app.state.runtime.parking.count() == 0


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
        assert r.json()["errors"][0]["field"].startswith("location")
        r = await http.post("/openings", json=body | {"occupation_code": "5132"})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "occupation_code"
        opening_id = (await http.get("/openings")).json()[0]["opening_id"]
        r = await http.post(f"/openings/{opening_id}/close", json={"reason": "besetzt"})
        assert r.json()["status"] == "closed"


async def test_ring_search_finds_exactly_the_best_of_all_openings(
    service_env, namespace, monkeypatch
):
    """The early-stopping search against ranking every opening: the same top list.
    Half the openings fit the person perfectly, so the search can stop early. The
    search in arrays (the table the change stream keeps) gives that list too."""
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

        async def counting(cells, max_rank=6, tx=None):
            found = await openings_in(cells, max_rank, tx)
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
            want = rank(person, openings, TODAY, limit=h.suggestions_per_set)
            in_arrays = await h.search(person, {})
            assert [(s.opening.source_ref, s.score, s.reasons) for s in in_arrays] == [
                (s.opening.source_ref, s.score, s.reasons) for s in want
            ]
            fetched.clear()
            h.match_in_arrays = False
            got = await h.search(person, {})
            h.match_in_arrays = True
            assert [s.opening.source_ref for s in got] == [s.opening.source_ref for s in want]
            assert [s.score for s in got] == [s.score for s in want]
            if sector is Sector.LOGISTIK and km == 80:  # reaches all, stops near
                assert len(fetched) < len(openings)
            if sector is Sector.HANDWERK:
                assert {s.opening.title for s in got} >= {"Tischler 0", "Tischler 1"}


async def test_the_opening_table_follows_what_any_process_commits(service_env, namespace):
    """Each process keeps its own table of the searchable openings, current through the
    change stream: an opening stored, filled or closed by another process (here another
    repository on the same database) is seen by the next search, without a restart."""
    from lotse_placement.repository import PlacementRepository
    from lotse_shared.persistence.mongo import session_of

    app = placement_app()
    async with running(app):
        h = app.state.handlers
        other = PlacementRepository(h.repo.db)  # another process's store
        person = candidate_from(snapshot(municipality="Baunatal"))

        async def refs() -> list[str]:
            return [s.opening.source_ref for s in await h.search(person, {})]

        assert await refs() == []  # the table is filled here, empty
        near = Opening(
            source="ihk-kassel",
            source_ref="NEU",
            opening_type=OpeningType.AUSBILDUNG,
            title="Ausbildung Lager",
            employer="Firma",
            occupation_code="51312",
            sector=Sector.LOGISTIK,
            required_german_level=CefrLevel.A2,
            municipality="Baunatal",
            lat=find_place("Baunatal").lat,  # type: ignore[union-attr]
            lon=find_place("Baunatal").lon,  # type: ignore[union-attr]
            start_date=TODAY + timedelta(days=20),
        )
        async with h.uow.transaction() as tx:
            await other.save_opening(tx, near, None)
        assert await refs() == ["NEU"]
        full = near.model_copy(update={"seats_taken": near.seats})
        async with h.uow.transaction() as tx:
            await other.save_opening(tx, full, near)
        assert await refs() == []  # full: out of the table
        async with h.uow.transaction() as tx:
            await other.save_opening(tx, near, full)  # a seat free again
            # the match marker alone changes no feature
            await other.openings.update_one(
                {"_id": near.opening_id},
                {"$set": {"match_pending": {"at": TODAY.isoformat()}}},
                session=session_of(tx),
            )
        assert await refs() == ["NEU"]
        await other.openings.delete_many({})
        assert await refs() == []


async def test_openings_are_filtered_by_type_sector_town_level_start_and_text(
    service_env, rabbit_url, namespace
):
    def body(ref: str, **changes) -> dict:
        return opening_report(source_ref=ref, **changes).model_dump(mode="json")

    app = placement_app()
    async with running(app) as http:
        bodies = [
            body("LAGER"),  # Ausbildung, Logistik, Kassel, B1, in 60 days
            body(
                "KUECHE",
                opening_type=OpeningType.PRAKTIKUM,
                title="Praktikum Küche",
                employer="Landgasthof Zur Linde",
                sector=Sector.GASTRONOMIE,
                required_german_level=CefrLevel.A2,
                location=p.OpeningLocation(municipality="Baunatal"),
                start_date=TODAY + timedelta(days=10),
            ),
            body(
                "HELFER",
                opening_type=OpeningType.BESCHAEFTIGUNG,
                title="Lagerhelfer (m/w/d)",
                required_german_level=None,
                start_date=None,
            ),
        ]
        for b in bodies:
            assert (await http.post("/openings", json=b)).status_code == 200
        fulda = bearer(app, Role.COORDINATOR, user="k@fulda.example", district="fulda")
        r = await http.post("/openings", json=body("FULDA", district_id="fulda"), headers=fulda)
        assert r.status_code == 200, r.text

        async def refs(**params) -> set[str]:
            r = await http.get("/openings", params=params)
            assert r.status_code == 200, r.text
            return {o["source_ref"] for o in r.json()}

        assert await refs() == {"LAGER", "KUECHE", "HELFER"}  # not Fulda's
        assert await refs(opening_type="praktikum") == {"KUECHE"}
        assert await refs(sector="logistik") == {"LAGER", "HELFER"}
        assert await refs(municipality="baunatal") == {"KUECHE"}
        assert await refs(german_level="A2") == {"KUECHE", "HELFER"}  # at most A2, or none
        assert await refs(german_level="A1") == {"HELFER"}
        assert await refs(starts_by=str(TODAY + timedelta(days=30))) == {"KUECHE", "HELFER"}
        assert await refs(q="lager") == {"LAGER", "HELFER"}  # the title
        assert await refs(q="LINDE") == {"KUECHE"}  # the employer
        assert await refs(q="(m/w/d)") == {"HELFER"}  # a plain substring, not a pattern
        assert await refs(q=".*") == set()
        assert await refs(sector="logistik", german_level="A2") == {"HELFER"}
        assert await refs(sector="logistik", limit=1, offset=1) != await refs(
            sector="logistik", limit=1
        )
        assert (await http.get("/openings", params={"german_level": "Z9"})).status_code == 422
        assert await refs(status="open", q="lager", starts_by=str(TODAY)) == {"HELFER"}


async def test_candidates_of_an_opening_are_the_callers_people_best_first(
    service_env, rabbit_url, namespace
):
    other = "jonas.weber@landkreis-kassel.example"
    jonas = [i.ResponsibleContact(role=ContactRole.CASEWORKER, name="Jonas", email=other)]
    near = snapshot(municipality="Baunatal")  # A2: fits the kitchen
    far = snapshot(municipality="Kassel", driving_licence=True, sectors_of_interest=[])
    weak = snapshot(german_level=CefrLevel.A1)  # below the kitchen's A2
    theirs = snapshot(contacts=jonas)
    fulda = snapshot(district_id="fulda")
    people = [PersonRegistered.create(s, producer="intake") for s in (near, far, weak, theirs)]
    people.append(PersonRegistered.create(fulda, producer="intake"))
    kitchen = opening_report(
        source_ref="KUECHE",
        opening_type=OpeningType.PRAKTIKUM,
        title="Praktikum Küche",
        sector=Sector.GASTRONOMIE,
        occupation_code="29301",
        required_german_level=CefrLevel.A2,
        location=p.OpeningLocation(municipality="Baunatal"),
        seats=5,
    )
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, *people)
        for event in people:
            await applied(app, event)
        await publish(
            rabbit_url, namespace, p.OpeningReported.create(kitchen, producer="ihk-kassel")
        )
        await tap.wait_for("placement.suggestions.ready.v1", count=3)  # near, far, theirs
        opening_id = (await http.get("/openings")).json()[0]["opening_id"]

        r = await http.get(f"/openings/{opening_id}/candidates")
        assert r.status_code == 200, r.text
        found = r.json()
        assert [c["person_id"] for c in found] == [
            str(near.person_id),
            str(far.person_id),
            str(weak.person_id),
        ]  # never Jonas's person, never Fulda's
        best = found[0]
        assert best["eligible"] is True
        assert best["suggested"] is True
        assert best["score"] > found[1]["score"]
        assert best["reasons"][0] == "A2 erreicht, Stelle verlangt A2"
        assert found[1]["eligible"] is True
        assert found[2]["eligible"] is False
        assert found[2]["failed_rules"] == ["german_level"]
        assert found[2]["reasons"][0] == "A1 erreicht, Stelle verlangt A2"
        assert found[2]["suggested"] is False

        limited = (await http.get(f"/openings/{opening_id}/candidates?limit=1")).json()
        assert [c["person_id"] for c in limited] == [str(near.person_id)]
        coordinator = bearer(app, Role.COORDINATOR, user="k@landkreis-kassel.example")
        district = await http.get(f"/openings/{opening_id}/candidates", headers=coordinator)
        assert {c["person_id"] for c in district.json()} == {
            str(s.person_id) for s in (near, far, weak, theirs)
        }
        fulda_staff = bearer(app, Role.COORDINATOR, user="k@fulda.example", district="fulda")
        r = await http.get(f"/openings/{opening_id}/candidates", headers=fulda_staff)
        assert r.status_code == 404
        partner = bearer(app, Role.PARTNER, user="partner:ihk", partner="ihk-kassel")
        r = await http.get(f"/openings/{opening_id}/candidates", headers=partner)
        assert r.status_code == 403
