"""A partner's program built from the partners' AsyncAPI document alone, on the real broker.

The test plays a partner's developer: every name and shape it publishes — exchange,
routing keys, message properties, the envelope and its payloads — is read from
``docs/asyncapi/partners.asyncapi.json``; it imports no Lotse contract. Each partner
event kind is published as the partner's own broker user and is applied. A routing
key Lotse does not know (a typo) comes back to the publisher as unroutable instead of
being confirmed and lost.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.exceptions
import pytest
from pamqp.commands import Basic

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import snapshot
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.auth.apikeys import KeyFile
from lotse_shared.contracts.intake import PersonRegistered
from tests.security.test_partners import partners, url_of
from tests.support import applied, dead_letters, publish, running

__all__ = ["partners"]  # the fixture: a school's and the agency's broker users

DOCUMENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/asyncapi/partners.asyncapi.json").read_text()
)


def operations(tag: str) -> list[dict[str, Any]]:
    """The document's send operations for one kind of partner, in the document's order,
    each with its routing key, exchange and example message."""
    found = []
    for operation in DOCUMENT["operations"].values():
        if tag not in {t["name"] for t in operation["tags"]}:
            continue
        channel = DOCUMENT["channels"][operation["channel"]["$ref"].rsplit("/", 1)[1]]
        message_name = operation["messages"][0]["$ref"].rsplit("/", 1)[1]
        message = DOCUMENT["components"]["messages"][message_name]
        found.append(
            {
                "routing_key": channel["address"],
                "exchange": channel["bindings"]["amqp"]["exchange"]["name"],
                "mandatory": operation["bindings"]["amqp"]["mandatory"],
                "delivery_mode": operation["bindings"]["amqp"]["deliveryMode"],
                "example": message["examples"][0]["payload"],
                "content_type": message["contentType"],
            }
        )
    return found


def required_properties() -> list[str]:
    trait = DOCUMENT["components"]["messageTraits"]["partnerMessage"]
    return list(trait["x-amqp-properties"]["required"])


@asynccontextmanager
async def partner_channel(
    rabbit_url: str, user: str, password: str
) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(url_of(rabbit_url, user, password))
    async with connection:
        yield await connection.channel(publisher_confirms=True, on_return_raises=True)


async def send(
    channel: aio_pika.abc.AbstractChannel,
    namespace: str,
    operation: dict[str, Any],
    envelope: dict[str, Any],
    *,
    routing_key: str | None = None,
) -> None:
    # the document names the production exchange ``lotse.events``; tests run in a namespace
    exchange_name = operation["exchange"].replace("lotse.", f"{namespace}.", 1)
    exchange = await channel.get_exchange(exchange_name, ensure=False)
    properties = {
        "user_id": envelope["producer"],
        "content_type": operation["content_type"],
        "delivery_mode": operation["delivery_mode"],
    }
    assert set(required_properties()) <= set(properties)
    await exchange.publish(
        aio_pika.Message(
            json.dumps(envelope).encode(),
            message_id=envelope["event_id"],
            content_type=properties["content_type"],
            delivery_mode=aio_pika.DeliveryMode(properties["delivery_mode"]),
            user_id=properties["user_id"],
        ),
        routing_key=routing_key or operation["routing_key"],
        mandatory=operation["mandatory"],
    )


def envelope_of(operation: dict[str, Any], producer: str, **payload: Any) -> dict[str, Any]:
    envelope = copy.deepcopy(operation["example"])
    event_id = str(uuid.uuid4())
    envelope.update(event_id=event_id, correlation_id=event_id, producer=producer)
    envelope["payload"].update(payload)
    return envelope


class Applied:
    """Whether a service applied an event: its inbox holds the event id."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, envelope: dict[str, Any]) -> None:
        class Ref:
            event_id = envelope["event_id"]
            event_type = envelope["event_type"]

        await applied(self.app, Ref)  # type: ignore[arg-type]


