"""Hypothesis over the events the services consume (issue 6: no crashed consumer, every
rejected event dead-lettered with its reason).

Courses, placement and notifications run in this process against the real broker and
database. Hypothesis (deterministic: ``derandomize``) draws messages for every routing
key they subscribe to: valid envelopes (from lotse_devstack.samples), the same with one field
deleted, replaced by a value of another type, a huge or NUL-carrying string or a huge
integer, the wrong ``event_type`` or version for the key, bodies that are not JSON
objects, truncated JSON, invalid UTF-8, deeply nested JSON, random bytes, with varying
content types. Each message carries its own id (AMQP ``message_id``, and ``event_id``
where the envelope has one), so its outcome is found per service:

- applied: the service's inbox holds its id;
- dead-lettered: it is in ``<ns>.<service>.dead`` with a non-empty
  ``x-lotse-dead-reason``; events parked for a person nobody registered expire into the
  dead letters too (a short ``LOTSE_PARKED_MAX_AGE_S`` here, then a sweep);
- lost: neither. None may be lost, and none may be dead-lettered because its handler
  crashed (retried until it "gave up": the AMQP form of a 500).

Afterwards a valid event is still applied by every service, and health answers 200.
Writes tests/artifacts/fuzz-amqp.json; ``LOTSE_FUZZ_MESSAGES`` (default 1000) sets the
number of messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import strategies as st

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import one_of_each_event, snapshot
from lotse_notifications.bootstrap import create_app as notifications_app
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.messaging.deadletter import HEADER_ERROR_TYPE, HEADER_REASON
from tests.security.fuzzing import ARTIFACTS, draw
from tests.support import applied, eventually, publish, running

MESSAGES = int(os.environ.get("LOTSE_FUZZ_MESSAGES", "1000"))
SETTLE_S = 60 + MESSAGES / 5
SERVICES: dict[str, Callable[[], FastAPI]] = {
    "courses": courses_app,
    "placement": placement_app,
    "notifications": notifications_app,
}
# Dead letters of messages that failed for good on their content (not a crash).
CONTENT_ERRORS = {
    "ValidationError",
    "JSONDecodeError",
    "UnicodeDecodeError",
    "NotApplicable",
    "NotYetApplicable",
}

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
ODD_VALUES = st.sampled_from(
    [
        "x" * 200_000,  # huge string
        "Amal\x00Haddad",  # NUL byte
        "\ud800",  # a lone surrogate (becomes \\ud800 in JSON)
        2**63,  # just past MongoDB's 8-byte integers
        -(2**63) - 1,
        10**40,
        1e308,
        "",
        "   ",
        "1970-01-01T00:00:00",  # a date-time without zone
        "9999-12-31",
        "0001-01-01",
        "00000000-0000-0000-0000-000000000000",
        [],
        {},
        {"$where": "sleep(1000)"},  # a MongoDB operator where a value belongs
        "$set",
    ]
)
# How often each kind of message is drawn: mostly ones that pass the envelope's
# validation and reach the handlers with odd values, then the plainly broken ones.
KINDS = [
    *["valid"] * 3,
    *["odd"] * 5,
    *["replace"] * 4,
    *["delete"] * 2,
    "event_type",
    "event_version",
    "not_an_object",
    "truncated",
    "not_utf8",
    "nested",
    "bytes",
    "content_type",
]
CONTENT_TYPES = st.sampled_from(
    [None, "text/plain", "application/octet-stream", "x/unknown", "application/json; x=1"]
)


@dataclass(frozen=True)
class Message:
    routing_key: str
    kind: str
    body: bytes
    content_type: str | None


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON document (objects and list items)."""
    found: list[tuple[Any, ...]] = []
    items: Any = []
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    for key, value in items:
        found.append((*prefix, key))
        found.extend(_paths(value, (*prefix, key)))
    return found


