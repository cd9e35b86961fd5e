"""courses' use cases. HTTP requests and partner events end in the same functions;
each writes its change and the events it causes in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from lotse_shared.auth import Principal
from lotse_shared.contracts import courses as ev
from lotse_shared.contracts import partner
from lotse_shared.contracts.common import CefrLevel
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import PersonErased, PersonRegistered, PersonUpdated
from lotse_shared.erasure import apply_erasure
from lotse_shared.errors import (
    Conflict,
    NotFound,
    NotYetApplicable,
    PersonNotYetKnown,
    RuleViolation,
)
from lotse_shared.persistence.unit import Transaction, UnitOfWork, WaitingEvents

from .access import CoursesAccess, may_see_course
from .domain.model import (
    Course,
    CourseDetails,
    Enrolment,
    ExamKind,
    ExamResultValue,
    assess_exam,
)
from .mapping import PRODUCER, enrolment_facts
from .repository import CourseExists, Courses


@dataclass
class CoursesHandlers:
    uow: UnitOfWork
    repo: Courses
    parking: WaitingEvents
    access: CoursesAccess = field(init=False)

    def __post_init__(self) -> None:
        self.access = CoursesAccess(self.repo)

    # --- people (read model) -------------------------------------------------
    async def person_changed(self, event: PersonRegistered | PersonUpdated) -> None:
        async with self.uow.transaction(applying=event) as tx:
            await self.repo.remember_person(tx, event.payload)
        await self.parking.replay_for([str(event.payload.person_id)])

    async def person_erased(self, event: PersonErased) -> None:
        await apply_erasure(self.uow, event, self.repo.erase_person, PRODUCER)

    # --- courses ---------------------------------------------------------------
    async def create_course(self, details: CourseDetails) -> Course:
        course = Course(**details.model_dump())
        try:
            async with self.uow.transaction() as tx:
                await self.repo.add_course(tx, course)
        except CourseExists:
            raise Conflict(
                f"course {details.provider}/{details.course_ref} exists already"
            ) from None
        return course

    async def get_course(self, course_id: uuid.UUID, viewer: Principal | None = None) -> Course:
        course = await self.repo.get_course(course_id)
        if course is None or not may_see_course(viewer, course):
            raise NotFound(f"course {course_id} not found")
        return course

    async def list_courses(self, viewer: Principal, limit: int, offset: int) -> list[Course]:
        if viewer.district_id is None:
            return []
        return await self.repo.list_courses(limit, offset, viewer.district_id)

    async def enrolments_of(self, person_id: uuid.UUID, viewer: Principal) -> list[Enrolment]:
        if not await self.access.may_see_person(person_id, viewer):
            raise NotFound(f"person {person_id} not found")
        return await self.repo.enrolments_of_person(person_id)

    async def enrolments_of_many(
        self, person_ids: list[uuid.UUID], viewer: Principal
    ) -> list[Enrolment]:
        """The enrolments of those of ``person_ids`` the viewer may see, in two queries
        whatever their number; the others are left out without a word (a caseload page
        must not tell which ids exist elsewhere)."""
        visible = await self.access.visible_people(person_ids, viewer)
        if not visible:
            return []
        return await self.repo.enrolments_of_people(visible)

    async def enrol_as(
        self, viewer: Principal, course_id: uuid.UUID, person_id: uuid.UUID
    ) -> Enrolment:
        """An enrolment entered by a caseworker: their person, a course of their district.
        Another district's person answers 404 like an unknown one, as everywhere."""
        if not await self.access.may_see_person(person_id, viewer):
            raise NotFound(f"person {person_id} not found")
        await self.get_course(course_id, viewer)
        return await self.enrol(course_id, person_id)

    # --- enrolments ------------------------------------------------------------
    async def enrol(
        self, course_id: uuid.UUID, person_id: uuid.UUID, *, cause: Event | None = None
    ) -> Enrolment:
        async with self.uow.transaction(applying=cause) as tx:
            course = await self.repo.get_course(course_id, tx)
            if course is None:
                raise RuleViolation("course_id", f"no course {course_id}")
            if not await self.repo.is_known(person_id, tx):
                if cause is not None:
                    raise PersonNotYetKnown(str(person_id))
                raise RuleViolation("person_id", f"no person {person_id} is registered")
            existing = await self.repo.enrolment_of(course_id, person_id, tx)
            if existing is not None:
                if cause is not None:  # a partner reporting the same enrolment again
                    return existing
                raise Conflict(f"person {person_id} is already enrolled in course {course_id}")
            enrolment = Enrolment(
                course_id=course.course_id,
                person_id=person_id,
                district_id=course.district_id,
                course_type=course.course_type,
                target_level=course.target_level,
            )
            await self.repo.add_enrolment(tx, enrolment)
            tx.publish(
                ev.Enrolled.create(
                    ev.EnrolledV1(
                        **enrolment_facts(enrolment),
                        starts_on=course.starts_on,
                        ends_on=course.ends_on,
                    ),
                    producer=PRODUCER,
                    cause=cause,
                )
            )
        return enrolment

    async def get_enrolment(
        self, enrolment_id: uuid.UUID, viewer: Principal | None = None
    ) -> Enrolment:
        """``viewer``: another district's or caseworker's enrolment answers 404."""
        enrolment = await self.repo.get_enrolment(enrolment_id)
        if enrolment is None or not await self.access.may_see_person(enrolment.person_id, viewer):
            raise NotFound(f"enrolment {enrolment_id} not found")
        return enrolment

    async def _load(self, tx: Transaction, enrolment_id: uuid.UUID) -> Enrolment:
        enrolment = await self.repo.get_enrolment(enrolment_id, tx)
        if enrolment is None:
            raise NotFound(f"enrolment {enrolment_id} not found")
        return enrolment

    async def record_attendance(
        self,
        enrolment_id: uuid.UUID,
        session_date: date,
        present: bool,
        *,
        cause: Event | None = None,
    ) -> Enrolment:
        async with self.uow.transaction(applying=cause) as tx:
            enrolment = await self._load(tx, enrolment_id)
            enrolment.record_session(session_date, present)
            await self.repo.save_enrolment(tx, enrolment)
            tx.publish(
                ev.AttendanceRecorded.create(
                    ev.AttendanceRecordedV1(
                        **enrolment_facts(enrolment),
                        session_date=session_date,
                        present=present,
                        attendance_rate=round(enrolment.attendance_rate, 4),
                    ),
                    producer=PRODUCER,
                    cause=cause,
                )
            )
        return enrolment

    async def record_exam(
        self,
        enrolment_id: uuid.UUID,
        exam: ExamKind,
        level_tested: CefrLevel | None,
        result: ExamResultValue,
        taken_on: date,
        *,
        cause: Event | None = None,
    ) -> Enrolment:
        assessed = assess_exam(exam, level_tested, result, taken_on)
        async with self.uow.transaction(applying=cause) as tx:
            enrolment = await self._load(tx, enrolment_id)
            enrolment.record_exam(assessed)
            await self.repo.save_enrolment(tx, enrolment)
            tx.publish(
                ev.ExamResultRecorded.create(
                    ev.ExamResultRecordedV1(
                        **enrolment_facts(enrolment),
                        exam=exam,
                        level_tested=assessed.level_tested,
                        level_reached=assessed.level_reached,
                        taken_on=taken_on,
                    ),
                    producer=PRODUCER,
                    cause=cause,
                )
            )
        return enrolment

    async def complete(
        self,
        enrolment_id: uuid.UUID,
        completed_on: date,
        level_reached: CefrLevel | None,
        *,
        cause: Event | None = None,
    ) -> Enrolment:
        async with self.uow.transaction(applying=cause) as tx:
            enrolment = await self._load(tx, enrolment_id)
            if cause is not None and level_reached is None and enrolment.best_exam_level() is None:
                # the school's exam result may still be on its way (another queue)
                raise NotYetApplicable(
                    str(enrolment.person_id),
                    "completion names no level and no passed exam is recorded yet",
                )
            if enrolment.complete(completed_on, level_reached):
                await self.repo.save_enrolment(tx, enrolment)
                assert enrolment.level_reached is not None
                tx.publish(
                    ev.CourseCompleted.create(
                        ev.CourseCompletedV1(
                            **enrolment_facts(enrolment),
                            level_reached=enrolment.level_reached,
                            completed_on=completed_on,
                        ),
                        producer=PRODUCER,
                        cause=cause,
                    )
                )
        return enrolment

    async def drop(
        self,
        enrolment_id: uuid.UUID,
        dropped_on: date,
        reason: str,
        *,
        cause: Event | None = None,
    ) -> Enrolment:
        async with self.uow.transaction(applying=cause) as tx:
            enrolment = await self._load(tx, enrolment_id)
            if enrolment.drop(dropped_on, reason):
                await self.repo.save_enrolment(tx, enrolment)
                tx.publish(
                    ev.CourseDropped.create(
                        ev.CourseDroppedV1(
                            **enrolment_facts(enrolment), dropped_on=dropped_on, reason=reason
                        ),
                        producer=PRODUCER,
                        cause=cause,
                    )
                )
        return enrolment

    # --- partner reports (AMQP) -----------------------------------------------
    async def _partner_enrolment(self, person_id: uuid.UUID, ref: partner.CourseRef) -> uuid.UUID:
        if not await self.repo.is_known(person_id):
            raise PersonNotYetKnown(str(person_id))
        course = await self.repo.course_by_ref(ref.provider, ref.course_ref)
        if course is None:
            raise NotFound(
                f"course {ref.provider}/{ref.course_ref} is unknown; report the enrolment first"
            )
        enrolment = await self.repo.enrolment_of(course.course_id, person_id)
        if enrolment is None:
            raise NotFound(f"person {person_id} is not enrolled in {ref.provider}/{ref.course_ref}")
        return enrolment.enrolment_id

    async def enrolment_reported(self, event: partner.EnrolmentReported) -> None:
        p = event.payload
        course = await self.repo.course_by_ref(p.course.provider, p.course.course_ref)
        if course is None:
            details = CourseDetails(**p.course.model_dump())
            try:
                course = await self.create_course(details)
            except Conflict:  # reported concurrently by a second message
                course = await self.repo.course_by_ref(p.course.provider, p.course.course_ref)
                assert course is not None
        await self.enrol(course.course_id, p.person_id, cause=event)
        await self.parking.replay_for([str(p.person_id)])

    async def attendance_reported(self, event: partner.AttendanceReported) -> None:
        p = event.payload
        enrolment_id = await self._partner_enrolment(p.person_id, p.course)
        await self.record_attendance(enrolment_id, p.session_date, p.present, cause=event)
        await self.parking.replay_for([str(p.person_id)])

    async def exam_result_reported(self, event: partner.ExamResultReported) -> None:
        p = event.payload
        enrolment_id = await self._partner_enrolment(p.person_id, p.course)
        await self.record_exam(
            enrolment_id, p.exam, p.level_tested, p.result, p.taken_on, cause=event
        )
        await self.parking.replay_for([str(p.person_id)])

    async def completion_reported(self, event: partner.CompletionReported) -> None:
        p = event.payload
        enrolment_id = await self._partner_enrolment(p.person_id, p.course)
        await self.complete(enrolment_id, p.completed_on, p.level_reached, cause=event)

    async def dropout_reported(self, event: partner.DropoutReported) -> None:
        p = event.payload
        enrolment_id = await self._partner_enrolment(p.person_id, p.course)
        await self.drop(enrolment_id, p.dropped_on, p.reason or "reported by school", cause=event)
