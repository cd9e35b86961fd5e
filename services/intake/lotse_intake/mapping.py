"""What intake tells other services, built from its own model: the contracts' side of
a person. No phone, no address, no other languages leave intake."""

from __future__ import annotations

from lotse_shared.contracts.intake import PersonErased, PersonErasedV1, PersonSnapshotV1

from .domain.model import Erasure, Person

PRODUCER = "intake"


def snapshot(person: Person) -> PersonSnapshotV1:
    """The facts other services need: no phone, no address, no other languages."""
    return PersonSnapshotV1(
        person_id=person.person_id,
        district_id=person.district_id,
        revision=person.revision,
        display_name=person.display_name,
        birth_year=person.birth_year,
        municipality=person.municipality,
        german_level=person.german_level,
        residence_status=person.residence_status,
        work_permission=person.work_permission,
        driving_licence=person.driving_licence,
        max_commute_km=person.max_commute_km,
        sectors_of_interest=person.sectors_of_interest,
        experience_occupations=[w.occupation_code for w in person.work_experience],
        education_level=person.education.level,
        available_from=person.available_from,
        consent=person.consent,
        contacts=person.contacts,
    )


def erased_event(erasure: Erasure) -> PersonErased:
    return PersonErased.create(
        PersonErasedV1(
            person_id=erasure.person_id,
            district_id=erasure.district_id,
            erasure_id=erasure.erasure_id,
            erased_at=erasure.erased_at,
        ),
        producer=PRODUCER,
    )
