"""notifications' HTTP routes: the inbox as JSON, the inbox in the browser, preferences."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from time import monotonic
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, EmailStr, Field

from lotse_notifications.domain.model import BERLIN, Attempt, Channel, Notification, Preferences
from lotse_notifications.handlers import NotificationsHandlers, inbox_link
from lotse_notifications.live import InboxChanges
from lotse_notifications.templates import Templates

Recipient = Annotated[EmailStr, Query(description="The recipient's email address")]

EMAIL_LABELS = {
    "pending": "wird gesendet",
    "digest": "in der Tagesübersicht",
    "sent": "gesendet",
    "failed": "fehlgeschlagen",
    "skipped": "keine Einwilligung",
    "opted_out": "abbestellt",
}


class PreferencesIn(BaseModel):
    opted_out: list[Literal["email", "webhook"]] = Field(
        default_factory=list,
        description="Channels this recipient does not want; the inbox is always on, "
        "and critical alerts are emailed anyway.",
    )


def make_router(h: NotificationsHandlers) -> APIRouter:
    router = APIRouter(prefix="/notifications", tags=["inbox"])

    @router.get("", summary="A recipient's inbox: unread first, newest first")
    async def inbox(
        recipient: Recipient,
        unread_only: bool = False,
        archived: Annotated[bool, Query(description="The archive instead of the inbox")] = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[Notification]:
        return await h.repo.inbox(
            recipient, unread_only=unread_only, limit=limit, offset=offset, archived=archived
        )

    @router.get("/{notification_id}", summary="One notification with its delivery state")
    async def read_one(notification_id: uuid.UUID) -> Notification:
        return await h.get(notification_id)

    @router.get(
        "/{notification_id}/deliveries",
        summary="Delivery log: each attempt with channel, time and result, oldest first",
    )
    async def deliveries(notification_id: uuid.UUID) -> list[Attempt]:
        return await h.delivery_log(notification_id)

    @router.post("/{notification_id}/read", summary="Mark as read (idempotent)")
    async def mark_read(notification_id: uuid.UUID) -> Notification:
        return await h.mark_read(notification_id)

    @router.post("/{notification_id}/archive", summary="Archive (and so mark read; idempotent)")
    async def archive(notification_id: uuid.UUID) -> Notification:
        return await h.archive(notification_id)

    return router


def make_preferences_router(h: NotificationsHandlers) -> APIRouter:
    router = APIRouter(prefix="/preferences", tags=["preferences"])

    @router.get("", summary="A recipient's channel choices")
    async def get_preferences(recipient: Recipient) -> Preferences:
        return await h.repo.preferences_of(recipient)

    @router.put("", summary="Replace a recipient's channel choices")
    async def put_preferences(recipient: Recipient, body: PreferencesIn) -> Preferences:
        prefs = Preferences(opted_out={Channel(c) for c in body.opted_out})
        await h.repo.save_preferences(recipient, prefs)
        return prefs

    return router


def make_browser_router(
    h: NotificationsHandlers, templates: Templates, changes: InboxChanges
) -> APIRouter:
    """The inbox as a server-rendered page: plain forms, and live updates over SSE."""
    router = APIRouter(prefix="/inbox", tags=["browser inbox"])

    async def state(recipient: str) -> str:
        unread, newest = await h.repo.unread_state(recipient)
        return f"{unread}|{newest.isoformat() if newest else ''}"

    @router.get("", response_class=HTMLResponse, summary="The inbox page (unread first)")
    async def page(
        recipient: Annotated[EmailStr | None, Query(description="Whose inbox")] = None,
        archived: bool = False,
    ) -> HTMLResponse:
        items: list[Notification] = []
        unread = 0
        shown = ""
        if recipient:
            items = await h.repo.inbox(
                recipient, unread_only=False, limit=200, offset=0, archived=archived
            )
            shown = await state(recipient)
            unread = int(shown.split("|")[0])
        return HTMLResponse(
            templates.page(
                "inbox.html",
                recipient=recipient,
                items=items,
                archived=archived,
                unread=unread,
                state=shown,
                berlin=BERLIN,
                email_labels=EMAIL_LABELS,
            )
        )

    @router.post("/{notification_id}/read", summary="Mark read from the page, then back to it")
    async def page_read(notification_id: uuid.UUID) -> RedirectResponse:
        n = await h.mark_read(notification_id)
        return RedirectResponse(inbox_link("/inbox", n.recipient_email), status_code=303)

    @router.post("/{notification_id}/archive", summary="Archive from the page, then back to it")
    async def page_archive(notification_id: uuid.UUID) -> RedirectResponse:
        n = await h.archive(notification_id)
        return RedirectResponse(inbox_link("/inbox", n.recipient_email), status_code=303)

    @router.get(
        "/events",
        summary="Server-sent events: `inbox` with '<unread>|<newest>' whenever it changes",
    )
    async def events(recipient: Recipient) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            last = None
            idle = 0
            ends = monotonic() + changes.stream_s
            yield "retry: 2000\n\n"
            while monotonic() < ends:
                now = await state(recipient)
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

    return router
