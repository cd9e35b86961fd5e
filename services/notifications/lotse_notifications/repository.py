"""Where notifications keeps recipients (read model) and the notifications themselves."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from lotse_shared.persistence.documents import from_document, to_document
from lotse_shared.persistence.mongo import Transaction, in_transaction, save_if_newer

from .domain.model import (
    Attempt,
    AttendanceState,
    Channel,
    DeliveryStatus,
    Notification,
    Preferences,
    Recipients,
    SuggestionEntry,
)

Document = dict[str, Any]


class BundledMeanwhile(OperationFailure):
    """Another replica bundled part of a digest first: undo and run again.

    An OperationFailure labelled TransientTransactionError, so the retry that
    already runs use cases again after a write conflict runs this one again too."""

    def __init__(self) -> None:
        super().__init__(
            "bundled by another replica meanwhile",
            code=112,
            details={"errorLabels": ["TransientTransactionError"]},
        )


class NotificationsRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.recipients = db["recipients"]
        self.notifications = db["notifications"]
        self.preferences = db["preferences"]
        self.attendance = db["attendance"]
        self.entries = db["suggestion_entries"]
        self.tallies = db["inbox_tallies"]  # unread counts per recipient (inbox.py)
        self.email_counts = db["email_counts"]

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
                        ("archived_at", ASCENDING),
                        ("read_at", ASCENDING),
                        ("created_at", DESCENDING),
                    ],
                    name="inbox",
                ),
                # the inbox page (inbox.py): per kind, and every state in time windows; on
                # SecantusDB a window must be the range right after the index's equalities
                IndexModel(
                    [
                        ("recipient_email", ASCENDING),
                        ("kind", ASCENDING),
                        ("archived_at", ASCENDING),
                        ("read_at", ASCENDING),
                        ("created_at", DESCENDING),
                    ],
                    name="inbox_kind",
                ),
                IndexModel(
                    [("recipient_email", ASCENDING), ("created_at", DESCENDING)],
                    name="inbox_by_time",
                ),
                IndexModel(
                    [
                        ("recipient_email", ASCENDING),
                        ("kind", ASCENDING),
                        ("created_at", DESCENDING),
                    ],
                    name="inbox_kind_by_time",
                ),
                IndexModel([("email_status", 1), ("email_next_attempt_at", 1)], name="outgoing"),
                IndexModel(
                    [("webhook_status", 1), ("webhook_next_attempt_at", 1)], name="webhooks"
                ),
                IndexModel("email_lease", name="digest_lease", sparse=True),
                # a claimed batch, read back only when another replica claimed some of it
                IndexModel("email_claim", name="email_claim", sparse=True),
                IndexModel("webhook_claim", name="webhook_claim", sparse=True),
                IndexModel("escalate_at", name="escalation", sparse=True),
                IndexModel("correlation_id", name="by_flow"),
                IndexModel([("cause_event_id", 1), ("kind", 1)], name="by_cause"),
                IndexModel("person_id", name="by_person"),  # an erasure finds them
            ]
        )
        await self.attendance.create_indexes([IndexModel("person_id", name="by_person")])
        await self.entries.create_indexes(
            [
                IndexModel([("status", 1), ("due_at", 1)], name="digest_due"),
                IndexModel("opening_id", name="by_opening"),
                IndexModel("person_id", name="by_person"),
                IndexModel("notification_id", name="by_notification", sparse=True),
            ]
        )

    # --- recipients -----------------------------------------------------------------
    async def save_recipients(self, tx: Transaction, r: Recipients) -> bool:
        return await save_if_newer(self.recipients, to_document(r, "person_id"), tx.session)

    async def recipients_of(
        self, person_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> Recipients | None:
        doc = await self.recipients.find_one({"_id": person_id}, session=session)
        if doc is None:
            return None
        return from_document(Recipients, doc, "person_id")

    async def skip_emails_of(self, tx: Transaction, person_id: uuid.UUID, why: Attempt) -> None:
        """Email consent withdrawn: the person's waiting emails (pending or in a digest)
        are skipped, each with the reason in its delivery log."""
        await self.notifications.update_many(
            {
                "person_id": person_id,
                "email_status": {
                    "$in": [DeliveryStatus.PENDING.value, DeliveryStatus.DIGEST.value]
                },
            },
            {
                "$set": {"email_status": DeliveryStatus.SKIPPED.value},
                "$unset": {"email_next_attempt_at": "", "email_claim": "", "email_lease": ""},
                "$push": {"deliveries": _attempts([why])[0]},
            },
            session=tx.session,
        )

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

    # --- channels ------------------------------------------------------------------------
    async def due(self, channel: Channel, now: datetime, limit: int) -> list[Notification]:
        # a pending delivery always has a next attempt time (no $or: it would scan)
        cursor = self.notifications.find(
            {
                f"{channel}_status": DeliveryStatus.PENDING.value,
                f"{channel}_next_attempt_at": {"$lte": now},
            }
        ).limit(limit)
        return [_notification(d) async for d in cursor]

    async def claim_due(
        self, channel: Channel, now: datetime, until: datetime, limit: int
    ) -> list[Notification]:
        """Lease up to ``limit`` due deliveries of a channel in one write, so two
        replicas never send the same one; returns what this process got."""
        due = await self.due(channel, now, limit)
        if not due:
            return []
        token = uuid.uuid4().hex
        result = await in_transaction(
            self.db,
            lambda session: self.notifications.update_many(
                {
                    "_id": {"$in": [n.notification_id for n in due]},
                    f"{channel}_status": DeliveryStatus.PENDING.value,
                    f"{channel}_next_attempt_at": {"$lte": now},
                },
                {"$set": {f"{channel}_next_attempt_at": until, f"{channel}_claim": token}},
                session=session,
            ),
        )
        if result.modified_count == len(due):
            return due  # the usual case: nobody else was claiming, no second read
        cursor = self.notifications.find({f"{channel}_claim": token})
        return [_notification(d) async for d in cursor]

    async def record_sent(
        self, tx: Transaction, channel: Channel, ids: list[uuid.UUID], attempt: Attempt
    ) -> None:
        """Mark a batch sent and log the attempt on each, in one write."""
        await self.notifications.update_many(
            {"_id": {"$in": ids}},
            {
                "$set": {
                    f"{channel}_status": DeliveryStatus.SENT.value,
                    f"{channel}_sent_at": attempt.at,
                    f"{channel}_last_error": None,
                    f"{channel}_next_attempt_at": None,
                },
                "$inc": {f"{channel}_attempts": 1},
                "$unset": {f"{channel}_claim": ""},
                "$push": {"deliveries": _attempts([attempt])[0]},
            },
            session=tx.session,
        )

    async def record_delivery(
        self,
        tx: Transaction | None,
        channel: Channel,
        notification_id: uuid.UUID,
        changes: Document,
        attempts: list[Attempt],
    ) -> None:
        """Change a channel's state and add its attempts to the log, in one write; the
        claim ends with it (a claim marks a delivery in flight)."""
        await self.notifications.update_one(
            {"_id": notification_id},
            {
                "$set": changes,
                "$unset": {f"{channel}_claim": ""},
                "$push": {"deliveries": {"$each": _attempts(attempts)}},
            },
            session=tx.session if tx else None,
        )

    async def release_held_email(
        self, tx: Transaction, notification_id: uuid.UUID, now: datetime
    ) -> None:
        """An email held for suggestions that have come: due now, unless in flight."""
        await self.notifications.update_one(
            {
                "_id": notification_id,
                "email_status": DeliveryStatus.PENDING.value,
                "email_claim": {"$exists": False},
                "email_next_attempt_at": {"$gt": now},
            },
            {"$set": {"email_next_attempt_at": now}},
            session=tx.session,
        )

    # --- suggestion entries and the digest --------------------------------------------
    async def entries_by_key(
        self, keys: list[str], session: AsyncClientSession
    ) -> dict[str, SuggestionEntry]:
        cursor = self.entries.find({"_id": {"$in": keys}}, session=session)
        return {d["_id"]: _entry(d) async for d in cursor}

    async def add_entries(self, tx: Transaction, entries: list[SuggestionEntry]) -> None:
        """Unique per recipient, person and opening (the ``_id``): a pair announced
        concurrently by two replicas is a write conflict or a duplicate key, and the
        loser's whole use case runs again and finds it announced."""
        if entries:
            await self.entries.insert_many([_entry_doc(e) for e in entries], session=tx.session)

    async def update_entry_suggestion(
        self, tx: Transaction, entry_id: str, suggestion: Document
    ) -> None:
        await self.entries.update_one(
            {"_id": entry_id}, {"$set": {"suggestion": suggestion}}, session=tx.session
        )

    async def move_entry(
        self,
        tx: Transaction,
        entry_id: str,
        notification_id: uuid.UUID,
        suggestion: Document,
    ) -> None:
        """A waiting entry announced by an alert instead of its digest."""
        await self.entries.update_one(
            {"_id": entry_id, "status": "waiting"},
            {
                "$set": {
                    "status": "announced",
                    "notification_id": notification_id,
                    "suggestion": suggestion,
                }
            },
            session=tx.session,
        )

    async def entries_for_opening(
        self, opening_id: str, session: AsyncClientSession
    ) -> list[SuggestionEntry]:
        cursor = self.entries.find({"opening_id": opening_id}, session=session)
        return [_entry(d) async for d in cursor]

    async def withdraw_entries(self, tx: Transaction, entry_ids: list[str]) -> None:
        await self.entries.update_many(
            {"_id": {"$in": entry_ids}, "status": "waiting"},
            {"$set": {"status": "withdrawn"}},
            session=tx.session,
        )

    async def digest_recipients_due(self, now: datetime) -> list[str]:
        """Whose digest is due: waiting suggestions, or items whose email waits for it."""
        waiting = await self.entries.distinct(
            "recipient_email", {"status": "waiting", "due_at": {"$lte": now}}
        )
        deferred = await self.notifications.distinct(
            "recipient_email",
            {"email_status": DeliveryStatus.DIGEST.value, "email_next_attempt_at": {"$lte": now}},
        )
        return sorted({*waiting, *deferred})

    async def waiting_entries(
        self, recipient_email: str, limit: int = 500
    ) -> list[SuggestionEntry]:
        cursor = (
            self.entries.find({"recipient_email": recipient_email.lower(), "status": "waiting"})
            .sort([("due_at", 1), ("score", -1)])
            .limit(limit)
        )
        return [_entry(d) async for d in cursor]

    async def due_entries(
        self, recipient_email: str, now: datetime, session: AsyncClientSession
    ) -> list[SuggestionEntry]:
        cursor = self.entries.find(
            {"recipient_email": recipient_email, "status": "waiting", "due_at": {"$lte": now}},
            session=session,
        ).sort([("person_id", 1), ("score", -1)])
        return [_entry(d) async for d in cursor]

    async def due_for_digest(
        self, recipient_email: str, now: datetime, session: AsyncClientSession
    ) -> list[Notification]:
        cursor = self.notifications.find(
            {
                "recipient_email": recipient_email,
                "email_status": DeliveryStatus.DIGEST.value,
                "email_next_attempt_at": {"$lte": now},
            },
            session=session,
        ).sort("created_at", 1)
        return [_notification(d) async for d in cursor]

    async def bundle(
        self,
        tx: Transaction,
        digest_id: uuid.UUID,
        entry_ids: list[str],
        notification_ids: list[uuid.UUID],
        attempt: Attempt,
    ) -> None:
        """Hand entries and deferred emails to the digest. Both updates name the state
        they found; a replica that bundled them first makes the counts differ, and the
        transaction is undone (raised as a write conflict, run again)."""
        if entry_ids:
            result = await self.entries.update_many(
                {"_id": {"$in": entry_ids}, "status": "waiting"},
                {"$set": {"status": "announced", "notification_id": digest_id}},
                session=tx.session,
            )
            if result.modified_count != len(entry_ids):
                raise BundledMeanwhile
        if notification_ids:
            result = await self.notifications.update_many(
                {"_id": {"$in": notification_ids}, "email_status": DeliveryStatus.DIGEST.value},
                {
                    "$set": {
                        "email_status": DeliveryStatus.BUNDLED.value,
                        "digest_id": digest_id,
                        "email_next_attempt_at": None,
                    },
                    "$push": {"deliveries": _attempts([attempt])[0]},
                },
                session=tx.session,
            )
            if result.modified_count != len(notification_ids):
                raise BundledMeanwhile

    async def replace_content(
        self, tx: Transaction, n: Notification, changes: Document | None = None
    ) -> None:
        """Write a notification's new facts and text (an alert its suggestions joined,
        an entry that became unavailable), with other ``changes``."""
        await self.notifications.update_one(
            {"_id": n.notification_id},
            {
                "$set": {
                    "facts": n.facts,
                    "subject": n.subject,
                    "body": n.body,
                    "email_body": n.email_body,
                    **(changes or {}),
                }
            },
            session=tx.session,
        )

    async def forget_tallies(self, tx: Transaction, recipients: list[str]) -> None:
        """Drop inbox tallies that a change made wrong; the next read counts afresh."""
        if recipients:
            await self.tallies.delete_many({"_id": {"$in": recipients}}, session=tx.session)

    async def get_in(
        self, notification_id: uuid.UUID, session: AsyncClientSession
    ) -> Notification | None:
        doc = await self.notifications.find_one({"_id": notification_id}, session=session)
        return _notification(doc) if doc else None

    async def find_by_cause(
        self, recipient_email: str, kind: str, cause_event_id: str, session: AsyncClientSession
    ) -> Notification | None:
        doc = await self.notifications.find_one(
            {
                "recipient_email": recipient_email.lower(),
                "kind": kind,
                "cause_event_id": cause_event_id,
            },
            session=session,
        )
        return _notification(doc) if doc else None

    # --- the daily email cap ------------------------------------------------------------
    async def take_email_slot(self, recipient_email: str, day: str, cap: int) -> bool:
        """Count one immediate email for the recipient's day, if the cap allows it.
        One conditional increment: two replicas can never both take the last slot."""
        key = f"{recipient_email.lower()}|{day}"
        result = await self.email_counts.update_one(
            {"_id": key, "sent": {"$lt": cap}}, {"$inc": {"sent": 1}}
        )
        if result.modified_count == 1:
            return True
        if cap <= 0:
            return False
        try:
            await self.email_counts.insert_one({"_id": key, "sent": 1, "day": day})
        except DuplicateKeyError:
            return False  # the day's count exists and is at the cap
        return True

    # --- escalation ------------------------------------------------------------------------
    async def due_escalations(self, now: datetime, limit: int) -> list[Notification]:
        cursor = self.notifications.find({"escalate_at": {"$lte": now}}).limit(limit)
        return [_notification(d) async for d in cursor]

    async def take_escalation(
        self, tx: Transaction, notification_id: uuid.UUID, now: datetime
    ) -> bool:
        """Clear the escalation timer; True if it was still due and the alert unread."""
        result = await self.notifications.update_one(
            {"_id": notification_id, "escalate_at": {"$lte": now}},
            [
                {
                    "$set": {
                        "escalate_at": None,
                        "escalated_at": {"$cond": [{"$eq": ["$read_at", None]}, now, None]},
                    }
                }
            ],
            session=tx.session,
        )
        if result.modified_count != 1:
            return False
        doc = await self.notifications.find_one(
            {"_id": notification_id}, {"escalated_at": 1}, session=tx.session
        )
        return bool(doc and doc.get("escalated_at"))

    async def anyone_read(self, n: Notification, session: AsyncClientSession) -> bool:
        """Has any recipient read the alert ``n`` is one copy of?"""
        return bool(
            await self.notifications.count_documents(
                {
                    "cause_event_id": n.cause_event_id,
                    "kind": n.kind.value,
                    "read_at": {"$ne": None},
                },
                session=session,
                limit=1,
            )
        )

    # --- erasure --------------------------------------------------------------------------
    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        """Erasure: who is responsible for the person, every notification about them
        (inbox entries, escalations, the email and webhook delivery log inside), and
        the attendance state of their enrolments. Preferences are the recipients'
        (staff), not the person's, and stay."""
        session = tx.session
        told = await self.notifications.distinct(
            "recipient_email", {"person_id": person_id}, session=session
        )
        await self.forget_tallies(tx, told)  # their counts change: counted afresh
        recipients = await self.recipients.delete_one({"_id": person_id}, session=session)
        notifications = await self.notifications.delete_many(
            {"person_id": person_id}, session=session
        )
        attendance = await self.attendance.delete_many({"person_id": person_id}, session=session)
        entries = await self.entries.delete_many({"person_id": person_id}, session=session)
        # digests are about many people: take this person's group and items out of them
        digests = await self.notifications.update_many(
            {
                "kind": "digest",
                "$or": [
                    {"facts.groups.person_id": str(person_id)},
                    {"facts.items.person_id": str(person_id)},
                ],
            },
            {
                "$pull": {
                    "facts.groups": {"person_id": str(person_id)},
                    "facts.items": {"person_id": str(person_id)},
                }
            },
            session=session,
        )
        return {
            "recipients": recipients.deleted_count,
            "notifications": notifications.deleted_count,
            "attendance": attendance.deleted_count,
            "suggestion_entries": entries.deleted_count,
            "digests_changed": digests.modified_count,
        }

    # --- preferences and attendance -------------------------------------------------------
    async def preferences_of(
        self, recipient_email: str, session: AsyncClientSession | None = None
    ) -> Preferences:
        doc = await self.preferences.find_one({"_id": recipient_email.lower()}, session=session)
        return Preferences.model_validate(doc) if doc else Preferences()

    async def save_preferences(self, recipient_email: str, prefs: Preferences) -> None:
        await self.preferences.replace_one(
            {"_id": recipient_email.lower()},
            {"_id": recipient_email.lower(), **prefs.model_dump(mode="json")},
            upsert=True,
        )

    async def attendance_of(
        self, enrolment_id: uuid.UUID, session: AsyncClientSession
    ) -> AttendanceState:
        doc = await self.attendance.find_one({"_id": enrolment_id}, session=session)
        if doc is None:
            return AttendanceState(enrolment_id=enrolment_id)
        return AttendanceState(
            enrolment_id=enrolment_id, at_risk=doc["at_risk"], last_alert_at=doc["last_alert_at"]
        )

    async def save_attendance(
        self, tx: Transaction, state: AttendanceState, person_id: uuid.UUID | None = None
    ) -> None:
        """``person_id``: whose enrolment it is, so an erasure finds the state."""
        await self.attendance.replace_one(
            {"_id": state.enrolment_id},
            {
                "_id": state.enrolment_id,
                "at_risk": state.at_risk,
                "last_alert_at": state.last_alert_at,
                **({"person_id": person_id} if person_id is not None else {}),
            },
            upsert=True,
            session=tx.session,
        )


