"""notifications' HTTP routes: the inbox as JSON, its live stream, preferences.

The inbox a person reads is the portal's page, which calls these with the user's own
token; the service serves no HTML."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from time import monotonic
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, EmailStr, Field

from lotse_notifications.access import of_district, of_viewers_district, whose_inbox
from lotse_notifications.domain.model import (
    CHOOSABLE,
    Attempt,
    Cadence,
    Channel,
    Kind,
    Notification,
    Preferences,
)
from lotse_notifications.handlers import NotificationsHandlers
from lotse_notifications.inbox import InboxCounts, InboxFilter
from lotse_notifications.live import InboxChanges
from lotse_notifications.settings import CadenceKind
from lotse_shared.auth import READERS, Principal
from lotse_shared.auth.audit import concerning
from lotse_shared.auth.http import Authenticator
from lotse_shared.http import MAX_OFFSET
from lotse_shared.routes import api_router


def about(request: Request, n: Notification) -> Notification:
    if n.person_id is not None:  # a digest is about several people, and names none here
        concerning(request, person_id=n.person_id)  # whose data, for the audit
    return n


def live_state(counts: InboxCounts) -> str:
    """What an open inbox page watches: '<unread>|<newest created_at>'."""
    return f"{counts.unread}|{counts.newest.isoformat() if counts.newest else ''}"


Recipient = Annotated[
    EmailStr | None,
    Query(description="Whose inbox: the caller's own if empty; another's for admins only"),
]
PersonFilter = Annotated[
    uuid.UUID | None, Query(description="Only the notifications about this person")
]
KindFilter = Annotated[Kind | None, Query(description="Only notifications of this kind")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


class UnreadCounts(BaseModel):
    total: int = Field(description="Unread notifications in the inbox (not archived)")
    by_kind: dict[Kind, int] = Field(description="The same per kind; every kind named")


class Marked(BaseModel):
    marked: int = Field(description="How many were unread and are read now")


class PreferencesIn(BaseModel):
    opted_out: list[Literal["email", "webhook"]] = Field(
        default_factory=list,
        description="Channels this recipient does not want; the inbox is always on, "
        "and critical alerts are emailed anyway.",
    )
    cadence: dict[CadenceKind, Cadence] = Field(
        default_factory=dict,
        description="Per kind: immediate (own alert and email), hourly or daily (in the "
        "digest). Kinds left out follow the district's default; critical alerts (a "
        "dropped course) are always immediate.",
    )
    daily_email_cap: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Immediate emails a day before the rest waits for the digest "
        "(critical ones always go); null: the district's default; 0: no cap.",
    )


class Upcoming(BaseModel):
    person_id: uuid.UUID
    person: str
    opening_id: str
    title: str
    score: float
    due_at: datetime | None = Field(description="When the digest carrying it goes out.")


class Effective(BaseModel):
    cadence: dict[Kind, Cadence]
    daily_email_cap: int


class PreferencesOut(Preferences):
    effective: Effective = Field(
        description="What applies: the recipient's choices over the district's defaults."
    )


def make_router(h: NotificationsHandlers, auth: Authenticator, changes: InboxChanges) -> APIRouter:
    """The caller's own inbox (the token's email); other people's answer 404. Mentors
    have an inbox too (they are told about the people they accompany): reading it and
    marking their own items read or archived changes nobody's personal data."""
    router = api_router(prefix="/notifications", tags=["inbox"])
    readers = auth.require(*READERS)

    @router.get("", summary="The caller's inbox: unread first, newest first")
    async def inbox(
        request: Request,
        viewer: Principal = readers,
        recipient: Recipient = None,
        unread_only: bool = False,
        archived: Annotated[bool, Query(description="The archive instead of the inbox")] = False,
        person_id: PersonFilter = None,
        kind: KindFilter = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Offset = 0,
    ) -> list[Notification]:
        f = InboxFilter(whose_inbox(viewer, recipient), archived, unread_only, kind, person_id)
        if person_id is not None:
            concerning(request, person_id=person_id)
        page = await h.inbox_page(f, offset, limit, counted=False)
        return of_district(viewer, page.items)

    @router.get("/unread-counts", summary="Unread notifications in the inbox, in all and per kind")
    async def unread_counts(
        viewer: Principal = readers, recipient: Recipient = None
    ) -> UnreadCounts:
        counts = await h.inbox_counts(whose_inbox(viewer, recipient))
        return UnreadCounts(total=counts.unread, by_kind=counts.unread_by_kind())

    @router.get(
        "/unread-by-person",
        summary="Unread notifications in the inbox per person they are about",
        description="`{person_id: count}` for the unread, not archived items that name a "
        "person (digests name none); people without unread items are left out. One "
        "call for a caseload page's badges.",
    )
    async def unread_by_person(
        viewer: Principal = readers, recipient: Recipient = None
    ) -> dict[str, int]:
        counts = await h.unread_by_person(whose_inbox(viewer, recipient), viewer)
        return {str(person_id): n for person_id, n in counts.items()}

    @router.get(
        "/upcoming",
        summary="Suggestions waiting for the caller's next digest, with when it goes out",
    )
    async def upcoming(viewer: Principal = readers, recipient: Recipient = None) -> list[Upcoming]:
        entries = await h.upcoming(whose_inbox(viewer, recipient))
        return [
            Upcoming(
                person_id=e.person_id,
                person=e.person,
                opening_id=e.opening_id,
                title=e.suggestion["title"],
                score=e.score,
                due_at=e.due_at,
            )
            for e in entries
            if of_viewers_district(viewer, e.district_id)
        ]

    @router.post(
        "/read-all",
        summary="Mark every unread notification of the filter read (emails not yet sent "
        "are not sent any more)",
    )
    async def read_all(
        request: Request,
        viewer: Principal = readers,
        recipient: Recipient = None,
        person_id: PersonFilter = None,
        kind: KindFilter = None,
    ) -> Marked:
        f = InboxFilter(whose_inbox(viewer, recipient), kind=kind, person_id=person_id)
        if person_id is not None:
            concerning(request, person_id=person_id)
        return Marked(marked=await h.read_all(f, viewer))

    @router.get(
        "/events",
        summary="Server-sent events: `inbox` with '<unread>|<newest>' whenever it changes",
        description="A stream of `event: inbox` / `data: <unread>|<newest created_at>`: "
        "one at once, then one whenever either changes (checked on every change in this "
        "process and every few seconds, so other replicas' changes arrive too). The stream "
        "ends after a while and the client reconnects (`retry: 2000`). The portal passes it "
        "on to an open inbox page.",
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(viewer: Principal = readers, recipient: Recipient = None) -> StreamingResponse:
        whose = whose_inbox(viewer, recipient)

        async def stream() -> AsyncIterator[str]:
            last = None
            idle = 0
            ends = monotonic() + changes.stream_s
            yield "retry: 2000\n\n"
            while monotonic() < ends:
                now = live_state(await h.inbox_counts(whose))
                if now != last:
                    yield f"event: inbox\ndata: {now}\n\n"
                    last, idle = now, 0
                elif (idle := idle + 1) % 10 == 0:
                    yield ": keep-alive\n\n"
                await changes.wait()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get("/{notification_id}", summary="One notification with its delivery state")
    async def read_one(
        notification_id: uuid.UUID, request: Request, viewer: Principal = readers
    ) -> Notification:
        return about(request, await h.get(notification_id, viewer))

    @router.get(
        "/{notification_id}/deliveries",
        summary="Delivery log: each attempt with channel, time and result, oldest first",
    )
    async def deliveries(notification_id: uuid.UUID, viewer: Principal = readers) -> list[Attempt]:
        return await h.delivery_log(notification_id, viewer)

    @router.post("/{notification_id}/read", summary="Mark as read (idempotent)")
    async def mark_read(
        notification_id: uuid.UUID, request: Request, viewer: Principal = readers
    ) -> Notification:
        return about(request, await h.mark_read(notification_id, viewer))

    @router.post("/{notification_id}/archive", summary="Archive (and so mark read; idempotent)")
    async def archive(
        notification_id: uuid.UUID, request: Request, viewer: Principal = readers
    ) -> Notification:
        return about(request, await h.archive(notification_id, viewer))

    return router


def make_preferences_router(h: NotificationsHandlers, auth: Authenticator) -> APIRouter:
    router = api_router(prefix="/preferences", tags=["preferences"])
    readers = auth.require(*READERS)  # the caller's own choices: mentors have an inbox too

    def shown(prefs: Preferences, viewer: Principal) -> PreferencesOut:
        defaults = h.policy.for_district(viewer.district_id or "")
        priority = {k: h.routing.rule_for(k, viewer.district_id or "").priority for k in CHOOSABLE}
        return PreferencesOut(
            **prefs.model_dump(),
            effective=Effective(
                cadence={k: defaults.cadence_for(k, prefs, priority[k]) for k in CHOOSABLE},
                daily_email_cap=defaults.cap_for(prefs),
            ),
        )

    @router.get("", summary="The caller's channel choices, cadences and daily email cap")
    async def get_preferences(
        viewer: Principal = readers, recipient: Recipient = None
    ) -> PreferencesOut:
        return shown(await h.preferences_of(whose_inbox(viewer, recipient)), viewer)

    @router.put("", summary="Replace the caller's choices (left out: the district's default)")
    async def put_preferences(
        body: PreferencesIn, viewer: Principal = readers, recipient: Recipient = None
    ) -> PreferencesOut:
        prefs = Preferences(
            opted_out={Channel(c) for c in body.opted_out},
            cadence={Kind(k): v for k, v in body.cadence.items()},
            daily_email_cap=body.daily_email_cap,
        )
        await h.save_preferences(whose_inbox(viewer, recipient), prefs)
        return shown(prefs, viewer)

    return router
