"""Where courses keeps courses, enrolments and the people it has heard of: the store
the use cases see (a port), and its MongoDB adapter. Every method takes the
transaction it runs in, reads included; a read outside one passes none."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from lotse_shared.contracts.intake import PersonSnapshotV1
from lotse_shared.persistence.documents import from_document, to_document
from lotse_shared.persistence.mongo import save_if_newer, session_of
from lotse_shared.persistence.unit import Transaction

from .domain.model import Course, Enrolment

Document = dict[str, Any]
# a person's district and the emails of their responsible contacts (lower case)
Scope = tuple[str, list[str]]


class CourseExists(Exception):
    """A course with this provider and provider's reference exists already."""


class Courses(Protocol):
    # people (read model fed by intake's events)
    async def remember_person(self, tx: Transaction, person: PersonSnapshotV1) -> bool:
        """Keep the newest revision; False if this one is not newer than what we hold.
        Kept: the district and the responsible contacts' emails (who may see the
        person's enrolments; caseworkers only their own cases)."""

    async def person_scope(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Scope | None:
        """The person's district and responsible contacts' emails, if known."""

    async def scopes_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, Scope]:
        """``person_scope`` for many people in one query; unknown ones are left out."""

    async def is_known(self, person_id: uuid.UUID, tx: Transaction | None = None) -> bool: ...

    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        """Erasure: the person and their enrolments (attendance, exam results inside);
        returns counts per collection (``known_people``, ``enrolments``)."""

    # courses
    async def add_course(self, tx: Transaction, course: Course) -> None:
        """Raises CourseExists if the provider's reference is taken."""

    async def get_course(
        self, course_id: uuid.UUID, tx: Transaction | None = None
    ) -> Course | None: ...

    async def course_by_ref(
        self, provider: str, course_ref: str, tx: Transaction | None = None
    ) -> Course | None: ...

    async def list_courses(
        self, limit: int, offset: int, district_id: str | None = None, tx: Transaction | None = None
    ) -> list[Course]:
        """Latest start first."""

    # enrolments
    async def add_enrolment(self, tx: Transaction, enrolment: Enrolment) -> None:
        """One per course and person: the store refuses a second (a unique index)."""

    async def save_enrolment(self, tx: Transaction, enrolment: Enrolment) -> None: ...

    async def get_enrolment(
        self, enrolment_id: uuid.UUID, tx: Transaction | None = None
    ) -> Enrolment | None: ...

    async def enrolment_of(
        self, course_id: uuid.UUID, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Enrolment | None: ...

    async def enrolments_of_person(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> list[Enrolment]:
        """Oldest enrolment first."""

    async def enrolments_of_people(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Enrolment]:
        """Every enrolment of these people, in one query; by person, then oldest first."""


class CoursesRepository(Courses):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.courses = db["courses"]
        self.enrolments = db["enrolments"]
        self.people = db["known_people"]

    async def ensure_indexes(self) -> None:
        await self.courses.create_indexes(
            [IndexModel([("provider", 1), ("course_ref", 1)], unique=True, name="provider_ref")]
        )
        await self.enrolments.create_indexes(
            [
                IndexModel(
                    [("course_id", 1), ("person_id", 1)], unique=True, name="one_per_course"
                ),
                IndexModel([("person_id", ASCENDING)], name="by_person"),
            ]
        )

    # people (read model fed by intake's events)
    async def remember_person(self, tx: Transaction, person: PersonSnapshotV1) -> bool:
        doc = {
            "_id": person.person_id,
            "district_id": person.district_id,
            "revision": person.revision,
            # who may see this person's enrolments (caseworkers: only their own cases)
            "contact_emails": sorted({c.email.lower() for c in person.contacts}),
        }
        return await save_if_newer(self.people, doc, session_of(tx))

    async def person_scope(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Scope | None:
        doc = await self.people.find_one({"_id": person_id}, session=session_of(tx))
        if doc is None:
            return None
        return doc["district_id"], list(doc.get("contact_emails", []))

    async def scopes_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, Scope]:
        cursor = self.people.find(
            {"_id": {"$in": person_ids}},
            {"district_id": 1, "contact_emails": 1},
            session=session_of(tx),
        )
        return {
            d["_id"]: (d["district_id"], list(d.get("contact_emails", []))) async for d in cursor
        }

    async def is_known(self, person_id: uuid.UUID, tx: Transaction | None = None) -> bool:
        found = await self.people.count_documents(
            {"_id": person_id}, limit=1, session=session_of(tx)
        )
        return found > 0

    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        session = session_of(tx)
        people = await self.people.delete_one({"_id": person_id}, session=session)
        enrolments = await self.enrolments.delete_many({"person_id": person_id}, session=session)
        return {"known_people": people.deleted_count, "enrolments": enrolments.deleted_count}

    # courses
    async def add_course(self, tx: Transaction, course: Course) -> None:
        try:
            await self.courses.insert_one(_course_doc(course), session=session_of(tx))
        except DuplicateKeyError as e:
            raise CourseExists(f"{course.provider}/{course.course_ref}") from e

    async def get_course(
        self, course_id: uuid.UUID, tx: Transaction | None = None
    ) -> Course | None:
        doc = await self.courses.find_one({"_id": course_id}, session=session_of(tx))
        return _course(doc) if doc else None

    async def course_by_ref(
        self, provider: str, course_ref: str, tx: Transaction | None = None
    ) -> Course | None:
        doc = await self.courses.find_one(
            {"provider": provider, "course_ref": course_ref}, session=session_of(tx)
        )
        return _course(doc) if doc else None

    async def list_courses(
        self, limit: int, offset: int, district_id: str | None = None, tx: Transaction | None = None
    ) -> list[Course]:
        query = {} if district_id is None else {"district_id": district_id}
        cursor = (
            self.courses.find(query, session=session_of(tx))
            .sort("starts_on", -1)
            .skip(offset)
            .limit(limit)
        )
        return [_course(d) async for d in cursor]

    # enrolments
    async def add_enrolment(self, tx: Transaction, enrolment: Enrolment) -> None:
        await self.enrolments.insert_one(_enrolment_doc(enrolment), session=session_of(tx))

    async def save_enrolment(self, tx: Transaction, enrolment: Enrolment) -> None:
        await self.enrolments.replace_one(
            {"_id": enrolment.enrolment_id}, _enrolment_doc(enrolment), session=session_of(tx)
        )

    async def get_enrolment(
        self, enrolment_id: uuid.UUID, tx: Transaction | None = None
    ) -> Enrolment | None:
        doc = await self.enrolments.find_one({"_id": enrolment_id}, session=session_of(tx))
        return _enrolment(doc) if doc else None

    async def enrolment_of(
        self, course_id: uuid.UUID, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Enrolment | None:
        doc = await self.enrolments.find_one(
            {"course_id": course_id, "person_id": person_id}, session=session_of(tx)
        )
        return _enrolment(doc) if doc else None

    async def enrolments_of_person(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> list[Enrolment]:
        cursor = self.enrolments.find({"person_id": person_id}, session=session_of(tx)).sort(
            "enrolled_at", 1
        )
        return [_enrolment(d) async for d in cursor]

    async def enrolments_of_people(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Enrolment]:
        # one query, on the by_person index
        cursor = self.enrolments.find(
            {"person_id": {"$in": person_ids}}, session=session_of(tx)
        ).sort([("person_id", 1), ("enrolled_at", 1), ("_id", 1)])
        return [_enrolment(d) async for d in cursor]


def _course_doc(course: Course) -> Document:
    return to_document(course, "course_id")


def _course(doc: Document) -> Course:
    return from_document(Course, doc, "course_id")


def _enrolment_doc(enrolment: Enrolment) -> Document:
    return to_document(enrolment, "enrolment_id", native=("course_id", "person_id", "enrolled_at"))


def _enrolment(doc: Document) -> Enrolment:
    return from_document(Enrolment, doc, "enrolment_id")
