"""intake's use cases. Each writes its change and the event it causes in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lotse_shared.contracts.intake import PersonRegistered, PersonSnapshotV1, PersonUpdated
from lotse_shared.errors import Conflict, NotFound
from lotse_shared.persistence.mongo import UnitOfWork

from .domain.model import Person, PersonDetails
from .repository import PeopleRepository

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


@dataclass
class IntakeHandlers:
    uow: UnitOfWork
    people: PeopleRepository

    async def register(self, details: PersonDetails) -> Person:
        person = Person(**details.model_dump())
        async with self.uow.transaction() as tx:
            await self.people.add(tx, person)
            tx.publish(PersonRegistered.create(snapshot(person), producer=PRODUCER))
        return person

    async def get(self, person_id: uuid.UUID) -> Person:
        person = await self.people.get(person_id)
        if person is None:
            raise NotFound(f"person {person_id} not found")
        return person

    async def replace(
        self, person_id: uuid.UUID, details: PersonDetails, *, if_revision: int | None = None
    ) -> Person:
        current = await self.get(person_id)
        if if_revision is not None and if_revision != current.revision:
            raise Conflict(
                f"person {person_id} is at revision {current.revision}, not {if_revision}"
            )
        updated = current.revised(details)
        async with self.uow.transaction() as tx:
            if not await self.people.replace(tx, updated, expected_revision=current.revision):
                raise Conflict(f"person {person_id} was changed meanwhile; reload and retry")
            tx.publish(PersonUpdated.create(snapshot(updated), producer=PRODUCER))
        return updated

    async def patch(self, person_id: uuid.UUID, changes: dict[str, object]) -> Person:
        current = await self.get(person_id)
        merged = {**current.model_dump(include=set(PersonDetails.model_fields)), **changes}
        return await self.replace(
            person_id, PersonDetails.model_validate(merged), if_revision=current.revision
        )
