"""The partners' AsyncAPI 3 document: Lotse's inbound contract, from the partner's side.

The services' own documents (``/asyncapi.json``) describe their queues; a partner
never sees those. This one describes what a partner's program does: connect to the
district's broker as its own user, publish to the exchange ``<namespace>.events``
with one of the ``partner.*`` routing keys, set the message properties Lotse checks,
and send an envelope whose payload the consumer validates. Every schema comes from
the pydantic models that do that validation, so the document cannot say something
the consumer does not enforce (tests/contract/test_partner_asyncapi.py checks the
copy in ``docs/asyncapi/``).

``python -m lotse_shared.ops.partner_contract docs/asyncapi`` writes the JSON
document and its HTML page.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from lotse_shared.places import place_names

from . import partner
from .envelope import Event

BINDING_VERSION = "0.3.0"
VERSION = "1.0.0"

SCHOOL_EVENTS: tuple[type[Event], ...] = (
    partner.EnrolmentReported,
    partner.AttendanceReported,
    partner.ExamResultReported,
    partner.CompletionReported,
    partner.DropoutReported,
)
OPENING_EVENTS: tuple[type[Event], ...] = (
    partner.OpeningReported,
    partner.OpeningWithdrawn,
    partner.OpeningFeedReported,
)
PARTNER_EVENTS = SCHOOL_EVENTS + OPENING_EVENTS

# What one example of each message carries; the envelope around it is the same for all.
_PERSON = "0b8e4c1e-6f5b-4c59-9f0e-5d1f3a2b7c44"
_COURSE = {"provider": "VHS Region Kassel", "course_ref": "IK-2026-14"}
EXAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    partner.EnrolmentReported.ROUTING_KEY: {
        "person_id": _PERSON,
        "course": {
            **_COURSE,
            "course_type": "integrationskurs",
            "title": "Integrationskurs Allgemein",
            "target_level": "B1",
            "starts_on": "2026-03-02",
            "ends_on": "2026-11-27",
            "municipality": "Baunatal",
            "teaching_units": 700,
        },
    },
    partner.AttendanceReported.ROUTING_KEY: {
        "person_id": _PERSON,
        "course": _COURSE,
        "session_date": "2026-11-02",
        "present": True,
    },
    partner.ExamResultReported.ROUTING_KEY: {
        "person_id": _PERSON,
        "course": _COURSE,
        "exam": "dtz",
        "result": "B1",
        "taken_on": "2026-11-20",
    },
    partner.CompletionReported.ROUTING_KEY: {
        "person_id": _PERSON,
        "course": _COURSE,
        "completed_on": "2026-11-27",
        "level_reached": "B1",
    },
    partner.DropoutReported.ROUTING_KEY: {
        "person_id": _PERSON,
        "course": _COURSE,
        "dropped_on": "2026-06-15",
        "reason": "moved away",
    },
    partner.OpeningReported.ROUTING_KEY: {
        "source_ref": "10000-1199999999-S",
        "opening_type": "praktikum",
        "title": "Praktikum Lagerlogistik",
        "employer": "Nordhessen Logistik GmbH",
        "occupation_code": "51312",
        "sector": "logistik",
        "required_german_level": "A2",
        "location": {"municipality": "Baunatal", "postcode": "34225"},
        "start_date": "2027-02-01",
        "seats": 2,
    },
    partner.OpeningWithdrawn.ROUTING_KEY: {
        "source_ref": "10000-1199999999-S",
        "reason": "besetzt",
    },
    partner.OpeningFeedReported.ROUTING_KEY: {
        "format": "jobsuche",
        "angebotsart": 4,
        "document": {
            "stellenangebote": [
                {
                    "refnr": "10000-1199999998-S",
                    "titel": "Ausbildung Fachlagerist/in",
                    "arbeitgeber": "Nordhessen Logistik GmbH",
                    "arbeitsort": {"plz": "34225", "ort": "Baunatal"},
                    "eintrittsdatum": "2027-08-01",
                }
            ]
        },
    },
}

_DESCRIPTION = """\
Events that schools, language schools, the employment agency and the chambers publish
to Lotse. **Schools** publish the `partner.course.*` routing keys; the **employment
agency and the chambers** publish `partner.opening.*`. Your broker user may publish
only your kind of keys.

**How to publish** (every message, every operation below):

- connect as **your own broker user** (your partner id, e.g. `vhs-region-kassel`) with
  the password the district gave you, over TLS in production;
- publish to the exchange named in each channel's binding (`lotse.events`, topic,
  already declared: do not declare it, your user may not), with the channel's address
  as the **routing key**;
