"""Partners over AMQP and HTTP (issue #6, parts 4 and 5), against the real broker.

- the broker refuses a partner's forbidden publishes: another partner's routing key, a
  service's key, another exchange, a forged ``user_id``; the count goes to
  tests/artifacts/partners.json (``make security`` prints it as ``broker_refused``);
- the services apply a partner event only when its broker-checked ``user_id`` is its
  ``producer``; a mismatch is dead-lettered naming both, also after an operator's replay;
  a retried partner event keeps the producer the service verified;
- API keys: accepted as ``X-Api-Key`` and ``Authorization: ApiKey``, a wrong or revoked
  key is 401 naming no secret, the keys file holds hashes only.

The broker users made here are named per test (``sec-…-<namespace>``) and deleted
afterwards, so parallel test runs never change each other's permissions.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import COURSE_REF, TODAY, course_details, opening_report, snapshot
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.messaging.deadletter import (
    HEADER_ATTEMPTS,
    HEADER_REASON,
    HEADER_ROUTING_KEY,
    HEADER_VERIFIED_PRODUCER,
)
from lotse_shared.ops.__main__ import main as ops
from lotse_shared.ops.dead_letters import DeadLetterDesk
from lotse_shared.ops.partners import BrokerAdmin
from tests.support import applied, dead_letters, eventually, publish, running

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SCHOOL = "vhs-region-kassel"


# --- the broker's refusals -------------------------------------------------------------


@pytest.fixture
def partners(namespace: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two partners made with the operator's command: a school and the agency."""
    admin = BrokerAdmin.from_env()
    made = {"school": f"sec-school-{namespace}", "agency": f"sec-agency-{namespace}"}
    kinds = {"school": "partner.course.*", "agency": "partner.opening.*"}
    passwords = {}
    for role, name in made.items():
        secret = tmp_path / f"{role}.password"
        secret.write_text(uuid.uuid4().hex)
        rc = ops(
            [
                "partner",
                "--namespace",
                namespace,
                "add",
                name,
                "--district",
                "kassel",
                "--publishes",
                kinds[role],
                "--definitions",
                str(tmp_path / "partners.json"),
                "--password-file",
                str(secret),
                "--no-api-key",
            ]
        )
        assert rc == 0
        passwords[name] = secret.read_text()
    yield {**made, **{f"{name}:password": pw for name, pw in passwords.items()}}
    for name in made.values():
        admin.delete_user(name)


def url_of(rabbit_url: str, user: str, password: str) -> str:
    host = rabbit_url.split("@", 1)[1]
    return f"amqp://{user}:{password}@{host}"


