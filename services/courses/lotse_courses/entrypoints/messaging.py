"""courses' subscription table: each event type, its queue and the handler it calls."""

from __future__ import annotations

from lotse_courses.handlers import CoursesHandlers
from lotse_shared.contracts import partner
from lotse_shared.contracts.intake import PersonErased, PersonRegistered, PersonUpdated
from lotse_shared.messaging.subscriptions import Subscriptions


def register_subscriptions(subs: Subscriptions, h: CoursesHandlers) -> None:
    @subs.on(PersonRegistered, "Remember the person so partner reports can refer to them")
    async def person_registered(event: PersonRegistered) -> None:
        await h.person_changed(event)

    @subs.on(PersonUpdated, "Keep the person's newest revision")
    async def person_updated(event: PersonUpdated) -> None:
        await h.person_changed(event)

    @subs.on(PersonErased, "Forget the person: read model and enrolments; keep a tombstone")
    async def person_erased(event: PersonErased) -> None:
        await h.person_erased(event)

    @subs.on(partner.EnrolmentReported, "Create the course if new and enrol the person")
    async def enrolment_reported(event: partner.EnrolmentReported) -> None:
        await h.enrolment_reported(event)

    @subs.on(partner.AttendanceReported, "Record attendance of one session")
    async def attendance_reported(event: partner.AttendanceReported) -> None:
        await h.attendance_reported(event)

    @subs.on(partner.ExamResultReported, "Record an exam result")
    async def exam_result_reported(event: partner.ExamResultReported) -> None:
        await h.exam_result_reported(event)

    @subs.on(partner.CompletionReported, "Complete the enrolment; publishes course completed")
    async def completion_reported(event: partner.CompletionReported) -> None:
        await h.completion_reported(event)

    @subs.on(partner.DropoutReported, "Record the drop-out; publishes course dropped")
    async def dropout_reported(event: partner.DropoutReported) -> None:
        await h.dropout_reported(event)
