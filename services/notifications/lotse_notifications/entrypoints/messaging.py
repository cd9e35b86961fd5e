"""notifications' subscription table: each event type, its queue and the handler it calls."""

from __future__ import annotations

from lotse_notifications.handlers import NotificationsHandlers
from lotse_shared.contracts.courses import CourseCompleted, CourseDropped
from lotse_shared.contracts.intake import PersonRegistered, PersonUpdated
from lotse_shared.contracts.placement import SuggestionsReady
from lotse_shared.messaging.subscriptions import Subscriptions


def register_subscriptions(subs: Subscriptions, h: NotificationsHandlers) -> None:
    @subs.on(PersonRegistered, "Remember who is responsible for the person")
    async def person_registered(event: PersonRegistered) -> None:
        await h.person_changed(event)

    @subs.on(PersonUpdated, "Follow changes of the person's contacts")
    async def person_updated(event: PersonUpdated) -> None:
        await h.person_changed(event)

    @subs.on(SuggestionsReady, "Alert the caseworker with the suggestions and reasons")
    async def suggestions_ready(event: SuggestionsReady) -> None:
        await h.suggestions_ready(event)

    @subs.on(CourseCompleted, "Tell caseworker and mentor the level reached")
    async def course_completed(event: CourseCompleted) -> None:
        await h.course_completed(event)

    @subs.on(CourseDropped, "Tell caseworker and mentor about the drop-out")
    async def course_dropped(event: CourseDropped) -> None:
        await h.course_dropped(event)
