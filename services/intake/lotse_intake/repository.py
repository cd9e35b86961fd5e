"""Where intake keeps people: the store the use cases see (a port), and its MongoDB
adapter. Every method takes the transaction it runs in, reads included; a read
outside one (an HTTP view) passes none."""

from __future__ import annotations

import re
import uuid
from typing import Any, Protocol

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from lotse_shared.persistence.documents import from_document, to_document
from lotse_shared.persistence.mongo import ERASURES, session_of
from lotse_shared.persistence.unit import Transaction

from .domain.model import Erasure, Person

Document = dict[str, Any]


class AlreadyRegistered(Exception):
    """A person with this id exists: the same registration arrived twice."""


class People(Protocol):
    async def add(self, tx: Transaction, person: Person) -> None:
        """Raises AlreadyRegistered if a person with this id exists."""

    async def replace(self, tx: Transaction, person: Person, *, expected_revision: int) -> bool:
        """Replace if nobody changed it meanwhile (optimistic concurrency)."""

    async def erase(self, tx: Transaction, erasure: Erasure) -> bool:
        """Delete the person and keep the erasure record in their place; False if the
        person was gone meanwhile."""

    async def erasure_of(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Erasure | None: ...

    async def get(self, person_id: uuid.UUID, tx: Transaction | None = None) -> Person | None: ...

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
        """Sorted by family name, given name, id; ``name_contains`` is a literal,
        case-insensitive part of either name."""


class PeopleRepository(People):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.people = db["people"]
        self.erasures = db[ERASURES]

    async def ensure_indexes(self) -> None:
        await self.people.create_indexes(
            [
                IndexModel([("district_id", ASCENDING), ("municipality", ASCENDING)]),
                IndexModel([("contacts.email", ASCENDING)], name="by_contact_email"),
                IndexModel([("family_name", ASCENDING), ("given_name", ASCENDING)]),
            ]
        )

    async def add(self, tx: Transaction, person: Person) -> None:
        try:
            await self.people.insert_one(_to_doc(person), session=session_of(tx))
        except DuplicateKeyError as e:
            raise AlreadyRegistered(str(person.person_id)) from e

    async def replace(self, tx: Transaction, person: Person, *, expected_revision: int) -> bool:
        result = await self.people.replace_one(
            {"_id": person.person_id, "revision": expected_revision},
            _to_doc(person),
            session=session_of(tx),
        )
        return result.modified_count == 1

    async def erase(self, tx: Transaction, erasure: Erasure) -> bool:
        result = await self.people.delete_one({"_id": erasure.person_id}, session=session_of(tx))
        if result.deleted_count != 1:
            return False
        doc = to_document(erasure, "person_id", native=("erasure_id", "erased_at"))
        await self.erasures.insert_one(doc, session=session_of(tx))
        return True

    async def erasure_of(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Erasure | None:
        doc = await self.erasures.find_one({"_id": person_id}, session=session_of(tx))
        if doc is None:
            return None
        return from_document(Erasure, doc, "person_id")

    async def get(self, person_id: uuid.UUID, tx: Transaction | None = None) -> Person | None:
        doc = await self.people.find_one({"_id": person_id}, session=session_of(tx))
        return _from_doc(doc) if doc else None

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
        query: Document = {}
        if district_id:
            query["district_id"] = district_id
        if municipality:
            query["municipality"] = municipality
        if contact_email:
            query["contacts.email"] = contact_email
        if name_contains:
            # a literal substring, never a pattern the caller writes
            pattern = {"$regex": re.escape(name_contains), "$options": "i"}
            query["$or"] = [{"given_name": pattern}, {"family_name": pattern}]
        cursor = (
            self.people.find(query)
            .sort([("family_name", 1), ("given_name", 1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        return [_from_doc(d) async for d in cursor]


def _to_doc(person: Person) -> Document:
    return to_document(person, "person_id", native=("created_at", "updated_at"))


def _from_doc(doc: Document) -> Person:
    return from_document(Person, doc, "person_id")