def _set(doc: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    for key in path[:-1]:
        doc = doc[key]
    if delete:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


def _dump(doc: Any, ascii: bool = False) -> bytes:
    """UTF-8 JSON; a lone surrogate becomes the bytes ED A0 80 (not UTF-8), or with
    ``ascii`` the escape ``\\ud800``, which is valid JSON."""
    return json.dumps(doc, ensure_ascii=ascii).encode("utf-8", "surrogatepass")


@st.composite
def messages(draw_: st.DrawFn, bases: list[tuple[str, dict[str, Any]]]) -> Message:
    key, base = draw_(st.sampled_from(bases))
    doc = json.loads(json.dumps(base))
    kind = draw_(st.sampled_from(KINDS))
    content_type: str | None = "application/json"
    if kind == "content_type":
        content_type = draw_(CONTENT_TYPES)
    body: bytes
    if kind in ("delete", "replace", "odd"):
        path = draw_(st.sampled_from(_paths(doc)))
        if kind == "delete":
            _set(doc, path, None, delete=True)
        else:
            _set(doc, path, draw_(JSON_VALUES if kind == "replace" else ODD_VALUES))
        kind = f"{kind}:{'.'.join(map(str, path))}"
    elif kind == "event_type":
        others = sorted({b["event_type"] for _, b in bases} - {doc["event_type"]})
        doc["event_type"] = draw_(st.sampled_from([*others, "", "x" * 300]))
    elif kind == "event_version":
        doc["event_version"] = draw_(st.sampled_from([0, 2, -1, 2**70, "1", 1.5, None]))
    if kind == "not_an_object":
        body = _dump(draw_(JSON_VALUES.filter(lambda v: not isinstance(v, dict))))
    elif kind == "truncated":
        whole = _dump(doc)
        body = whole[: draw_(st.integers(min_value=0, max_value=len(whole) - 1))]
    elif kind == "not_utf8":
        whole = _dump(doc)
        at = draw_(st.integers(min_value=0, max_value=len(whole)))
        body = (
            whole[:at]
            + draw_(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]))
            + whole[at:]
        )
    elif kind == "nested":
        depth = draw_(st.sampled_from([100, 5_000, 100_000]))
        doc["payload"] = json.loads("[" * 50 + "]" * 50)  # replaced below on the wire
        body = _dump(doc).replace(b"[" * 50 + b"]" * 50, b"[" * depth + b"]" * depth)
    elif kind == "bytes":
        body = draw_(st.binary(max_size=200))
    else:
        body = _dump(doc, ascii=draw_(st.booleans()))
    return Message(key, kind, body, content_type)


@dataclass
class Outcome:
    delivered: set[str] = field(default_factory=set)
    applied: set[str] = field(default_factory=set)
    dead: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def lost(self) -> set[str]:
        return self.delivered - self.applied - set(self.dead)

    @property
    def crashed(self) -> dict[str, dict[str, Any]]:
        return {
            tag: headers
            for tag, headers in self.dead.items()
            if str(headers.get(HEADER_ERROR_TYPE)) not in CONTENT_ERRORS
            and "gave up" in str(headers.get(HEADER_REASON, ""))
        }


def with_tag(msg: Message, tag: str) -> bytes:
    """The body, with ``tag`` as event_id where the body is a JSON object naming one."""
    try:
        doc = json.loads(msg.body)
    except (ValueError, RecursionError):
        return msg.body
    if isinstance(doc, dict) and "event_id" in doc and _is_uuid(doc["event_id"]):
        return msg.body.replace(str(doc["event_id"]).encode(), tag.encode(), 1)
    return msg.body


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


async def collect(app: FastAPI, rabbit_url: str, namespace: str, name: str, out: Outcome) -> None:
    """Read the service's inbox and take its dead letters (they are consumed)."""
    tags = list(out.delivered - out.applied - set(out.dead))
    if tags:
        inbox = app.state.runtime.db["inbox"]
        found = await inbox.find({"_id": {"$in": tags}}, {"_id": 1}).to_list()
        out.applied |= {d["_id"] for d in found}
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{namespace}.{name}.dead", ensure=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            if message.message_id in out.delivered:
                out.dead[message.message_id] = dict(message.headers or {})


@pytest.fixture
def fast_failures(monkeypatch: pytest.MonkeyPatch, service_env: dict[str, str]) -> None:
    # a crashing handler gives up after two quick retries; parked events expire in 2 s
    monkeypatch.setenv("LOTSE_RETRY_DELAYS_S", "[0.2, 0.2]")
    monkeypatch.setenv("LOTSE_PARKED_MAX_AGE_S", "2")


