"""Where courses keeps courses, enrolments and the people it has heard of."""

from __future__ import annotations

import uuid
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from lotse_shared.contracts.intake import PersonSnapshotV1
from lotse_shared.persistence.documents import from_document, to_document
from lotse_shared.persistence.mongo import Transaction, save_if_newer

from .domain.model import Course, Enrolment

Document = dict[str, Any]


class CoursesRepository:
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
        """Keep the newest revision; False if this one is older than what we hold."""
        doc = {
            "_id": person.person_id,
            "district_id": person.district_id,
            "revision": person.revision,
            # who may see this person's enrolments (caseworkers: only their own cases)
            "contact_emails": sorted({c.email.lower() for c in person.contacts}),
        }
        return await save_if_newer(self.people, doc, tx.session)

    async def person_scope(self, person_id: uuid.UUID) -> tuple[str, list[str]] | None:
        """The person's district and responsible contacts' emails, if known."""
        doc = await self.people.find_one({"_id": person_id})
        if doc is None:
            return None
        return doc["district_id"], list(doc.get("contact_emails", []))

    async def scopes_of(
        self, person_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[str, list[str]]]:
        """``person_scope`` for many people in one query; unknown ones are left out."""
        cursor = self.people.find(
            {"_id": {"$in": person_ids}}, {"district_id": 1, "contact_emails": 1}
        )
        return {
            d["_id"]: (d["district_id"], list(d.get("contact_emails", []))) async for d in cursor
        }

    async def is_known(
        self, person_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> bool:
        return await self.people.count_documents({"_id": person_id}, limit=1, session=session) > 0

    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        """Erasure: the person and their enrolments (attendance, exam results inside)."""
        people = await self.people.delete_one({"_id": person_id}, session=tx.session)
        enrolments = await self.enrolments.delete_many({"person_id": person_id}, session=tx.session)
        return {"known_people": people.deleted_count, "enrolments": enrolments.deleted_count}

    # courses
    async def add_course(self, tx: Transaction, course: Course) -> None:
        await self.courses.insert_one(_course_doc(course), session=tx.session)

    async def get_course(
        self, course_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> Course | None:
        doc = await self.courses.find_one({"_id": course_id}, session=session)
        return _course(doc) if doc else None

    async def course_by_ref(
        self, provider: str, course_ref: str, session: AsyncClientSession | None = None
    ) -> Course | None:
        doc = await self.courses.find_one(
            {"provider": provider, "course_ref": course_ref}, session=session
        )
        return _course(doc) if doc else None

    async def list_courses(
        self, limit: int, offset: int, district_id: str | None = None
    ) -> list[Course]:
        query = {} if district_id is None else {"district_id": district_id}
        cursor = self.courses.find(query).sort("starts_on", -1).skip(offset).limit(limit)
        return [_course(d) async for d in cursor]

    # enrolments
    async def add_enrolment(self, tx: Transaction, enrolment: Enrolment) -> None:
        await self.enrolments.insert_one(_enrolment_doc(enrolment), session=tx.session)

    async def save_enrolment(self, tx: Transaction, enrolment: Enrolment) -> None:
        await self.enrolments.replace_one(
            {"_id": enrolment.enrolment_id}, _enrolment_doc(enrolment), session=tx.session
        )

    async def get_enrolment(
        self, enrolment_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> Enrolment | None:
        doc = await self.enrolments.find_one({"_id": enrolment_id}, session=session)
        return _enrolment(doc) if doc else None

    async def enrolment_of(
        self, course_id: uuid.UUID, person_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> Enrolment | None:
        doc = await self.enrolments.find_one(
            {"course_id": course_id, "person_id": person_id}, session=session
        )
        return _enrolment(doc) if doc else None

    async def enrolments_of_person(self, person_id: uuid.UUID) -> list[Enrolment]:
        cursor = self.enrolments.find({"person_id": person_id}).sort("enrolled_at", 1)
        return [_enrolment(d) async for d in cursor]

    async def enrolments_of_people(self, person_ids: list[uuid.UUID]) -> list[Enrolment]:
        """Every enrolment of these people, in one query (by_person index)."""
        cursor = self.enrolments.find({"person_id": {"$in": person_ids}}).sort(
            [("person_id", 1), ("enrolled_at", 1), ("_id", 1)]
        )
        return [_enrolment(d) async for d in cursor]


def _course_doc(course: Course) -> Document:
    return to_document(course, "course_id")


def _course(doc: Document) -> Course:
    return from_document(Course, doc, "course_id")


def _enrolment_doc(enrolment: Enrolment) -> Document:
    return to_document(enrolment, "enrolment_id", native=("course_id", "person_id", "enrolled_at"))


def _enrolment(doc: Document) -> Enrolment:
    return from_document(Enrolment, doc, "enrolment_id")
