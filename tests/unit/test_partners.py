"""The partner command's pure parts: routing-key regexes, definitions, API keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lotse_shared.auth import Role
from lotse_shared.auth.apikeys import KeyFile
from lotse_shared.messaging.deadletter import (
    HEADER_ROUTING_KEY,
    HEADER_VERIFIED_PRODUCER,
    ProducerNotVouched,
    check_partner_producer,
)
from lotse_shared.ops.partners import (
    Partner,
    PartnerConfigError,
    exchange_regex,
    load_definitions,
    routing_key_regex,
)


def allows(patterns: list[str], key: str) -> bool:
    return re.match(routing_key_regex(patterns), key) is not None


def test_a_prefix_pattern_allows_its_kind_and_nothing_else() -> None:
    school = ["partner.course.*"]
    assert allows(school, "partner.course.completion_reported.v1")
    assert allows(school, "partner.course.enrolment_reported.v2")
    assert not allows(school, "partner.opening.reported.v1")
    assert not allows(school, "partner.course")  # a kind is no event
    assert not allows(school, "partner.coursework.x.v1")  # prefix ends at the dot
    assert not allows(school, "courses.course.completed.v1")
    assert not allows(school, "xpartner.course.completion_reported.v1")
    assert not allows(school, "partner.course.completion_reported.v1\nmore")


def test_an_exact_key_and_several_patterns() -> None:
    patterns = ["partner.opening.reported.v1", "partner.opening.withdrawn.v1"]
    regex = routing_key_regex(patterns)
    assert regex == r"^(partner\.opening\.reported\.v1|partner\.opening\.withdrawn\.v1)$"
    assert allows(patterns, "partner.opening.withdrawn.v1")
    assert not allows(patterns, "partner.opening.feed_reported.v1")
    assert not allows(patterns, "partner.opening.reportedXv1")  # dots are literal


@pytest.mark.parametrize(
    ("patterns", "named"),
    [
        ([], "at least one"),
        (["courses.course.*"], "not under 'partner.'"),
        (["#"], "not under 'partner.'"),
        (["partner.*"], "too wide"),
        (["partner.course.#"], "'#' is not a routing-key word"),
        (["partner.*.reported.v1"], "'*' is not a routing-key word"),
        (["partner.course.(a|b)"], "not a routing-key word"),
    ],
)
def test_bad_patterns_are_refused_naming_why(patterns: list[str], named: str) -> None:
    with pytest.raises(PartnerConfigError, match=re.escape(named)):
        routing_key_regex(patterns)


def test_exchange_regex_is_exact() -> None:
    regex = exchange_regex(["lotse.events"])
    assert regex == r"^(lotse\.events)$"
    assert re.match(regex, "lotse.events")
    assert not re.match(regex, "lotseXevents")
    assert not re.match(regex, "lotse.events.x")


def test_partner_ids_are_broker_user_names() -> None:
    with pytest.raises(PartnerConfigError, match="id: 'VHS Kassel'"):
        Partner(id="VHS Kassel", district="kassel", publishes=("partner.course.*",))
    with pytest.raises(PartnerConfigError, match="district: missing"):
        Partner(id="vhs-kassel", district="", publishes=("partner.course.*",))


def test_the_repository_definitions_load(tmp_path: Path) -> None:
    shipped = load_definitions(Path(__file__).resolve().parents[2] / "deploy" / "partners.json")
    by_id = {p.id: p for p in shipped}
    assert by_id["vhs-region-kassel"].publishes == ("partner.course.*",)
    assert by_id["ba-jobsuche"].write_regex == r"^(partner\.opening\.[a-z0-9_.]+)$"
    broken = tmp_path / "partners.json"
    broken.write_text(json.dumps({"partners": [{"id": "ihk-kassel", "district": "kassel"}]}))
    with pytest.raises(PartnerConfigError, match=r"partners\[0\]\.publishes: missing"):
        load_definitions(broken)
    twice = {"id": "ihk-kassel", "district": "kassel", "publishes": ["partner.opening.*"]}
    broken.write_text(json.dumps({"partners": [twice, twice]}))
    with pytest.raises(PartnerConfigError, match="listed twice"):
        load_definitions(broken)


def test_api_keys_hashed_looked_up_and_revoked(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    record, key = keys.create("ihk-kassel", "kassel")
    _, other = keys.create("hwk-kassel", "kassel")
    assert key.startswith(f"lotse_{record.key_id}_")
    assert key not in (tmp_path / "keys.json").read_text()
    assert oct((tmp_path / "keys.json").stat().st_mode & 0o777) == "0o600"
    reader = KeyFile(tmp_path / "keys.json")  # another process, say a service
    principal = reader.principal(key)
    assert principal is not None
    assert principal.partner_id == "ihk-kassel"
    assert principal.district_id == "kassel"
    assert principal.roles == frozenset({Role.PARTNER})
    assert reader.principal(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert reader.principal(other.replace(other.split("_")[1], record.key_id)) is None
    assert reader.principal("") is None
    assert [k.key_id for k in keys.revoke(record.key_id)] == [record.key_id]
    assert reader.principal(key) is None  # seen without a restart
    assert reader.principal(other) is not None
    assert keys.revoke("hwk-kassel")[0].partner_id == "hwk-kassel"
    assert reader.principal(other) is None
    assert keys.revoke("hwk-kassel") == []


def delivery(
    body: bytes,
    *,
    exchange: str = "lotse.events",
    routing_key: str = "partner.course.completion_reported.v1",
    user_id: str | None = None,
    headers: dict[str, Any] | None = None,
) -> Any:
    raw = SimpleNamespace(exchange=exchange, routing_key=routing_key, user_id=user_id)
    return SimpleNamespace(raw_message=raw, headers=headers or {}, body=body)


def test_the_producer_check_believes_the_broker_on_partner_deliveries() -> None:
    body = json.dumps({"producer": "vhs-region-kassel"}).encode()
    key = "partner.course.completion_reported.v1"
    ok = delivery(body, user_id="vhs-region-kassel")
    assert check_partner_producer(ok, "lotse.events") == (key, "vhs-region-kassel")
    with pytest.raises(ProducerNotVouched, match="user_id 'ba-jobsuche' does not match"):
        check_partner_producer(delivery(body, user_id="ba-jobsuche"), "lotse.events")
    # headers a partner set are not believed, nor its claim of another routing key
    spoofed = delivery(
        body,
        headers={HEADER_VERIFIED_PRODUCER: "vhs-region-kassel", HEADER_ROUTING_KEY: "intake.x"},
    )
    with pytest.raises(ProducerNotVouched, match="user_id missing"):
        check_partner_producer(spoofed, "lotse.events")
    # a service's own copy (retry return) carries what the service verified
    retried = delivery(
        body,
        exchange="lotse.retry-return",
        routing_key=f"courses.1.{key}",
        headers={HEADER_VERIFIED_PRODUCER: "vhs-region-kassel", HEADER_ROUTING_KEY: key},
    )
    assert check_partner_producer(retried, "lotse.events") == (key, "vhs-region-kassel")
    laundered = delivery(body, exchange="lotse.retry-return", headers={HEADER_ROUTING_KEY: key})
    with pytest.raises(ProducerNotVouched, match=f"{HEADER_VERIFIED_PRODUCER} missing"):
        check_partner_producer(laundered, "lotse.events")


def test_the_producer_check_leaves_other_events_and_bad_bodies_to_validation() -> None:
    internal = delivery(b'{"producer": "courses"}', routing_key="courses.course.completed.v1")
    assert check_partner_producer(internal, "lotse.events") == (
        "courses.course.completed.v1",
        None,
    )
    for body in (b"not json", b"[" * 100_000, b'{"producer": 7}', b"[]"):
        assert check_partner_producer(delivery(body), "lotse.events")[1] is None