async def test_fuzz_amqp(fast_failures, smtp, rabbit_url, namespace) -> None:
    apps: dict[str, FastAPI] = {name: factory() for name, factory in SERVICES.items()}
    subscribed = {
        name: set(app.state.runtime.subscriptions.routing_keys) for name, app in apps.items()
    }
    keys = set().union(*subscribed.values())
    bases = [
        (e.ROUTING_KEY, json.loads(e.to_wire()))
        for e in one_of_each_event()
        if e.ROUTING_KEY in keys
    ]
    assert {k for k, _ in bases} == keys, "a consumed event has no sample"
    drawn = draw(messages(bases), MESSAGES)
    outcomes = {name: Outcome() for name in apps}
    sent: dict[str, Message] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    async with (
        running(apps["courses"], role=None) as clients["courses"],
        running(apps["placement"], role=None) as clients["placement"],
        running(apps["notifications"], role=None) as clients["notifications"],
    ):
        connection = await aio_pika.connect(rabbit_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(f"{namespace}.events", ensure=True)
            for msg in drawn:
                tag = str(uuid.uuid4())
                sent[tag] = msg
                await exchange.publish(
                    aio_pika.Message(
                        with_tag(msg, tag),
                        content_type=msg.content_type,
                        message_id=tag,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=msg.routing_key,
                    mandatory=True,
                )
                for name, keys_of in subscribed.items():
                    if msg.routing_key in keys_of:
                        outcomes[name].delivered.add(tag)

        async def settled() -> bool:
            for name, app in apps.items():
                await collect(app, rabbit_url, namespace, name, outcomes[name])
                parked = app.state.runtime.parking
                await parked.sweep()  # expired parked events go to the dead letters
            return not any(o.lost for o in outcomes.values())

        # what is still missing after the timeout is reported (and fails) below
        with contextlib.suppress(TimeoutError):
            await eventually(settled, timeout_s=SETTLE_S, every_s=0.5, what="fuzz settled")

        # the consumers still work: a valid event is applied by each service
        person = PersonRegistered.create(snapshot(), producer="intake")
        await publish(rabbit_url, namespace, person)
        for name, app in apps.items():
            await applied(app, person)
            assert (await clients[name].get("/healthz")).status_code == 200, name

    summary = summarize(drawn, outcomes, sent)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz-amqp.json").write_text(json.dumps(summary, indent=1))
    for name, out in outcomes.items():
        assert not out.lost, f"{name}: lost {sorted(out.lost)[:5]}"
        assert len(out.applied) + len(out.dead) == len(out.delivered), name
        assert all(str(h.get(HEADER_REASON, "")).strip() for h in out.dead.values()), name
        assert not out.crashed, f"{name}: handler crashed: {list(out.crashed.values())[:3]}"
        assert out.applied, f"{name}: not one fuzzed event was applied"
        assert out.dead, f"{name}: not one fuzzed event was dead-lettered"
    assert summary["server_errors"] == 0


def summarize(
    drawn: list[Message], outcomes: dict[str, Outcome], sent: dict[str, Message]
) -> dict[str, Any]:
    crashed = sum(len(o.crashed) for o in outcomes.values())
    lost = sum(len(o.lost) for o in outcomes.values())
    kinds = Counter(m.kind.split(":")[0] for m in drawn)
    return {
        "name": "amqp",
        "fuzz_cases": len(drawn),
        "server_errors": crashed + lost,
        "kinds": dict(sorted(kinds.items())),
        "services": {
            name: {
                "delivered": len(o.delivered),
                "applied": len(o.applied),
                "dead_lettered": len(o.dead),
                "lost": len(o.lost),
                "crashed": len(o.crashed),
                "lost_messages": [
                    f"{sent[t].routing_key} {sent[t].kind} {sent[t].body[:200]!r}"
                    for t in sorted(o.lost)[:10]
                ],
                "applied_and_dead": [
                    f"{sent[t].routing_key} {sent[t].kind}: {o.dead[t].get(HEADER_REASON)}"
                    for t in sorted(o.applied & set(o.dead))[:10]
                ],
                "crashes": [
                    f"{sent[t].routing_key} {sent[t].kind}: {h.get(HEADER_REASON)}"
                    for t, h in list(o.crashed.items())[:10]
                ],
                "dead_reasons": dict(
                    Counter(str(h.get(HEADER_ERROR_TYPE)) for h in o.dead.values()).most_common()
                ),
            }
            for name, o in outcomes.items()
        },
    }