- set the AMQP properties in `x-amqp-properties` of the message trait: **`user_id` =
  your partner id = the envelope's `producer`** (without it every message is
  dead-lettered), `content_type` `application/json`, `delivery_mode` 2 (persistent),
  `message_id` = the envelope's `event_id`;
- publish with **`mandatory`** and **publisher confirms**: a routing key Lotse does not
  know (a typo) is returned to you as unroutable (reply code 312 `NO_ROUTE`) instead of
  being confirmed; a key your user may not use, or a `user_id` that is not yours, is
  refused by the broker, which **closes your channel** (`ACCESS_REFUSED` /
  `PRECONDITION_FAILED`): handle the channel's error event and open a new channel.

**What happens next.** Each message is applied exactly once (sending the same `event_id`
again is safe), parked while it waits for something (a person not registered yet, at
most 7 days), or dead-lettered with the reason and the field. See the outcome of each
message you sent at `GET /partner/messages` on the service your events go to (courses
for schools, placement for openings), with your API key. Details and examples in
Python and Node.js: `docs/partner-events.md`.
"""


def _amqp_properties() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "AMQP basic properties (not headers) every partner message carries.",
        "required": ["user_id", "content_type", "delivery_mode"],
        "properties": {
            "user_id": {
                "type": "string",
                "description": "Your partner id: the broker user you connect as, and the "
                "envelope's producer. The broker refuses any other value; Lotse "
                "dead-letters a message without it.",
                "examples": ["vhs-region-kassel"],
            },
            "content_type": {"const": "application/json"},
            "delivery_mode": {"const": 2, "description": "persistent"},
            "message_id": {
                "type": "string",
                "format": "uuid",
                "description": "Recommended: the envelope's event_id.",
            },
        },
    }


def _lift_refs(schema: Any) -> Any:
    """pydantic's ``#/$defs/X`` become ``#/components/schemas/X``."""
    if isinstance(schema, dict):
        return {
            k: (
                re.sub(r"^#/\$defs/", "#/components/schemas/", v)
                if k == "$ref" and isinstance(v, str)
                else _lift_refs(v)
            )
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lift_refs(v) for v in schema]
    return schema


def _with_known_places(schemas: dict[str, Any]) -> None:
    """A place is a municipality Lotse knows by name, or coordinates (then any name).

    The consumer checks the name against the same list (``lotse_shared.places``)."""
    schemas["Municipality"] = {
        "type": "string",
        "title": "Municipality",
        "description": "A town or municipality of the district (and the city of Kassel) "
        "that Lotse can place without coordinates. Anywhere else: send lat and lon.",
        "enum": place_names(),
    }
    for name in ("OpeningLocation", "CourseDetails"):
        if name not in schemas:
            continue
        municipality = schemas[name]["properties"]["municipality"]
        known = {"$ref": "#/components/schemas/Municipality"}
        if name == "CourseDetails":  # a course's place is always one Lotse knows
            schemas[name]["properties"]["municipality"] = {
                **known,
                "description": "The course's place.",
            }
            continue
        municipality["description"] = (
            "Without lat and lon: one of the names in Municipality. With coordinates: any name."
        )
        schemas[name]["anyOf"] = [
            {"required": ["lat", "lon"]},
            {"required": ["municipality"], "properties": {"municipality": known}},
        ]


def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """Component schemas (one per event, plus their parts) and per-event references."""
    schemas: dict[str, Any] = {}
    refs: dict[str, Any] = {}
    for event_cls in PARTNER_EVENTS:
        schema = event_cls.model_json_schema(
            mode="validation", ref_template="#/components/schemas/{model}"
        )
        for name, part in schema.pop("$defs", {}).items():
            schemas[name] = _lift_refs(part)
        schemas[event_cls.__name__] = _lift_refs(schema)
        refs[event_cls.ROUTING_KEY] = {"$ref": f"#/components/schemas/{event_cls.__name__}"}
    _with_known_places(schemas)
    # the payload's own check (_content_matches_format), as the schema says it
    schemas["OpeningFeedReportedV1"]["oneOf"] = [
        {"properties": {"format": {"const": "jobsuche"}}, "required": ["document"]},
        {"properties": {"format": {"const": "csv"}}, "required": ["csv"]},
    ]
    return schemas, refs