def _doc(n: Notification) -> Document:
    doc = to_document(n, "notification_id", native=(*_DATES, *_UUIDS))
    doc["recipient_email"] = n.recipient_email.lower()
    if doc["escalate_at"] is None:
        # left out, not null: the sparse index then holds only alerts that can escalate.
        # With a null in every notification, SecantusDB's range scan for due escalations
        # walked them all: 850 ms at 10,000 notifications, once a second.
        del doc["escalate_at"]
    return doc


# kept as BSON dates (JSON mode would turn them into strings that sort and compare wrongly)
_DATES = (
    "created_at",
    "updated_at",
    "read_at",
    "archived_at",
    "escalate_at",
    "escalated_at",
    "email_next_attempt_at",
    "email_sent_at",
    "webhook_next_attempt_at",
    "webhook_sent_at",
)
_UUIDS = ("person_id", "digest_id")


def _entry_doc(e: SuggestionEntry) -> Document:
    return to_document(
        e, "entry_id", native=("person_id", "notification_id", "created_at", "due_at")
    )


def _entry(doc: Document) -> SuggestionEntry:
    return from_document(SuggestionEntry, doc, "entry_id")


def _attempts(attempts: list[Attempt]) -> list[Document]:
    return [{**a.model_dump(mode="json"), "at": a.at} for a in attempts]


def _notification(doc: Document) -> Notification:
    return from_document(Notification, doc, "notification_id", drop=("email_lease",))
