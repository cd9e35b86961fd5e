"""Every event Lotse knows round-trips through JSON and keeps its contract."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from pydantic import ValidationError

from lotse_devstack.samples import COURSE_REF, TODAY, one_of_each_event
from lotse_shared.contracts import partner
from lotse_shared.contracts.catalogue import ALL_EVENTS, BY_ROUTING_KEY
from lotse_shared.contracts.envelope import Event

SAMPLES = one_of_each_event()


def test_there_is_a_sample_of_every_event() -> None:
    assert {type(e) for e in SAMPLES} == set(ALL_EVENTS)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.ROUTING_KEY)
def test_round_trip(event: Event) -> None:
    wire = event.to_wire()
    back = type(event).model_validate_json(wire)
    assert back == event
    envelope = json.loads(wire)
    assert set(envelope) == {
        "event_id",
        "event_type",
        "event_version",
        "occurred_at",
        "producer",
        "correlation_id",
        "causation_id",
        "payload",
    }
    assert envelope["event_type"] == event.event_type
    assert f"{event.event_type}.v{event.event_version}" == event.ROUTING_KEY


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.ROUTING_KEY)
def test_events_are_frozen(event: Event) -> None:
    with pytest.raises(ValidationError):
        event.producer = "someone else"  # type: ignore[misc]


def test_wrong_type_or_version_is_refused() -> None:
    sample = next(e for e in SAMPLES if isinstance(e, partner.CompletionReported))
    data = json.loads(sample.to_wire())
    for field, value in (("event_type", "partner.course.dropout_reported"), ("event_version", 2)):
        with pytest.raises(ValidationError) as err:
            partner.CompletionReported.model_validate({**data, field: value})
        assert err.value.errors()[0]["loc"] == (field,)


def test_caused_events_share_the_flow() -> None:
    cause = SAMPLES[0]
    effect = partner.OpeningWithdrawn.create(
        partner.OpeningWithdrawnV1(source_ref="R"), producer="x", cause=cause
    )
    assert effect.correlation_id == cause.correlation_id
    assert effect.causation_id == cause.event_id


def test_routing_keys_are_unique_and_well_formed() -> None:
    assert len(BY_ROUTING_KEY) == len(ALL_EVENTS)
    for key in BY_ROUTING_KEY:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+\.[a-z_]+\.v\d+", key), key


def test_partner_payload_names_an_unknown_field() -> None:
    with pytest.raises(ValidationError) as err:
        partner.CompletionReportedV1.model_validate(
            {
                "person_id": str(uuid.uuid4()),
                "course": COURSE_REF.model_dump(),
                "completed_on": TODAY.isoformat(),
                "levle_reached": "B1",
            }
        )
    assert err.value.errors()[0]["loc"] == ("levle_reached",)
    assert err.value.errors()[0]["type"] == "extra_forbidden"


def test_internal_payloads_ignore_fields_added_later() -> None:
    sample = SAMPLES[5]  # course completed
    data = json.loads(sample.to_wire())
    data["payload"]["a_field_from_the_future"] = 1
    assert type(sample).model_validate(data) == sample


def test_opening_location_needs_a_place() -> None:
    with pytest.raises(ValidationError, match="give a municipality or both lat and lon"):
        partner.OpeningLocation(postcode="34117")
    with pytest.raises(ValidationError, match="lat and lon go together"):
        partner.OpeningLocation(municipality="Kassel", lat=51.3)


@pytest.mark.parametrize(
    "event",
    [e for e in SAMPLES if not e.ROUTING_KEY.startswith("partner.")],
    ids=lambda e: e.ROUTING_KEY,
)
def test_every_internal_event_names_the_district(event: Event) -> None:
    # consumers scope their read models by it (#6); a partner's report is placed in the
    # person's district by the service that receives it. An import's totals belong to
    # the partner that sent the feed; each opening it created names its district.
    payload = event.model_dump(mode="json")["payload"]
    if event.ROUTING_KEY != "placement.import.completed.v1":
        assert payload.get("district_id"), event.ROUTING_KEY
