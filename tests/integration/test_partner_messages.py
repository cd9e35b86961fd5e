"""A partner reads what became of its messages (GET /partner/messages), against the real
broker and database: applied, dead-lettered naming the field, parked and later applied,
a duplicate; only its own (another partner's event id is 404); by API key or token."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.partner import PartnerPublisher
from lotse_devstack.samples import COURSE_REF, TODAY, course_details, snapshot
from lotse_shared.auth import Role
from lotse_shared.auth.apikeys import KeyFile
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.messaging.outcomes import PARTNER_MESSAGES
from tests.security.test_partners import raw_publish
from tests.support import applied, bearer, dead_letters, eventually, publish, running

SCHOOL = "vhs-region-kassel"
OTHER = "ihk-kassel"


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    path = tmp_path / "partner-keys.json"
    monkeypatch.setenv("LOTSE_PARTNER_KEYS_FILE", str(path))
    return {partner: KeyFile(path).create(partner, "kassel")[1] for partner in (SCHOOL, OTHER)}


def enrolment(person_id: uuid.UUID) -> p.EnrolmentReported:
    return p.EnrolmentReported.create(
        p.EnrolmentReportedV1(person_id=person_id, course=course_details()), producer=SCHOOL
    )


async def messages(http: httpx.AsyncClient, key: str, **params: Any) -> list[dict[str, Any]]:
    r = await http.get("/partner/messages", params=params, headers={"X-Api-Key": key})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


async def test_a_partner_sees_what_became_of_its_own_messages(
    service_env: dict[str, str], rabbit_url: str, namespace: str, keys: dict[str, str]
) -> None:
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    app = courses_app()
    async with running(app, role=None) as http:
        await publish(rabbit_url, namespace, person)
        await applied(app, person)

        good = enrolment(pid)
        # a typo'd level, sent as the school (its own broker user, user_id set)
        bad_id = str(uuid.uuid4())
        bad = p.CompletionReported.create(
            p.CompletionReportedV1(person_id=pid, course=COURSE_REF, completed_on=TODAY),
            producer=SCHOOL,
        ).model_dump(mode="json")
        bad["event_id"] = bad["correlation_id"] = bad_id
        bad["payload"]["level_reached"] = "B7"
        newcomer = PersonRegistered.create(snapshot(), producer="intake")
        early = enrolment(newcomer.payload.person_id)  # about a person not registered yet
        async with PartnerPublisher(rabbit_url, namespace) as publisher:
            await publisher.publish(good)
            await applied(app, good)
            await publisher.publish_raw(
                json.dumps(bad).encode(),
                p.CompletionReported.ROUTING_KEY,
                message_id=bad_id,
                producer=SCHOOL,
            )
            await publisher.publish(early)

        school = keys[SCHOOL]

        async def three() -> list[dict[str, Any]]:
            found = await messages(http, school)
            return found if len(found) == 3 else []

        listed = await eventually(three, timeout_s=15, what="three outcomes")
        by_id = {m["event_id"]: m for m in listed}
        assert by_id[str(good.event_id)]["status"] == "applied"
        assert by_id[str(good.event_id)]["reason"] is None
        dead = by_id[bad_id]
        assert dead["status"] == "dead_lettered"
        assert dead["fields"] == ["payload.level_reached"]
        assert dead["reason"].startswith("payload.level_reached: Input should be")
        assert dead["routing_key"] == p.CompletionReported.ROUTING_KEY
        assert dead["producer"] == SCHOOL
        parked = by_id[str(early.event_id)]
        assert parked["status"] == "parked"
        assert str(newcomer.payload.person_id) in parked["reason"]
        assert parked["next_attempt_at"] is not None
        # newest outcome first; no body, nothing of the person beyond the id sent
        assert listed[0]["updated_at"] >= listed[-1]["updated_at"]
        assert set(dead) == {
            "event_id", "routing_key", "producer", "status", "reason", "fields", "attempts",
            "next_attempt_at", "first_seen_at", "updated_at", "links",
        }  # fmt: skip
        assert "Amal" not in json.dumps(listed)
        assert [m["event_id"] for m in await messages(http, school, status="dead_lettered")] == [
            bad_id
        ]
        # the same by id, also as Authorization: ApiKey
        r = await http.get(
            f"/partner/messages/{bad_id}", headers={"Authorization": f"ApiKey {school}"}
        )
        assert r.status_code == 200, r.text
        assert r.json() == dead

        # the person registers: the parked enrolment is applied, and the partner sees it
        await publish(rabbit_url, namespace, newcomer)
        await applied(app, early)

        async def replayed() -> bool:
            r = await http.get(f"/partner/messages/{early.event_id}", headers={"X-Api-Key": school})
            return bool(r.json()["status"] == "applied")

        await eventually(replayed, timeout_s=15, what="the parked event applied")

        # sent again: a duplicate, applied once
        async with PartnerPublisher(rabbit_url, namespace) as publisher:
            await publisher.publish(good)

        async def duplicate() -> bool:
            r = await http.get(f"/partner/messages/{good.event_id}", headers={"X-Api-Key": school})
            return bool(r.json()["status"] == "duplicate")

        await eventually(duplicate, timeout_s=15, what="the duplicate")

        # another partner sees none of it, and cannot tell A's ids from unknown ones
        other = keys[OTHER]
        assert await messages(http, other) == []
        assert await messages(http, other, partner=SCHOOL) == []
        for event_id in (bad_id, str(uuid.uuid4())):
            r = await http.get(f"/partner/messages/{event_id}", headers={"X-Api-Key": other})
            assert r.status_code == 404, r.text
        # no key: 401; a caseworker: 403; a coordinator names the partner
        assert (await http.get("/partner/messages")).status_code == 401
        assert (await http.get(f"/partner/messages/{bad_id}")).status_code == 401
        r = await http.get("/partner/messages", headers=bearer(app, Role.CASEWORKER))
        assert r.status_code == 403
        r = await http.get(
            "/partner/messages",
            params={"partner": SCHOOL},
            headers=bearer(app, Role.COORDINATOR, user="koordination@landkreis-kassel.example"),
        )
        assert r.status_code == 200
        assert {m["event_id"] for m in r.json()} == set(by_id)


async def test_a_message_is_recorded_for_the_sender_the_broker_vouches_for(
    service_env: dict[str, str], rabbit_url: str, namespace: str, keys: dict[str, str]
) -> None:
    """user_id set but naming another producer: recorded for the user_id's partner, with
    the reason; no user_id at all: recorded for nobody (no one can be shown it)."""
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    app = courses_app()
    async with running(app, role=None) as http:
        await publish(rabbit_url, namespace, person)
        await applied(app, person)
        mismatched, anonymous = enrolment(pid), enrolment(pid)
        await raw_publish(rabbit_url, namespace, mismatched, user_id="guest")
        await raw_publish(rabbit_url, namespace, anonymous)
        coordinator = bearer(app, Role.COORDINATOR, user="koordination@landkreis-kassel.example")

        async def recorded() -> list[Any]:
            r = await http.get(
                "/partner/messages", params={"partner": "guest"}, headers=coordinator
            )
            return list(r.json())

        [entry] = await eventually(recorded, timeout_s=15, what="the mismatch recorded")
        assert entry["event_id"] == str(mismatched.event_id)
        assert entry["status"] == "dead_lettered"
        assert entry["reason"].startswith(f"user_id 'guest' does not match producer '{SCHOOL}'")
        assert entry["fields"] == ["user_id", "producer"]
        # the school's key sees neither
        assert await messages(http, keys[SCHOOL]) == []
        r = await http.get(f"/partner/messages/{mismatched.event_id}", headers=coordinator)
        assert r.status_code == 200  # staff without ?partner= find it by its id
        assert r.json()["producer"] == "guest"
        # the anonymous one was dead-lettered too (operators see it) but recorded nowhere
        letters: list[Any] = []

        async def both() -> bool:
            letters.extend(await dead_letters(rabbit_url, namespace, "courses"))
            return len(letters) >= 2

        await eventually(both, timeout_s=15, what="both dead letters")
        db = app.state.runtime.db
        assert await db[PARTNER_MESSAGES].count_documents({}) == 1
        assert (
            await http.get(f"/partner/messages/{anonymous.event_id}", headers=coordinator)
        ).status_code == 404