def _channel_id(routing_key: str) -> str:
    words = re.split(r"[._]", routing_key)
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _example(event_cls: type[Event], producer: str) -> dict[str, Any]:
    event_id = "6f1c9a57-3f44-4d47-9a55-0a3c8e0b3f11"
    envelope = {
        "event_id": event_id,
        "event_type": event_cls.model_fields["event_type"].default,
        "event_version": event_cls.model_fields["event_version"].default,
        "occurred_at": "2026-11-27T09:15:00+01:00",
        "producer": producer,
        "correlation_id": event_id,
        "payload": EXAMPLE_PAYLOADS[event_cls.ROUTING_KEY],
    }
    return {
        "name": "example",
        "summary": f"A {event_cls.__name__} from {producer}",
        "headers": {},
        "payload": envelope,
    }


@dataclass(frozen=True)
class PartnerContract:
    """``to_json()`` and ``title`` are what FastStream's AsyncAPI page needs."""

    document: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.document["info"]["title"])

    def to_json(self) -> str:
        return json.dumps(self.document, ensure_ascii=False, indent=2) + "\n"


def partner_document(namespace: str = "lotse") -> PartnerContract:
    exchange = f"{namespace}.events"
    schemas, refs = _schemas()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_cls in PARTNER_EVENTS:
        key = event_cls.ROUTING_KEY
        school = event_cls in SCHOOL_EVENTS
        who = "schools" if school else "agency-and-chambers"
        producer = "vhs-region-kassel" if school else "ba-jobsuche"
        name = event_cls.__name__
        channel_id = _channel_id(key)
        messages[name] = {
            "name": name,
            "title": event_cls.model_fields["event_type"].default,
            "summary": event_cls.DESCRIPTION,
            "contentType": "application/json",
            "payload": refs[key],
            "correlationId": {"$ref": "#/components/correlationIds/flow"},
            "traits": [{"$ref": "#/components/messageTraits/partnerMessage"}],
            "bindings": {
                "amqp": {
                    "messageType": event_cls.model_fields["event_type"].default,
                    "bindingVersion": BINDING_VERSION,
                }
            },
            "examples": [_example(event_cls, producer)],
        }
        channels[channel_id] = {
            "address": key,
            "title": key,
            "description": f"Routing key `{key}` on the exchange `{exchange}`. "
            + event_cls.DESCRIPTION,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": exchange,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": BINDING_VERSION,
                }
            },
        }
        operations[f"publish{name}"] = {
            "action": "send",
            "title": f"Publish {key}",
            "summary": event_cls.DESCRIPTION,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
            "tags": [{"name": who}],
            "security": [{"$ref": "#/components/securitySchemes/brokerUser"}],
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": True,
                    "userId": "your partner id (equals the envelope's producer)",
                    "bindingVersion": BINDING_VERSION,
                }
            },
        }
    document = {
        "asyncapi": "3.0.0",
        "id": "urn:lotse:partner-events",
        "info": {
            "title": "Lotse — events partners publish",
            "version": VERSION,
            "description": _DESCRIPTION,
            "tags": [
                {"name": "schools", "description": "Schools and language schools: course events."},
                {
                    "name": "agency-and-chambers",
                    "description": "The employment agency and the chambers: openings.",
                },
            ],
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "{host}:5671",
                "protocol": "amqps",
                "protocolVersion": "0.9.1",
                "title": "The district's broker",
                "description": "AMQP 0-9-1 over TLS. The district gives you its host name, "
                "your broker user and its password.",
                "variables": {
                    "host": {
                        "description": "The district's broker host.",
                        "default": "rabbitmq.lotse.example",
                    }
                },
                "security": [{"$ref": "#/components/securitySchemes/brokerUser"}],
            },
            "development": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "title": "A developer's machine",
                "description": "`make up` (see the README); a partner's user is made with "
                "`lotse partner add`. Plain AMQP: for local tests only.",
                "security": [{"$ref": "#/components/securitySchemes/brokerUser"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": messages,
            "messageTraits": {
                "partnerMessage": {
                    "description": "Set these AMQP properties on every message.",
                    "x-amqp-properties": _amqp_properties(),
                }
            },
            "correlationIds": {
                "flow": {
                    "description": "The envelope's correlation_id (optional; defaults to a "
                    "fresh id): shared by every event Lotse derives from yours.",
                    "location": "$message.payload#/correlation_id",
                }
            },
            "securitySchemes": {
                "brokerUser": {
                    "type": "userPassword",
                    "description": "Your own broker user (named by your partner id) and its "
                    "password, over TLS (SASL PLAIN, or SCRAM where the district's broker "
                    "offers it). It may write only to the events exchange, only your "
                    "kind of routing keys, and read and declare nothing.",
                }
            },
        },
    }
    return PartnerContract(copy.deepcopy(document))
