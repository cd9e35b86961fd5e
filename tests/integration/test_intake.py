"""intake against real RabbitMQ and a real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import json

from pymongo.errors import OperationFailure

from lotse_devstack.samples import CASEWORKER, person_body
from lotse_intake.bootstrap import create_app
from lotse_shared.auth import Role
from tests.support import EventTap, bearer, running


async def test_register_read_update_list_publish(service_env, rabbit_url, namespace) -> None:
    async with (
        EventTap(rabbit_url, namespace, "intake.#") as tap,
        running(create_app()) as http,
    ):
        body = person_body(contact={"phone": "+49 561 4711", "email": "amal@example.org"})
        r = await http.post("/people", json=body)
        assert r.status_code == 201, r.text
        person = r.json()
        pid = person["person_id"]
        assert person["revision"] == 1

        registered = (await tap.wait_for("intake.person.registered.v1"))[0]
        assert registered["payload"]["person_id"] == pid
        assert registered["payload"]["display_name"] == "Amal Haddad"
        assert registered["producer"] == "intake"
        assert "+49 561 4711" not in json.dumps(registered)  # no contact details in motion

        assert (await http.get(f"/people/{pid}")).json()["given_name"] == "Amal"
        listed = (await http.get("/people", params={"contact_email": CASEWORKER})).json()
        assert [p["person_id"] for p in listed["items"]] == [pid]

        r = await http.patch(f"/people/{pid}", json={"german_level": "B1"})
        assert r.status_code == 200, r.text
        assert r.json()["revision"] == 2
        updated = (await tap.wait_for("intake.person.updated.v1"))[0]
        assert updated["payload"]["german_level"] == "B1"
        assert updated["payload"]["revision"] == 2

        r = await http.put(f"/people/{pid}", json=person_body(), headers={"If-Match": "1"})
        assert r.status_code == 409


async def test_bad_input_names_the_field(service_env) -> None:
    async with running(create_app()) as http:
        r = await http.post("/people", json=person_body(municipality="Atlantis"))
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "municipality"
        assert "unknown municipality" in r.json()["errors"][0]["reason"]

        r = await http.post("/people", json=person_body(birth_year="nineteen"))
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "birth_year"

        r = await http.post("/people", json=person_body(residence="x"))
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "residence"

        pid = (await http.post("/people", json=person_body())).json()["person_id"]
        r = await http.patch(f"/people/{pid}", json={"max_commute_km": 999})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "max_commute_km"
        assert (await http.get(f"/people/{pid}")).json()["revision"] == 1  # nothing applied

        r = await http.get("/people/00000000-0000-0000-0000-000000000000")
        assert r.status_code == 404


async def test_health_and_documents(service_env) -> None:
    async with running(create_app()) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {
            "status": "ready",
            "service": "intake",
            "broker": "up",
            "database": "up",
            "consumers": "started",
        }
        assert "/people" in (await http.get("/openapi.json")).json()["paths"]
        asyncapi = (await http.get("/asyncapi.json")).json()
        assert "intake.person.registered.v1" in {
            c["address"] for c in asyncapi["channels"].values()
        }
        page = await http.get("/asyncapi")
        assert page.status_code == 200
        assert "<html" in page.text.lower()


async def test_consent_is_recorded_per_purpose_with_who_and_when(service_env, rabbit_url) -> None:
    async with running(create_app()) as http:
        body = person_body(consent={"matching": True})
        person = (await http.post("/people", json=body)).json()
        pid = person["person_id"]
        first = person["consent_history"]
        assert [(c["purpose"], c["given"], c["revision"]) for c in first] == [("matching", True, 1)]
        assert first[0]["by"] == CASEWORKER  # the caller's identity from the token

        r = await http.patch(
            f"/people/{pid}",
            json={"consent": {"matching": False, "email_notifications": True}},
        )
        assert r.status_code == 200, r.text
        history = r.json()["consent_history"]
        assert [(c["purpose"], c["given"], c["revision"]) for c in history] == [
            ("matching", True, 1),
            ("matching", False, 2),
            ("email_notifications", True, 2),
        ]
        # an unrelated change records no consent change; the history cannot be written
        r = await http.patch(f"/people/{pid}", json={"german_level": "B1"})
        assert len(r.json()["consent_history"]) == 3
        r = await http.patch(f"/people/{pid}", json={"consent_history": []})
        assert r.status_code == 422
        assert (await http.get(f"/people/{pid}")).json()["consent_history"] == history


async def test_a_write_conflict_lost_on_every_attempt_answers_503(service_env, monkeypatch) -> None:
    app = create_app()
    async with running(app) as http:
        pid = (await http.post("/people", json=person_body())).json()["person_id"]
        calls = []

        async def always_conflicting(*args: object, **kwargs: object) -> None:
            calls.append(args)
            raise OperationFailure(
                "WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"]}
            )

        monkeypatch.setattr(app.state.handlers, "get", always_conflicting)
        r = await http.get(f"/people/{pid}")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert "try again" in r.json()["detail"]
        assert len(calls) == 8  # retried first


async def test_list_people_by_name_part_stays_within_the_callers_people(service_env) -> None:
    other = "jonas.weber@landkreis-kassel.example"
    app = create_app()
    async with running(app) as http:
        own = [
            (await http.post("/people", json=person_body(given_name=g, family_name=f))).json()
            for g, f in [("Amal", "Haddad"), ("Samir", "Hadi"), ("Lina", "Okafor")]
        ]
        theirs = person_body(
            given_name="Hamid",
            family_name="Haddadi",
            contacts=[{"role": "caseworker", "name": "Jonas Weber", "email": other}],
        )
        r = await http.post("/people", json=theirs, headers=bearer(app, user=other))
        assert r.status_code == 201, r.text
        fulda = person_body(family_name="Haddad", district_id="fulda")
        fulda_coordinator = bearer(app, Role.COORDINATOR, user="k@fulda.example", district="fulda")
        r = await http.post("/people", json=fulda, headers=fulda_coordinator)
        assert r.status_code == 201, r.text

        r = await http.get("/people", params={"q": "hAD"})
        assert r.status_code == 200, r.text
        found = r.json()["items"]
        # family name or given name, any case; not Jonas's person, not Fulda's
        assert [p["person_id"] for p in found] == [own[0]["person_id"], own[1]["person_id"]]
        row = found[0]
        for field in ("given_name", "family_name", "municipality", "german_level"):
            assert row[field]
        assert row["work_permission"] == "allowed"
        assert row["residence_status"] == "aufenthaltserlaubnis"
        assert row["contacts"][0]["email"] == CASEWORKER
        assert row["consent"]["matching"] is True

        assert [p["given_name"] for p in (await http.get("/people?q=lina")).json()["items"]] == [
            "Lina"
        ]
        # a regex character is a plain character
        assert (await http.get("/people", params={"q": "H.d"})).json()["items"] == []
        assert (await http.get("/people", params={"q": ".*"})).json()["items"] == []

        coordinator = bearer(app, Role.COORDINATOR, user="k@landkreis-kassel.example")
        r = await http.get("/people", params={"q": "hadd"}, headers=coordinator)
        assert {p["family_name"] for p in r.json()["items"]} == {"Haddad", "Haddadi"}
        assert all(p["district_id"] == "kassel" for p in r.json()["items"])


async def test_a_registration_sent_twice_with_its_key_registers_one_person(
    service_env, rabbit_url, namespace
) -> None:
    """A double click on the portal's form, or a client's retry after a timeout."""
    async with (
        EventTap(rabbit_url, namespace, "intake.person.registered.v1") as tap,
        running(app := create_app()) as http,
    ):
        key = {"Idempotency-Key": "form-7f3a"}
        first, second = await asyncio.gather(
            http.post("/people", json=person_body(), headers=key),
            http.post("/people", json=person_body(), headers=key),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 201]
        assert first.json()["person_id"] == second.json()["person_id"]
        again = await http.post("/people", json=person_body(), headers=key)
        assert again.status_code == 200
        assert again.json()["person_id"] == first.json()["person_id"]

        other = await http.post("/people", json=person_body(), headers={"Idempotency-Key": "b"})
        assert other.status_code == 201
        assert other.json()["person_id"] != first.json()["person_id"]

        # the same key from someone else is another request
        coordinator = bearer(app, Role.COORDINATOR, user="koordination@landkreis-kassel.example")
        mine = await http.post("/people", json=person_body(), headers={**key, **coordinator})
        assert mine.json()["person_id"] != first.json()["person_id"]

        await tap.wait_for("intake.person.registered.v1", count=3)
        await asyncio.sleep(0.5)
        assert len(tap.bodies("intake.person.registered.v1")) == 3
