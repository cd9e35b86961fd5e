"""intake's store in memory, behaving as ``PeopleRepository`` does on MongoDB."""

from __future__ import annotations

import uuid

from lotse_intake.domain.model import Erasure, Person
from lotse_intake.repository import AlreadyRegistered, People
from lotse_shared.persistence.unit import Transaction

from .unit_of_work import InMemoryUnitOfWork, MemoryStore


class InMemoryPeople(MemoryStore, People):
    people: dict[uuid.UUID, Person]
    erasures: dict[uuid.UUID, Erasure]

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        super().__init__(uow)
        self.people = {}
        self.erasures = {}

    async def add(self, tx: Transaction, person: Person) -> None:
        if person.person_id in self.people:
            raise AlreadyRegistered(str(person.person_id))
        self.people[person.person_id] = person.model_copy(deep=True)

    async def replace(self, tx: Transaction, person: Person, *, expected_revision: int) -> bool:
        current = self.people.get(person.person_id)
        if current is None or current.revision != expected_revision:
            return False
        self.people[person.person_id] = person.model_copy(deep=True)
        return True

    async def erase(self, tx: Transaction, erasure: Erasure) -> bool:
        if self.people.pop(erasure.person_id, None) is None:
            return False
        self.erasures[erasure.person_id] = erasure
        return True

    async def erasure_of(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Erasure | None:
        return self.erasures.get(person_id)

    async def get(self, person_id: uuid.UUID, tx: Transaction | None = None) -> Person | None:
        found = self.people.get(person_id)
        return found.model_copy(deep=True) if found else None

    async def list(
        self,
        *,
        district_id: str | None,
        municipality: str | None,
        contact_email: str | None,
        name_contains: str | None = None,
        limit: int,
        offset: int,
    ) -> list[Person]:
        part = (name_contains or "").lower()
        found = [
            p
            for p in self.people.values()
            if (not district_id or p.district_id == district_id)
            and (not municipality or p.municipality == municipality)
            and (not contact_email or contact_email in {c.email for c in p.contacts})
            and (not part or part in p.given_name.lower() or part in p.family_name.lower())
        ]
        found.sort(key=lambda p: (p.family_name, p.given_name, str(p.person_id)))
        return found[offset : offset + limit]
