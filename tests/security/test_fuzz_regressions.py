"""One test per bug the fuzzing (test_fuzz_http.py, test_fuzz_amqp.py) found, so each
stays fixed even if the fuzzer's draw changes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aio_pika
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import course_details, opening_report, person_body, snapshot
from lotse_intake.bootstrap import create_app as intake_app
from lotse_notifications.bootstrap import create_app as notifications_app
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.auth import Role
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.messaging.deadletter import HEADER_ATTEMPTS, HEADER_ERROR_TYPE, HEADER_REASON
from tests.integration.test_notifications import suggestions_for
from tests.support import applied, bearer, dead_letters, eventually, running

LISTS = [
    (intake_app, "/people"),
    (courses_app, "/courses"),
    (placement_app, "/openings"),
    (notifications_app, "/notifications"),
    (intake_app, "/audit"),
]


@pytest.mark.parametrize(("factory", "path"), LISTS)
async def test_a_huge_offset_is_refused_by_name(service_env, smtp, factory, path) -> None:
    # was: 500, "OverflowError: MongoDB can only handle up to 8-byte ints"
    app = factory()
    async with running(app, role=None) as http:
        admin = bearer(app, Role.ADMIN, user="admin@landkreis-kassel.example")
        r = await http.get(path, params={"offset": 2**70}, headers=admin)
        assert r.status_code == 422, r.text
        assert (r.json()["errors"][0]["in"], r.json()["errors"][0]["field"]) == ("query", "offset")
        r = await http.get(path, params={"offset": 10**9}, headers=admin)
        assert r.status_code == 200, r.text  # the largest allowed offset: an empty page


@pytest.mark.parametrize("factory", [intake_app, placement_app])
def test_the_asyncapi_page_is_documented_as_html(service_env, factory) -> None:
    # was: documented as application/json while it answers text/html
    page = factory().openapi()["paths"]["/asyncapi"]["get"]["responses"]["200"]
    assert list(page["content"]) == ["text/html"]


def test_an_event_without_event_id_is_invalid() -> None:
    # was: given a fresh random id, so every redelivery of it was applied again
    wire = json.loads(PersonRegistered.create(snapshot(), producer="intake").to_wire())
    del wire["event_id"]
    with pytest.raises(ValidationError) as caught:
        PersonRegistered.model_validate(wire)
    assert [e["loc"] for e in caught.value.errors()] == [("event_id",)]


def test_a_revision_past_eight_byte_integers_is_invalid() -> None:
    # was: passed validation and crashed the MongoDB write of every consumer
    wire = json.loads(PersonRegistered.create(snapshot(), producer="intake").to_wire())
    wire["payload"]["revision"] = 2**63
    with pytest.raises(ValidationError) as caught:
        PersonRegistered.model_validate(wire)
    assert [e["loc"] for e in caught.value.errors()] == [("payload", "revision")]


async def test_an_opening_with_an_empty_municipality_is_refused_by_name(service_env) -> None:
    # was: 500, "AssertionError: OpeningLocation guarantees a place or coordinates"
    app = placement_app()
    async with running(app, role=None) as http:
        feed = bearer(app, Role.PARTNER, user="feed@ihk.example", partner="ihk-kassel")
        body = opening_report().model_dump(mode="json")
        body["location"] = {"municipality": "", "lat": None, "lon": None, "postcode": None}
        r = await http.post("/openings", json=body, headers=feed)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "location.municipality"


async def test_bodies_that_never_decode_are_dead_lettered_at_once_with_their_reason(
    service_env, rabbit_url, namespace
) -> None:
    # was: RecursionError counted as transient, retried four times over 11 minutes
    app = courses_app()
    event = PersonRegistered.create(snapshot(), producer="intake")
    deep = b"[" * 100_000 + b"]" * 100_000
    nested = event.to_wire().replace(b'"payload":', b'"deep":' + deep + b',"payload":')
    plain = PersonRegistered.create(snapshot(), producer="intake")
    async with running(app):
        connection = await aio_pika.connect(rabbit_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(f"{namespace}.events")
            for body, content_type, message_id in [
                (nested, "application/json", "nested"),
                (plain.to_wire(), "text/plain", "plain"),
            ]:
                message = aio_pika.Message(body, content_type=content_type, message_id=message_id)
                await exchange.publish(message, routing_key=event.ROUTING_KEY)
        found: dict[str, dict] = {}

        async def both() -> bool:
            for m in await dead_letters(rabbit_url, namespace, "courses"):
                found[m.message_id or ""] = dict(m.headers or {})
            return {"nested", "plain"} <= set(found)

        await eventually(both, timeout_s=10, what="both dead-lettered")
    assert found["nested"][HEADER_ERROR_TYPE] == "RecursionError"
    assert found["nested"][HEADER_ATTEMPTS] == 1
    assert str(found["nested"][HEADER_REASON]).startswith("body is nested too deeply")
    assert "content type text/plain" in str(found["plain"][HEADER_REASON])


async def test_a_parked_event_is_not_dead_lettered_while_it_is_being_applied(
    service_env, rabbit_url, namespace
) -> None:
    # was: the sweep dead-lettered an expired parked event that a replay was applying at
    # that moment, so it was applied and dead-lettered both
    app = courses_app()
    person = PersonRegistered.create(snapshot(), producer="intake")
    enrolment = p.EnrolmentReported.create(
        p.EnrolmentReportedV1(person_id=person.payload.person_id, course=course_details()),
        producer="vhs-region-kassel",
    )
    async with running(app):
        parking = app.state.runtime.parking
        await parking.park(
            event_id=str(enrolment.event_id),
            routing_key=enrolment.ROUTING_KEY,
            body=enrolment.to_wire(),
            person_id=str(person.payload.person_id),
            reason="person not known yet",
        )
        release = asyncio.Event()
        entered = asyncio.Event()
        dispatch: Callable[[str, bytes], Awaitable[None]] = parking._dispatch

        async def slow(routing_key: str, body: bytes) -> None:
            entered.set()
            await release.wait()
            await dispatch(routing_key, body)

        parking._dispatch = slow
        await remember(app, person)
        replay = asyncio.create_task(parking.replay_for([str(person.payload.person_id)]))
        await entered.wait()
        parking.max_age = timedelta(0)  # from now on the parked event counts as expired
        sweep = asyncio.create_task(parking.sweep())
        await asyncio.sleep(0.3)
        release.set()
        assert await replay == 1
        await sweep
        await applied(app, enrolment)
        assert await dead_letters(rabbit_url, namespace, "courses") == []


async def remember(app: FastAPI, person: PersonRegistered) -> None:
    """Let courses know the person without a replay of its own (the test drives that)."""
    async with app.state.handlers.uow.transaction(applying=person) as tx:
        await app.state.handlers.repo.remember_person(tx, person.payload)


async def test_a_lone_surrogate_in_an_event_is_dead_lettered_at_once_naming_the_field(
    service_env, smtp, rabbit_url, namespace
) -> None:
    # was: accepted by validation, then every MongoDB write failed (UnicodeEncodeError),
    # retried as transient until it "gave up"
    app = notifications_app()
    event = suggestions_for(uuid.uuid4())
    title = event.payload.suggestions[0].title
    body = event.to_wire().replace(title.encode(), b"Lager \\ud800")
    async with running(app):
        connection = await aio_pika.connect(rabbit_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(f"{namespace}.events")
            message = aio_pika.Message(body, content_type="application/json", message_id="sur")
            await exchange.publish(message, routing_key=event.ROUTING_KEY)
        found: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def dead() -> bool:
            found.extend(await dead_letters(rabbit_url, namespace, "notifications"))
            return bool(found)

        await eventually(dead, timeout_s=10, what="dead-lettered")
    [letter] = found
    assert letter.headers[HEADER_ATTEMPTS] == 1
    assert str(letter.headers[HEADER_REASON]).startswith(
        "payload.suggestions.0.title: not valid Unicode"
    )


async def test_a_lone_surrogate_in_a_request_is_refused_by_name(service_env) -> None:
    # was: refused, but the 422 echoed the string back and could not encode it: a 500
    app = intake_app()
    async with running(app, role=None) as http:
        staff = bearer(app, Role.COORDINATOR, user="koordination@landkreis-kassel.example")
        raw = json.dumps(person_body(given_name="Amal\ud800"))  # sent as \\ud800
        headers = {**staff, "content-type": "application/json"}
        r = await http.post("/people", content=raw, headers=headers)
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["field"] == "given_name"
        assert "ud800" not in r.text  # the input is not echoed


async def test_asking_many_times_at_once_to_erase_a_person_never_answers_500(service_env) -> None:
    # was: 500, "WriteConflict" when repeated erasure requests (each re-announcing the
    # erasure) raced each other and the outbox relay; HTTP routes now retry lost conflicts
    app = intake_app()
    async with running(app, role=None) as http:
        admin = bearer(app, Role.ADMIN, user="admin@landkreis-kassel.example")
        r = await http.post("/people", json=person_body(), headers=admin)
        assert r.status_code == 201, r.text
        erase = f"/people/{r.json()['person_id']}/erasure"
        answers = await asyncio.gather(
            *(http.post(erase, json={"reason": f"Art. 17 #{i}"}, headers=admin) for i in range(10))
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(202) == 1, statuses
        assert statuses.count(200) == 9, str(statuses)
        assert len({a.json()["erasure_id"] for a in answers}) == 1
