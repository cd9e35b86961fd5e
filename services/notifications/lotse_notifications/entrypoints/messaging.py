"""notifications' subscription table: each event type, its queue and the handler it calls."""

from __future__ import annotations

from lotse_notifications.handlers import NotificationsHandlers
from lotse_shared.contracts.courses import (
    AttendanceRecorded,
    CourseCompleted,
    CourseDropped,
    Enrolled,
)
from lotse_shared.contracts.intake import PersonErased, PersonRegistered, PersonUpdated
from lotse_shared.contracts.placement import OpeningClosed, OpeningPublished, SuggestionsReady
from lotse_shared.messaging.subscriptions import Subscriptions


def register_subscriptions(subs: Subscriptions, h: NotificationsHandlers) -> None:
    @subs.on(PersonRegistered, "Remember who is responsible for the person")
    async def person_registered(event: PersonRegistered) -> None:
        await h.person_changed(event)

    @subs.on(PersonUpdated, "Follow changes of the person's contacts")
    async def person_updated(event: PersonUpdated) -> None:
        await h.person_changed(event)

    @subs.on(PersonErased, "Forget the person: recipients, inbox entries, delivery log")
    async def person_erased(event: PersonErased) -> None:
        await h.person_erased(event)

    @subs.on(
        SuggestionsReady,
        "Announce new suggestions once: in their completion's alert, on their own, or in "
        "the digest",
    )
    async def suggestions_ready(event: SuggestionsReady) -> None:
        await h.suggestions_ready(event)

    @subs.on(OpeningClosed, "Leave a closed opening out of digests; mark it where shown")
    async def opening_closed(event: OpeningClosed) -> None:
        await h.opening_closed(event)

    @subs.on(OpeningPublished, "An opening re-sent without free seats counts as closed")
    async def opening_published(event: OpeningPublished) -> None:
        await h.opening_published(event)

    @subs.on(Enrolled, "Low priority: the caseworker's daily digest")
    async def enrolled(event: Enrolled) -> None:
        await h.enrolled(event)

    @subs.on(AttendanceRecorded, "Alert when attendance falls below the threshold (throttled)")
    async def attendance_recorded(event: AttendanceRecorded) -> None:
        await h.attendance_recorded(event)

    @subs.on(CourseCompleted, "Tell caseworker, mentor and coordinator the level reached")
    async def course_completed(event: CourseCompleted) -> None:
        await h.course_completed(event)

    @subs.on(CourseDropped, "Critical: caseworker, mentor, guide; escalated if unread")
    async def course_dropped(event: CourseDropped) -> None:
        await h.course_dropped(event)
