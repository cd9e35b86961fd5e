"""Each service's AsyncAPI document (generated from code) is complete and consistent."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from lotse_shared.contracts.catalogue import BY_ROUTING_KEY

SERVICES = ["intake", "courses", "placement", "notifications"]
PUBLISHES = {
    "intake": {
        "intake.person.registered.v1",
        "intake.person.updated.v1",
        "intake.person.erased.v1",
    },
    "courses": {
        "courses.enrolment.created.v1",
        "courses.attendance.recorded.v1",
        "courses.exam_result.recorded.v1",
        "courses.course.completed.v1",
        "courses.course.dropped.v1",
    },
    "placement": {
        "placement.opening.published.v1",
        "placement.opening.closed.v1",
        "placement.suggestions.ready.v1",
        "placement.suggestion.accepted.v1",
        "placement.suggestion.dismissed.v1",
        "placement.case.stage_changed.v1",
        "placement.case.closed.v1",
        "placement.import.completed.v1",
    },
    "notifications": {
        "notifications.notification.delivered.v1",
        "notifications.notification.failed.v1",
    },
}


SUBSCRIBES = {
    "intake": set(),
    "courses": {
        "intake.person.registered.v1",
        "intake.person.updated.v1",
        "intake.person.erased.v1",
        "partner.course.enrolment_reported.v1",
        "partner.course.attendance_reported.v1",
        "partner.course.exam_result_reported.v1",
        "partner.course.completion_reported.v1",
        "partner.course.dropout_reported.v1",
    },
    "placement": {
        "intake.person.registered.v1",
        "intake.person.updated.v1",
        "intake.person.erased.v1",
        "courses.course.completed.v1",
        "courses.enrolment.created.v1",
        "courses.course.dropped.v1",
        "partner.opening.reported.v1",
        "partner.opening.withdrawn.v1",
        "partner.opening.feed_reported.v1",
    },
    "notifications": {
        "intake.person.registered.v1",
        "intake.person.updated.v1",
        "intake.person.erased.v1",
        "placement.suggestions.ready.v1",
        "placement.opening.closed.v1",
        "placement.opening.published.v1",
        "courses.enrolment.created.v1",
        "courses.attendance.recorded.v1",
        "courses.course.completed.v1",
        "courses.course.dropped.v1",
    },
}


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in all_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in all_refs(v)]
    return []


@pytest.mark.parametrize("service", SERVICES)
def test_asyncapi_document(service: str) -> None:
    bootstrap = importlib.import_module(f"lotse_{service}.bootstrap")
    app = bootstrap.create_app()  # no I/O: nothing is connected until the lifespan runs
    from faststream.specification import AsyncAPI

    rt = app.state.runtime
    doc = AsyncAPI(rt.broker, title=service).to_specification().to_jsonable()
    assert doc["asyncapi"] == "3.0.0"
    for ref in all_refs(doc):
        assert ref.startswith("#/"), ref
        resolve(doc, ref)  # raises KeyError if dangling
    channels = doc["channels"].values()
    addresses = {c["address"] for c in channels}
    queues = {c["bindings"]["amqp"].get("queue", {}).get("name") for c in channels}
    subscribed = set(rt.subscriptions.routing_keys)
    assert subscribed == SUBSCRIBES[service]
    for key in subscribed:
        assert key in addresses, key
        assert f"lotse.{service}.{key}" in queues, key  # its own durable queue
    assert PUBLISHES[service] <= addresses
    assert (subscribed | PUBLISHES[service]) <= set(BY_ROUTING_KEY)
    # every operation's message has a payload schema with the envelope's fields
    for operation in doc["operations"].values():
        for message_ref in operation["messages"]:
            message = resolve(doc, message_ref["$ref"])
            if "$ref" in message:
                message = resolve(doc, message["$ref"])
            schema = resolve(doc, message["payload"]["$ref"])
            assert {"event_id", "event_type", "payload"} <= set(schema["properties"]), message
