"""Placement's "matching still owed" marker: typed, stored as before, and the cause it
hands to the suggestions it yields."""

from __future__ import annotations

import uuid

from lotse_devstack.samples import snapshot
from lotse_placement.domain.model import MatchPending
from lotse_placement.repository import _pending, _pending_doc
from lotse_shared.contracts import placement as ev
from lotse_shared.contracts.intake import PersonRegistered


def no_suggestions() -> ev.SuggestionsReadyV1:
    # no openings: only the envelope matters here
    return ev.SuggestionsReadyV1.model_construct(
        suggestion_set_id=uuid.uuid4(),
        person_id=uuid.uuid4(),
        district_id="kassel",
        trigger="person_registered",
        german_level=None,
        suggestions=[],
    )


def test_the_marker_carries_its_cause_into_the_suggestions_event() -> None:
    cause = PersonRegistered.create(snapshot(), producer="intake")
    marker = MatchPending.because("person_registered", cause)
    assert marker.cause is not None
    event = ev.SuggestionsReady.create(no_suggestions(), producer="placement", cause=marker.cause)
    assert event.causation_id == cause.event_id
    assert event.correlation_id == cause.correlation_id


def test_without_a_cause_the_suggestions_start_a_flow_of_their_own() -> None:
    marker = MatchPending.because("opening_published", None)
    assert marker.cause is None
    event = ev.SuggestionsReady.create(no_suggestions(), producer="placement", cause=marker.cause)
    assert event.causation_id is None


def test_it_is_stored_with_string_ids_and_read_back_equal() -> None:
    cause = PersonRegistered.create(snapshot(), producer="intake")
    marker = MatchPending.because("person_registered", cause)
    stored = _pending_doc(marker)
    assert stored["event_id"] == str(cause.event_id)  # as markers have always been stored
    assert stored["at"] is marker.at  # the clear compares it as read back
    assert _pending({"match_pending": stored}) == marker
    assert _pending({}) is None