async def test_a_school_publishes_every_course_event_from_the_document_alone(
    service_env: dict[str, str], rabbit_url: str, namespace: str, partners: dict[str, str]
) -> None:
    school = partners["school"]
    ops = {op["routing_key"]: op for op in operations("schools")}
    assert len(ops) == 5
    person = PersonRegistered.create(snapshot(), producer="intake")
    pid = str(person.payload.person_id)
    app = courses_app()
    async with running(app):
        await publish(rabbit_url, namespace, person)
        await applied(app, person)
        is_applied = Applied(app)
        async with partner_channel(rabbit_url, school, partners[f"{school}:password"]) as ch:
            for course_ref, keys in (
                ("IK-A", ["enrolment", "attendance", "exam_result", "completion"]),
                ("IK-B", ["enrolment", "dropout"]),
            ):
                for word in keys:
                    op = ops[f"partner.course.{word}_reported.v1"]
                    course = {**op["example"]["payload"]["course"], "course_ref": course_ref}
                    envelope = envelope_of(op, school, person_id=pid, course=course)
                    await send(ch, namespace, op, envelope)
                    await is_applied(envelope)
    assert await dead_letters(rabbit_url, namespace, "courses") == []


async def test_the_agency_publishes_every_opening_event_from_the_document_alone(
    service_env: dict[str, str],
    rabbit_url: str,
    namespace: str,
    partners: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agency = partners["agency"]
    keys = tmp_path / "partner-keys.json"
    monkeypatch.setenv("LOTSE_PARTNER_KEYS_FILE", str(keys))
    api_key = {"X-Api-Key": KeyFile(keys).create(agency, "kassel")[1]}
    ops = operations("agency-and-chambers")
    assert len(ops) == 3
    app = placement_app()
    sent = []
    async with running(app, role=None) as http:
        is_applied = Applied(app)
        async with partner_channel(rabbit_url, agency, partners[f"{agency}:password"]) as ch:
            for op in ops:  # reported, withdrawn, feed: the document's order
                envelope = envelope_of(op, agency)
                await send(ch, namespace, op, envelope)
                await is_applied(envelope)
                sent.append(envelope["event_id"])
        # the partner reads each message's fate, and the feed's import, with its key
        for event_id in sent:
            fate = (await http.get(f"/partner/messages/{event_id}", headers=api_key)).json()
            assert fate["status"] == "applied", fate
        feed = (await http.get(f"/partner/messages/{sent[-1]}", headers=api_key)).json()
        result = await http.get(feed["links"]["import"], headers=api_key)
        assert result.status_code == 200, result.text
        assert result.json()["created"] == 1, result.json()
    assert await dead_letters(rabbit_url, namespace, "placement") == []


async def test_a_routing_key_no_one_knows_comes_back_to_the_partner(
    service_env: dict[str, str], rabbit_url: str, namespace: str, partners: dict[str, str]
) -> None:
    agency = partners["agency"]
    op = next(
        o for o in operations("agency-and-chambers") if o["routing_key"].endswith("reported.v1")
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(running(placement_app()))
        await stack.enter_async_context(running(courses_app()))
        ch = await stack.enter_async_context(
            partner_channel(rabbit_url, agency, partners[f"{agency}:password"])
        )
        typo = envelope_of(op, agency)
        with pytest.raises(aio_pika.exceptions.DeliveryError) as returned:
            await send(ch, namespace, op, typo, routing_key="partner.opening.reportd.v1")
        bounced = returned.value.message
        assert bounced is not None
        assert isinstance(bounced.delivery, Basic.Return)
        assert bounced.delivery.reply_text == "NO_ROUTE"
        assert bounced.delivery.routing_key == "partner.opening.reportd.v1"
        assert json.loads(bounced.body)["event_id"] == typo["event_id"]
        # the channel stays usable, and the right key is confirmed
        await send(ch, namespace, op, envelope_of(op, agency))
