"""Rules intake enforces when a person is registered or changed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lotse_devstack.samples import person_body
from lotse_intake.domain.model import Person, PersonDetails
from lotse_intake.mapping import snapshot


def test_valid_person_and_canonical_municipality() -> None:
    details = PersonDetails.model_validate(person_body(municipality="  vellmar "))
    assert details.municipality == "Vellmar"


def test_unknown_municipality_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        PersonDetails.model_validate(person_body(municipality="Atlantis"))
    assert err.value.errors()[0]["loc"] == ("municipality",)


def test_a_caseworker_is_required() -> None:
    body = person_body(contacts=[{"role": "mentor", "name": "M", "email": "m@paten.example"}])
    with pytest.raises(ValidationError, match="role caseworker"):
        PersonDetails.model_validate(body)


def test_permission_must_fit_the_residence_title() -> None:
    with pytest.raises(ValidationError, match="needs_approval does not fit"):
        PersonDetails.model_validate(person_body(work_permission="needs_approval"))
    ok = PersonDetails.model_validate(
        person_body(residence_status="duldung", work_permission="needs_approval")
    )
    assert ok.work_permission == "needs_approval"


def test_revision_grows_and_snapshot_leaves_out_contact_details() -> None:
    person = Person(
        **PersonDetails.model_validate(
            person_body(contact={"phone": "+49 561 1234", "email": "amal@example.org"})
        ).model_dump()
    )
    later = person.revised(PersonDetails.model_validate(person_body(german_level="B1")))
    assert (later.revision, later.person_id) == (2, person.person_id)
    wire = snapshot(later).model_dump_json()
    assert "+49 561 1234" not in wire
    assert "amal@example.org" not in wire
    assert snapshot(later).german_level == "B1"
