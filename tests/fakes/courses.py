"""courses' store in memory, behaving as ``CoursesRepository`` does on MongoDB."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pymongo.errors import DuplicateKeyError

from lotse_courses.domain.model import Course, Enrolment
from lotse_courses.repository import CourseExists, Courses, Scope
from lotse_shared.contracts.intake import PersonSnapshotV1
from lotse_shared.persistence.unit import Transaction

from .unit_of_work import InMemoryUnitOfWork, MemoryStore


@dataclass
class KnownPerson:
    district_id: str
    revision: int
    contact_emails: list[str]


class InMemoryCourses(MemoryStore, Courses):
    people: dict[uuid.UUID, KnownPerson]
    courses: dict[uuid.UUID, Course]  # in insertion order, as MongoDB returns ties
    enrolments: dict[uuid.UUID, Enrolment]

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        super().__init__(uow)
        self.people = {}
        self.courses = {}
        self.enrolments = {}

    async def remember_person(self, tx: Transaction, person: PersonSnapshotV1) -> bool:
        held = self.people.get(person.person_id)
        if held is not None and held.revision >= person.revision:
            return False
        self.people[person.person_id] = KnownPerson(
            person.district_id, person.revision, sorted({c.email.lower() for c in person.contacts})
        )
        return True

    async def person_scope(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Scope | None:
        held = self.people.get(person_id)
        return (held.district_id, list(held.contact_emails)) if held else None

    async def scopes_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, Scope]:
        return {
            pid: (p.district_id, list(p.contact_emails))
            for pid, p in self.people.items()
            if pid in person_ids
        }

    async def is_known(self, person_id: uuid.UUID, tx: Transaction | None = None) -> bool:
        return person_id in self.people

    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        people = int(self.people.pop(person_id, None) is not None)
        theirs = [e for e in self.enrolments.values() if e.person_id == person_id]
        for e in theirs:
            del self.enrolments[e.enrolment_id]
        return {"known_people": people, "enrolments": len(theirs)}

    async def add_course(self, tx: Transaction, course: Course) -> None:
        if await self.course_by_ref(course.provider, course.course_ref) is not None:
            raise CourseExists(f"{course.provider}/{course.course_ref}")
        self.courses[course.course_id] = course.model_copy(deep=True)

    async def get_course(
        self, course_id: uuid.UUID, tx: Transaction | None = None
    ) -> Course | None:
        found = self.courses.get(course_id)
        return found.model_copy(deep=True) if found else None

    async def course_by_ref(
        self, provider: str, course_ref: str, tx: Transaction | None = None
    ) -> Course | None:
        for c in self.courses.values():
            if (c.provider, c.course_ref) == (provider, course_ref):
                return c.model_copy(deep=True)
        return None

    async def list_courses(
        self, limit: int, offset: int, district_id: str | None = None, tx: Transaction | None = None
    ) -> list[Course]:
        found = [c for c in self.courses.values() if district_id in (None, c.district_id)]
        found.sort(key=lambda c: c.starts_on, reverse=True)
        return [c.model_copy(deep=True) for c in found[offset : offset + limit]]

    async def add_enrolment(self, tx: Transaction, enrolment: Enrolment) -> None:
        if await self.enrolment_of(enrolment.course_id, enrolment.person_id) is not None:
            raise DuplicateKeyError("one_per_course")  # the unique index; nobody translates it
        self.enrolments[enrolment.enrolment_id] = enrolment.model_copy(deep=True)

    async def save_enrolment(self, tx: Transaction, enrolment: Enrolment) -> None:
        if enrolment.enrolment_id in self.enrolments:
            self.enrolments[enrolment.enrolment_id] = enrolment.model_copy(deep=True)

    async def get_enrolment(
        self, enrolment_id: uuid.UUID, tx: Transaction | None = None
    ) -> Enrolment | None:
        found = self.enrolments.get(enrolment_id)
        return found.model_copy(deep=True) if found else None

    async def enrolment_of(
        self, course_id: uuid.UUID, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Enrolment | None:
        for e in self.enrolments.values():
            if (e.course_id, e.person_id) == (course_id, person_id):
                return e.model_copy(deep=True)
        return None

    async def enrolments_of_person(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> list[Enrolment]:
        found = [e for e in self.enrolments.values() if e.person_id == person_id]
        found.sort(key=lambda e: e.enrolled_at)
        return [e.model_copy(deep=True) for e in found]

    async def enrolments_of_people(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Enrolment]:
        found = [e for e in self.enrolments.values() if e.person_id in person_ids]
        found.sort(key=lambda e: (e.person_id, e.enrolled_at, e.enrolment_id))
        return [e.model_copy(deep=True) for e in found]
