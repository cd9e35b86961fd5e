"""Less personal data in motion (issue #6, part 9).

- Routing keys are constants of the event classes: nothing of a payload ever becomes part
  of a routing key (keys are visible to the broker, its logs and every operator).
- Events carry identifiers and the facts a consumer needs. A person's name, contacts
  and personal facts travel only in intake's snapshot; every field of that kind is
  listed here with the consumer that needs it, so a new one fails this test until it
  is justified (and documented in docs/auth.md, "Personal data in events").
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from lotse_devstack.samples import CASEWORKER, one_of_each_event, snapshot
from lotse_shared.contracts.catalogue import ALL_EVENTS
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import PersonRegistered, PersonUpdated
from lotse_shared.messaging.topology import Topology
from lotse_shared.persistence.mongo import outbox_document

#: field names that hold a person's identity, contacts or personal facts
PERSONAL = frozenset(
    {
        "name",
        "display_name",
        "given_name",
        "family_name",
        "first_name",
        "last_name",
        "full_name",
        "email",
        "emails",
        "phone",
        "mobile",
        "address",
        "street",
        "contact",
        "contacts",
        "birth_date",
        "date_of_birth",
        "birth_year",
        "nationality",
        "residence_status",
        "user",
        "recipient",
        "recipient_email",
    }
)

#: the personal fields of intake's snapshot and who needs them
SNAPSHOT_NEEDS = {
    "display_name": "notifications: names the person in the caseworker's alert",
    "contacts": "notifications: whom to tell; placement, courses: who may see the person",
    "name": "notifications: addresses the caseworker (contacts[].name)",
    "email": "notifications: sends the alert; placement, courses: access scoping",
    "birth_year": "placement: age rules (InteA school duty, minimum ages)",
    "residence_status": "placement: which kinds of opening the person may take",
}
ALLOWED: dict[str, set[str]] = {
    PersonRegistered.ROUTING_KEY: set(SNAPSHOT_NEEDS),
    PersonUpdated.ROUTING_KEY: set(SNAPSHOT_NEEDS),
}

KEY_CONSTANTS = {cls.ROUTING_KEY for cls in ALL_EVENTS}


def field_names(event_cls: type[Event]) -> set[str]:
    """Every property name anywhere in the event's payload schema."""
    schema = event_cls.model_json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            walk(defs[node["$ref"].rsplit("/", 1)[-1]])
        for name, sub in node.get("properties", {}).items():
            found.add(name)
            walk(sub)
        for key in ("items", "anyOf", "allOf", "oneOf", "additionalProperties", "prefixItems"):
            walk(node.get(key))

    walk(schema["properties"]["payload"])
    return found


@pytest.mark.parametrize("event_cls", ALL_EVENTS, ids=lambda c: c.ROUTING_KEY)
def test_personal_fields_travel_only_where_a_consumer_needs_them(event_cls: type[Event]) -> None:
    personal = field_names(event_cls) & PERSONAL
    assert personal == ALLOWED.get(event_cls.ROUTING_KEY, set()), (
        f"{event_cls.ROUTING_KEY} carries {sorted(personal)}: name the consumer that needs "
        "each field in SNAPSHOT_NEEDS and docs/auth.md, or carry an id instead"
    )


def test_only_intake_publishes_names_and_contacts() -> None:
    person = snapshot()
    name, email = person.display_name, CASEWORKER
    for event in one_of_each_event():
        wire = event.to_wire().decode()
        if event.ROUTING_KEY in ALLOWED:
            assert name in wire
            assert email in wire
        else:
            assert name not in wire, event.ROUTING_KEY
            assert email not in wire, event.ROUTING_KEY


@pytest.mark.parametrize("event", one_of_each_event(), ids=lambda e: e.ROUTING_KEY)
def test_routing_keys_are_constants_not_data(event: Event) -> None:
    key = type(event).ROUTING_KEY
    assert key in KEY_CONSTANTS
    assert re.fullmatch(r"[a-z]+(\.[a-z_]+)+\.v\d+", key)
    # what the outbox publishes under, whatever the payload holds
    assert outbox_document(event)["routing_key"] == key
    # retries and replays add only the service and the attempt
    topology = Topology("lotse", "notifications")
    assert topology.retry_routing_key(3, key) == f"notifications.3.{key}"
    assert topology.retry_routing_key("replay", key) == f"notifications.replay.{key}"
    assert topology.dead_letter_routing_key == "notifications"


def test_every_constant_names_one_event() -> None:
    assert {cls.ROUTING_KEY for cls in ALL_EVENTS} == KEY_CONSTANTS
