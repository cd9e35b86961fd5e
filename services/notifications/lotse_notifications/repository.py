"""Where notifications keeps recipients (read model) and the notifications themselves."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from lotse_shared.persistence.mongo import Transaction, save_if_newer

from .domain.model import EmailStatus, Notification, Recipients

Document = dict[str, Any]


class NotificationsRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.recipients = db["recipients"]
        self.notifications = db["notifications"]

    async def ensure_indexes(self) -> None:
        await self.notifications.create_indexes(
            [
                # one notification per recipient, subject and cause
                IndexModel(
                    [("recipient_email", 1), ("kind", 1), ("cause_event_id", 1)],
                    unique=True,
                    name="one_per_recipient_kind_cause",
                ),
                IndexModel(
                    [
                        ("recipient_email", ASCENDING),
                        ("read_at", ASCENDING),
                        ("created_at", DESCENDING),
                    ],
                    name="inbox",
                ),
                IndexModel([("email_status", 1), ("email_next_attempt_at", 1)], name="outgoing"),
                IndexModel("correlation_id", name="by_flow"),
            ]
        )

    # --- recipients -----------------------------------------------------------------
    async def save_recipients(self, tx: Transaction, r: Recipients) -> bool:
        doc = r.model_dump(mode="json", exclude={"person_id"})
        doc["_id"] = r.person_id
        return await save_if_newer(self.recipients, doc, tx.session)

    async def recipients_of(
        self, person_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> Recipients | None:
        doc = await self.recipients.find_one({"_id": person_id}, session=session)
        if doc is None:
            return None
        data = dict(doc)
        data["person_id"] = data.pop("_id")
        return Recipients.model_validate(data)

    # --- notifications ------------------------------------------------------------------
    async def add(self, tx: Transaction, notifications: list[Notification]) -> None:
        if notifications:
            await self.notifications.insert_many(
                [_doc(n) for n in notifications], session=tx.session
            )

    async def exists(
        self, recipient_email: str, kind: str, cause_event_id: str, session: AsyncClientSession
    ) -> bool:
        return bool(
            await self.notifications.count_documents(
                {
                    "recipient_email": recipient_email,
                    "kind": kind,
                    "cause_event_id": cause_event_id,
                },
                session=session,
                limit=1,
            )
        )

    async def get(self, notification_id: uuid.UUID) -> Notification | None:
        doc = await self.notifications.find_one({"_id": notification_id})
        return _notification(doc) if doc else None

    async def inbox(
        self, recipient_email: str, *, unread_only: bool, limit: int, offset: int
    ) -> list[Notification]:
        query: Document = {"recipient_email": recipient_email.lower()}
        if unread_only:
            query["read_at"] = None
        # unread first (read_at null sorts first), newest first within each
        cursor = (
            self.notifications.find(query)
            .sort([("read_at", 1), ("created_at", -1)])
            .skip(offset)
            .limit(limit)
        )
        return [_notification(d) async for d in cursor]

    async def mark_read(self, notification_id: uuid.UUID, at: datetime) -> Notification | None:
        doc = await self.notifications.find_one_and_update(
            {"_id": notification_id},
            [{"$set": {"read_at": {"$ifNull": ["$read_at", at]}}}],
            return_document=ReturnDocument.AFTER,
        )
        return _notification(doc) if doc else None

    async def due_emails(self, now: datetime, limit: int) -> list[Notification]:
        # a pending email always has a next attempt time (no $or: it would scan)
        cursor = self.notifications.find(
            {
                "email_status": EmailStatus.PENDING.value,
                "email_next_attempt_at": {"$lte": now},
            }
        ).limit(limit)
        return [_notification(d) async for d in cursor]

    async def claim_email(self, notification_id: uuid.UUID, until: datetime, now: datetime) -> bool:
        """Lease one email so two replicas never send it at the same time."""
        result = await self.notifications.update_one(
            {
                "_id": notification_id,
                "email_status": EmailStatus.PENDING.value,
                "email_next_attempt_at": {"$lte": now},
            },
            {"$set": {"email_next_attempt_at": until}},
        )
        return result.modified_count == 1

    async def record_email(
        self, tx: Transaction | None, notification_id: uuid.UUID, changes: Document
    ) -> None:
        await self.notifications.update_one(
            {"_id": notification_id},
            {"$set": changes},
            session=tx.session if tx else None,
        )


def _doc(n: Notification) -> Document:
    doc = n.model_dump(
        mode="json",
        exclude={
            "notification_id",
            "created_at",
            "read_at",
            "email_next_attempt_at",
            "email_sent_at",
        },
    )
    doc.update(
        _id=n.notification_id,
        person_id=n.person_id,
        recipient_email=n.recipient_email.lower(),
        created_at=n.created_at,
        read_at=n.read_at,
        email_next_attempt_at=n.email_next_attempt_at,
        email_sent_at=n.email_sent_at,
    )
    return doc


def _notification(doc: Document) -> Notification:
    data = dict(doc)
    data["notification_id"] = data.pop("_id")
    return Notification.model_validate(data)
