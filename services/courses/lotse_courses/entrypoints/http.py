"""courses' HTTP routes: translate requests into handler calls, nothing more."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from lotse_courses.access import check_may_add_course
from lotse_courses.domain.model import Course, CourseDetails, Enrolment, ExamKind, ExamResultValue
from lotse_courses.handlers import CoursesHandlers
from lotse_shared.auth import READERS, STAFF, Principal
from lotse_shared.auth.audit import concerning
from lotse_shared.auth.http import Authenticator
from lotse_shared.contracts.common import CefrLevel
from lotse_shared.http import MAX_OFFSET
from lotse_shared.routes import api_router


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrolmentRequest(_Body):
    person_id: uuid.UUID
    course_id: uuid.UUID


class EnrolmentQuery(_Body):
    person_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=500, description="The people (a caseload page), 1 to 500."
    )


class AttendanceRequest(_Body):
    session_date: date
    present: bool


class ExamRequest(_Body):
    exam: ExamKind
    level_tested: CefrLevel | None = Field(
        default=None, description="DTB/telc: the level tested. DTZ: leave empty (it is scaled)."
    )
    result: ExamResultValue = Field(description="DTZ: A2, B1 or below_A2. Others: passed/failed.")
    taken_on: date


class CompletionRequest(_Body):
    completed_on: date
    level_reached: CefrLevel | None = Field(
        default=None, description="If empty, the best passed exam decides."
    )


class DropoutRequest(_Body):
    dropped_on: date
    reason: str = Field(min_length=1, max_length=500)


def make_router(h: CoursesHandlers, auth: Authenticator) -> APIRouter:
    """Courses are the district's (no personal data); an enrolment is the person's, seen
    by their caseworkers, their mentors (read only) and the district's coordinators;
    anyone else's answers 404. Only staff write."""
    router = api_router()
    staff = auth.require(*STAFF)
    readers = auth.require(*READERS)

    async def visible(request: Request, enrolment_id: uuid.UUID, viewer: Principal) -> Enrolment:
        enrolment = await h.get_enrolment(enrolment_id, viewer)
        concerning(request, person_id=enrolment.person_id)  # whose data, for the audit
        return enrolment

    @router.post("/courses", status_code=status.HTTP_201_CREATED, tags=["courses"])
    async def create_course(details: CourseDetails, viewer: Principal = staff) -> Course:
        check_may_add_course(viewer, details.district_id)
        return await h.create_course(details)

    @router.get("/courses", tags=["courses"], summary="The courses of the caller's district")
    async def list_courses(
        viewer: Principal = readers,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> list[Course]:
        return await h.list_courses(viewer, limit, offset)

    @router.get("/courses/{course_id}", tags=["courses"])
    async def get_course(course_id: uuid.UUID, viewer: Principal = readers) -> Course:
        return await h.get_course(course_id, viewer)

    @router.post("/enrolments", status_code=status.HTTP_201_CREATED, tags=["enrolments"])
    async def enrol(
        body: EnrolmentRequest, request: Request, viewer: Principal = staff
    ) -> Enrolment:
        concerning(request, person_id=body.person_id)
        return await h.enrol_as(viewer, body.course_id, body.person_id)

    @router.get("/enrolments", tags=["enrolments"], summary="A person's enrolments")
    async def enrolments_of(person_id: uuid.UUID, viewer: Principal = readers) -> list[Enrolment]:
        return await h.enrolments_of(person_id, viewer)

    @router.post(
        "/enrolments/query",
        tags=["enrolments"],
        summary="The enrolments of many people at once",
        description="Every enrolment of those of the given people the caller may see; "
        "anyone else's are left out silently. For a list page: one call, not one per person.",
    )
    async def enrolments_of_many(
        body: EnrolmentQuery, viewer: Principal = readers
    ) -> list[Enrolment]:
        return await h.enrolments_of_many(body.person_ids, viewer)

    @router.get("/enrolments/{enrolment_id}", tags=["enrolments"])
    async def get_enrolment(
        enrolment_id: uuid.UUID, request: Request, viewer: Principal = readers
    ) -> Enrolment:
        return await visible(request, enrolment_id, viewer)

    @router.post("/enrolments/{enrolment_id}/attendance", tags=["enrolments"])
    async def attendance(
        enrolment_id: uuid.UUID,
        body: AttendanceRequest,
        request: Request,
        viewer: Principal = staff,
    ) -> Enrolment:
        await visible(request, enrolment_id, viewer)
        return await h.record_attendance(enrolment_id, body.session_date, body.present)

    @router.post("/enrolments/{enrolment_id}/exams", tags=["enrolments"])
    async def exam(
        enrolment_id: uuid.UUID, body: ExamRequest, request: Request, viewer: Principal = staff
    ) -> Enrolment:
        await visible(request, enrolment_id, viewer)
        return await h.record_exam(
            enrolment_id, body.exam, body.level_tested, body.result, body.taken_on
        )

    @router.post("/enrolments/{enrolment_id}/completion", tags=["enrolments"])
    async def complete(
        enrolment_id: uuid.UUID,
        body: CompletionRequest,
        request: Request,
        viewer: Principal = staff,
    ) -> Enrolment:
        await visible(request, enrolment_id, viewer)
        return await h.complete(enrolment_id, body.completed_on, body.level_reached)

    @router.post("/enrolments/{enrolment_id}/dropout", tags=["enrolments"])
    async def dropout(
        enrolment_id: uuid.UUID, body: DropoutRequest, request: Request, viewer: Principal = staff
    ) -> Enrolment:
        await visible(request, enrolment_id, viewer)
        return await h.drop(enrolment_id, body.dropped_on, body.reason)

    return router
