"""placement's subscription table: each event type, its queue and the handler it calls."""

from __future__ import annotations

from lotse_placement.handlers import PlacementHandlers
from lotse_placement.imports import ImportHandlers
from lotse_shared.contracts.courses import CourseCompleted, CourseDropped, Enrolled
from lotse_shared.contracts.intake import PersonErased, PersonRegistered, PersonUpdated
from lotse_shared.contracts.partner import (
    OpeningFeedReported,
    OpeningReported,
    OpeningWithdrawn,
)
from lotse_shared.messaging.subscriptions import Subscriptions


def register_subscriptions(
    subs: Subscriptions, h: PlacementHandlers, imports: ImportHandlers
) -> None:
    @subs.on(PersonRegistered, "Keep the person's matching facts")
    async def person_registered(event: PersonRegistered) -> None:
        await h.person_changed(event)

    @subs.on(PersonUpdated, "Keep the newest facts; re-match on a change")
    async def person_updated(event: PersonUpdated) -> None:
        await h.person_changed(event)

    @subs.on(PersonErased, "Forget the person: read model, suggestions, cases; keep a tombstone")
    async def person_erased(event: PersonErased) -> None:
        await h.person_erased(event)

    @subs.on(CourseCompleted, "Compute suggestions for the new German level")
    async def course_completed(event: CourseCompleted) -> None:
        await h.course_completed(event)

    @subs.on(Enrolled, "Keep ongoing courses: a level they forecast can open doors")
    async def enrolled(event: Enrolled) -> None:
        await h.enrolled(event)

    @subs.on(CourseDropped, "Forget the dropped course's forecast")
    async def course_dropped(event: CourseDropped) -> None:
        await h.course_dropped(event)

    @subs.on(OpeningReported, "Store or update the opening; match it against people")
    async def opening_reported(event: OpeningReported) -> None:
        await h.opening_reported(event)

    @subs.on(OpeningWithdrawn, "Close the opening")
    async def opening_withdrawn(event: OpeningWithdrawn) -> None:
        await h.opening_withdrawn(event)

    @subs.on(
        OpeningFeedReported,
        "Import the feed record by record; publish the outcome as placement.import.completed",
    )
    async def opening_feed_reported(event: OpeningFeedReported) -> None:
        await imports.opening_feed_reported(event)
