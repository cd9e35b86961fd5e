"""notifications' HTTP routes: a recipient's inbox."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import EmailStr

from lotse_notifications.domain.model import Notification
from lotse_notifications.handlers import NotificationsHandlers


def make_router(h: NotificationsHandlers) -> APIRouter:
    router = APIRouter(prefix="/notifications", tags=["inbox"])

    @router.get("", summary="A recipient's inbox: unread first, newest first")
    async def inbox(
        recipient: Annotated[EmailStr, Query(description="The recipient's email address")],
        unread_only: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[Notification]:
        return await h.repo.inbox(recipient, unread_only=unread_only, limit=limit, offset=offset)

    @router.get("/{notification_id}", summary="One notification with its delivery state")
    async def read_one(notification_id: uuid.UUID) -> Notification:
        return await h.get(notification_id)

    @router.post("/{notification_id}/read", summary="Mark as read (idempotent)")
    async def mark_read(notification_id: uuid.UUID) -> Notification:
        return await h.mark_read(notification_id)

    return router