async def attempt(
    connection: aio_pika.abc.AbstractConnection,
    exchange: str,
    routing_key: str,
    *,
    user_id: str | None,
) -> str | None:
    """Publish one message on a fresh channel; None if confirmed, else the refusal."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        target = await channel.get_exchange(exchange, ensure=False) if exchange else None
        message = aio_pika.Message(b'{"producer": "x"}', user_id=user_id)
        if target is None:
            await channel.default_exchange.publish(message, routing_key=routing_key)
        else:
            await target.publish(message, routing_key=routing_key)
        await channel.close()
        return None
    except (
        aiormq.exceptions.ChannelAccessRefused,
        aiormq.exceptions.ChannelPreconditionFailed,
    ) as e:
        return str(e)


async def test_the_broker_refuses_what_a_partner_may_not_publish(
    rabbit_url: str, namespace: str, partners: dict[str, str]
) -> None:
    guest = await aio_pika.connect(rabbit_url)
    async with guest:
        setup = await guest.channel()
        events = await setup.declare_exchange(
            f"{namespace}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead = await setup.declare_exchange(
            f"{namespace}.dead", aio_pika.ExchangeType.DIRECT, durable=True
        )
        school, agency = partners["school"], partners["agency"]
        as_school = await aio_pika.connect(
            url_of(rabbit_url, school, partners[f"{school}:password"])
        )
        as_agency = await aio_pika.connect(
            url_of(rabbit_url, agency, partners[f"{agency}:password"])
        )
        async with as_school, as_agency:
            # what it may do goes through
            allowed = [
                (as_school, events.name, "partner.course.completion_reported.v1", school),
                (as_agency, events.name, "partner.opening.reported.v1", agency),
            ]
            for conn, exchange, key, user_id in allowed:
                assert await attempt(conn, exchange, key, user_id=user_id) is None, key
            forbidden: list[tuple[str, Any, str, str, str | None, str]] = [
                # (what, connection, exchange, routing key, user_id, expected refusal)
                (
                    "another partner's routing key",
                    as_school,
                    events.name,
                    "partner.opening.reported.v1",
                    school,
                    "ACCESS_REFUSED - access to topic 'partner.opening.reported.v1'",
                ),
                (
                    "another partner's routing key",
                    as_agency,
                    events.name,
                    "partner.course.completion_reported.v1",
                    agency,
                    "ACCESS_REFUSED - access to topic 'partner.course.completion_reported.v1'",
                ),
                (
                    "a service's routing key",
                    as_school,
                    events.name,
                    "courses.course.completed.v1",
                    school,
                    "ACCESS_REFUSED - access to topic 'courses.course.completed.v1'",
                ),
                (
                    "a forged user_id",
                    as_school,
                    events.name,
                    "partner.course.completion_reported.v1",
                    agency,
                    f"user_id property set to '{agency}' but authenticated user was '{school}'",
                ),
                (
                    "a forged user_id naming a service",
                    as_agency,
                    events.name,
                    "partner.opening.reported.v1",
                    "guest",
                    f"user_id property set to 'guest' but authenticated user was '{agency}'",
                ),
                (
                    "the dead-letter exchange",
                    as_school,
                    dead.name,
                    "courses",
                    school,
                    f"ACCESS_REFUSED - access to exchange '{dead.name}'",
                ),
                (
                    "a queue, through the default exchange",
                    as_school,
                    "",
                    f"{namespace}.courses.partner.course.completion_reported.v1",
                    school,
                    "ACCESS_REFUSED - access to exchange 'amq.default'",
                ),
            ]
            refusals = []
            for what, conn, exchange, key, claimed, expected in forbidden:
                refusal = await attempt(conn, exchange, key, user_id=claimed)
                assert refusal is not None, f"{what} ({key}) was accepted"
                assert expected in refusal, refusal
                refusals.append({"attempt": what, "routing_key": key, "refusal": refusal})
            # nor may it declare anything (configure '^$')
            channel = await as_school.channel()
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await channel.declare_queue(f"{namespace}.sneaky", auto_delete=True)
        await events.delete()
        await dead.delete()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "partners.json").write_text(
        json.dumps(
            {
                "broker_refused": len(refusals),
                "broker_allowed": len(allowed),
                "refusals": refusals,
            },
            indent=2,
        )
    )
    assert len(refusals) == len(forbidden) == 7


# --- the services' check of user_id against producer -----------------------------------


async def raw_publish(
    rabbit_url: str,
    namespace: str,
    event: p.EnrolmentReported,
    *,
    user_id: str | None = None,
    headers: dict[str, Any] | None = None,
) -> None:
    """As a service's connection (guest) would: not the partner's own user."""
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{namespace}.events")
        await exchange.publish(
            aio_pika.Message(
                event.to_wire(),
                message_id=str(event.event_id),
                user_id=user_id,
                headers=headers or {},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=event.ROUTING_KEY,
        )


def enrolment(person_id: uuid.UUID) -> p.EnrolmentReported:
    return p.EnrolmentReported.create(
        p.EnrolmentReportedV1(person_id=person_id, course=course_details()), producer=SCHOOL
    )


async def test_a_partner_event_counts_only_when_the_broker_vouches_for_its_producer(
    service_env: dict[str, str], rabbit_url: str, namespace: str
) -> None:
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    app = courses_app()
    db = app.state.runtime.db
    async with running(app):
        await publish(rabbit_url, namespace, person)
        await applied(app, person)
        # claims to be the school, but comes over another connection
        no_user_id, guest_user_id, spoofed = enrolment(pid), enrolment(pid), enrolment(pid)
        await raw_publish(rabbit_url, namespace, no_user_id)
        await raw_publish(rabbit_url, namespace, guest_user_id, user_id="guest")
        # our own headers are not believed on a message from the events exchange
        await raw_publish(
            rabbit_url,
            namespace,
            spoofed,
            headers={
                HEADER_VERIFIED_PRODUCER: SCHOOL,
                HEADER_ROUTING_KEY: "intake.person.registered.v1",
                HEADER_ATTEMPTS: "not a number",
            },
        )
        # the school itself (its broker user, user_id set): applied
        genuine = enrolment(pid)
        await publish(rabbit_url, namespace, genuine)
        await applied(app, genuine)

        found: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def three() -> bool:
            found.extend(await dead_letters(rabbit_url, namespace, "courses"))
            return len(found) >= 3

        await eventually(three, timeout_s=15, what="three dead letters")
        reasons = {m.message_id: str((m.headers or {})[HEADER_REASON]) for m in found}
        assert reasons[str(no_user_id.event_id)].startswith(
            f"user_id missing does not match producer '{SCHOOL}'"
        )
        assert reasons[str(guest_user_id.event_id)].startswith(
            f"user_id 'guest' does not match producer '{SCHOOL}'"
        )
        assert reasons[str(spoofed.event_id)].startswith(
            f"user_id missing does not match producer '{SCHOOL}'"
        )
        assert len(found) == 3
        for letter in found:  # the broker's routing key and our count, not the sender's
            assert (letter.headers or {})[HEADER_ROUTING_KEY] == enrolment(pid).ROUTING_KEY
            assert (letter.headers or {})[HEADER_ATTEMPTS] == 1
            assert HEADER_VERIFIED_PRODUCER not in (letter.headers or {})
        # only the genuine enrolment exists
        enrolments = await db["enrolments"].find({}).to_list()
        assert len(enrolments) == 1
        for forged in (no_user_id, guest_user_id, spoofed):
            assert await db["inbox"].find_one({"_id": str(forged.event_id)}) is None

        # an operator's replay of such a letter does not launder it: dead again
        await raw_publish(rabbit_url, namespace, no_user_id)
        desk = DeadLetterDesk(rabbit_url, namespace)

        async def parked_again() -> list[Any]:
            return await desk.list("courses")

        await eventually(parked_again, timeout_s=15, what="the dead letter")
        assert await desk.replay("courses", str(no_user_id.event_id)) == 1

        async def dead_again() -> list[Any]:
            return [
                letter
                for letter in await desk.list("courses")
                if letter.message_id == str(no_user_id.event_id)
            ]

        [letter] = await eventually(dead_again, timeout_s=15, what="the replayed letter")
        assert letter.reason.startswith(
            f"{HEADER_VERIFIED_PRODUCER} missing does not match producer '{SCHOOL}'"
        )
        assert await db["inbox"].find_one({"_id": str(no_user_id.event_id)}) is None


async def test_a_retried_partner_event_keeps_its_verified_producer(
    service_env: dict[str, str],
    rabbit_url: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = person.payload.person_id
    first = enrolment(pid)
    attendance = p.AttendanceReported.create(
        p.AttendanceReportedV1(person_id=pid, course=COURSE_REF, session_date=TODAY, present=True),
        producer=SCHOOL,
    )
    monkeypatch.setenv("LOTSE_RETRY_DELAYS_S", "[2.0]")
    monkeypatch.setenv("LOTSE_CHAOS_FAIL_EVENT_IDS", json.dumps([str(attendance.event_id)]))
    sick = courses_app()
    async with running(sick):
        await publish(rabbit_url, namespace, person, first)
        await applied(sick, first)
        await publish(rabbit_url, namespace, attendance)

        async def waiting() -> bool:  # its copy waits in the first retry queue
            connection = await aio_pika.connect(rabbit_url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(f"{namespace}.courses.retry.1", passive=True)
                return (queue.declaration_result.message_count or 0) == 1

        await eventually(waiting, timeout_s=15, what="the retry copy", every_s=0.05)
    monkeypatch.setenv("LOTSE_CHAOS_FAIL_EVENT_IDS", "[]")  # the fix
    fixed = courses_app()
    async with running(fixed):
        await applied(fixed, attendance)  # came back from the service's own retry exchange
        doc = await fixed.state.runtime.db["enrolments"].find_one()
        assert doc is not None
        assert len(doc["sessions"]) == 1
        assert await dead_letters(rabbit_url, namespace, "courses") == []


# --- API keys --------------------------------------------------------------------------


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "partner-keys.json"
    monkeypatch.setenv("LOTSE_PARTNER_KEYS_FILE", str(path))
    return path


def issue_key(keys_file: Path, partner_id: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert ops(["partner", "--keys-file", str(keys_file), "key", "create", partner_id,
                "--district", "kassel"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip().splitlines()[-1]
    return line.rsplit(" ", 1)[-1]


@pytest.fixture
async def placement(service_env: dict[str, str], keys_file: Path) -> AsyncIterator[Any]:
    app = placement_app()
    async with running(app, role=None) as http:
        yield http


async def test_api_keys_stand_for_their_partner_until_revoked(
    placement: Any, keys_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http = placement
    ihk = issue_key(keys_file, "ihk-kassel", capsys)
    hwk = issue_key(keys_file, "hwk-kassel", capsys)
    assert ihk.startswith("lotse_")
    assert ihk != hwk
    body = opening_report().model_dump(mode="json")
    r = await http.post("/openings", json=body, headers={"X-Api-Key": ihk})
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "ihk-kassel"
    # the same as an Authorization header; a partner sees only its own openings
    r = await http.post(
        "/openings", json=opening_report().model_dump(mode="json"),
        headers={"Authorization": f"ApiKey {hwk}"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    listed = (await http.get("/openings", headers={"X-Api-Key": ihk})).json()
    assert [o["source"] for o in listed] == ["ihk-kassel"]
    # a key is a partner's, nothing more: no staff endpoint takes it
    r = await http.get("/reports/placement", headers={"X-Api-Key": ihk})
    assert r.status_code == 401
    # a wrong secret, an unknown id, garbage: 401, and the answer repeats none of it
    key_id = ihk.split("_")[1]
    wrong = f"lotse_{key_id}_{'A' * 43}"
    for presented in (wrong, f"lotse_{'0' * 16}_{'B' * 43}", "not-a-key", ihk[:-1]):
        r = await http.get("/openings", headers={"X-Api-Key": presented})
        assert r.status_code == 401, presented
        assert r.json()["detail"] == "not authenticated: unknown or revoked API key"
        assert presented not in r.text
        assert key_id not in r.text
    # revoked: refused at once, without a restart; the other partner's key still works
    assert ops(["partner", "--keys-file", str(keys_file), "key", "revoke", key_id]) == 0
    r = await http.get("/openings", headers={"X-Api-Key": ihk})
    assert r.status_code == 401
    assert (await http.get("/openings", headers={"X-Api-Key": hwk})).status_code == 200
    # the file keeps hashes only
    stored = await asyncio.to_thread(keys_file.read_text)
    for key in (ihk, hwk):
        assert key not in stored
        assert key.split("_", 2)[2] not in stored
    records = json.loads(stored)["keys"]
    assert {r["partner_id"] for r in records} == {"ihk-kassel", "hwk-kassel"}
    assert all(len(r["sha256"]) == 64 for r in records)
    assert [r["revoked_at"] is not None for r in records] == [True, False]


async def test_without_a_keys_file_no_api_key_is_accepted(
    service_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = issue_key(tmp_path / "elsewhere.json", "ihk-kassel", capsys)
    app = placement_app()  # LOTSE_PARTNER_KEYS_FILE is not set
    async with running(app, role=None) as http:
        r = await http.get("/openings", headers={"X-Api-Key": key})
        assert r.status_code == 401


def test_the_openapi_document_offers_api_keys_to_partner_endpoints_only(
    service_env: dict[str, str],
) -> None:
    schema = placement_app().openapi()
    assert schema["components"]["securitySchemes"]["partnerApiKey"] == {
        "type": "apiKey",
        "description": schema["components"]["securitySchemes"]["partnerApiKey"]["description"],
        "in": "header",
        "name": "X-Api-Key",
    }
    with_keys = {
        (method.upper(), path)
        for path, ops_ in schema["paths"].items()
        for method, op in ops_.items()
        if any("partnerApiKey" in req for req in op.get("security", []))
    }
    for path, ops_ in schema["paths"].items():
        for method, op in ops_.items():
            security = op.get("security", [])
            if not security:
                continue
            partner_ok = "partner" in security[0]["bearer"]
            assert ((method.upper(), path) in with_keys) == partner_ok, (method, path)
            if partner_ok:
                assert security[1] == {"partnerApiKey": ["partner"]}
    assert ("POST", "/openings") in with_keys
    assert ("POST", "/imports/csv") in with_keys
