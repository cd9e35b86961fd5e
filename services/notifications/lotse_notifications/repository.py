"""Where notifications keeps recipients (read model), the notifications themselves, the
suggestion entries of the digest, preferences and attendance: the store the use cases
see (a port), and its MongoDB adapter. Every method takes the transaction it runs in,
reads included; a read outside one (an HTTP view, a delivery loop) passes none."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from lotse_shared.persistence.documents import from_document, to_document
from lotse_shared.persistence.mongo import in_transaction, save_if_newer, session_of
from lotse_shared.persistence.unit import Transaction

from .domain.model import (
    OPTIONAL_CHANNELS,
    Attempt,
    AttendanceState,
    Channel,
    ChannelState,
    DeliveryStatus,
    Notification,
    Preferences,
    Recipients,
    SuggestionEntry,
)

if TYPE_CHECKING:
    from .inbox import InboxCounts, InboxFilter, InboxPage, InboxStore

Document = dict[str, Any]
# ensure_indexes drops these, whose keys were the flat ``email_status``, ``email_claim``
# ... of before a channel's state became a sub-document (and the unused digest lease).
# Documents of that shape were not migrated: no deployment held any.
# the claim indexes: every write of a notification paid for them (SecantusDB rewrites each
# index entry on an update); a claim is read back by the ids claimed instead
OBSOLETE_INDEXES = (
    "outgoing",
    "webhooks",
    "digest_lease",
    "email_claim",
    "webhook_claim",
    "email_claimed",
    "webhook_claimed",
)


class Notifications(Protocol):
    """What notifications' use cases (handlers.py, delivery.py) read and write."""

    # --- recipients -------------------------------------------------------------------
    async def save_recipients(self, tx: Transaction, r: Recipients) -> bool:
        """Keep the snapshot unless the same or a newer ``revision`` is kept (events
        travel on separate queues: an older one can arrive last); False if ignored."""

    async def recipients_of(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Recipients | None: ...

    async def skip_emails_of(self, tx: Transaction, person_id: uuid.UUID, why: Attempt) -> None:
        """Email consent withdrawn: the person's waiting emails (pending or in a digest)
        are skipped, each with the reason in its delivery log."""

    # --- notifications ----------------------------------------------------------------
    async def add(self, tx: Transaction, notifications: list[Notification]) -> None:
        """Unique per recipient, kind and cause (a duplicate raises PyMongo's
        DuplicateKeyError: the use case checks ``exists`` first)."""

    async def exists(
        self, recipient_email: str, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> bool: ...

    async def told_of(
        self, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> set[str]:
        """The (lower-case) addresses that have a notification of this kind for this cause."""

    async def get(
        self, notification_id: uuid.UUID, tx: Transaction | None = None
    ) -> Notification | None: ...

    async def find_by_cause(
        self, recipient_email: str, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> Notification | None: ...

    async def replace_content(
        self,
        tx: Transaction,
        n: Notification,
        changes: Document | None = None,
        release_email_at: datetime | None = None,
    ) -> None:
        """Write a notification's new facts and text (an alert its suggestions joined,
        an entry that became unavailable), with other ``changes``; with
        ``release_email_at``, an email held for them is due then, unless in flight (or
        not pending, or due sooner)."""

    async def forget_tallies(self, tx: Transaction, recipients: list[str]) -> None:
        """Drop inbox tallies that a change made wrong; the next read counts afresh."""

    # --- channels ---------------------------------------------------------------------
    async def claim_due(
        self, channel: Channel, now: datetime, until: datetime, limit: int
    ) -> list[Notification]:
        """Lease up to ``limit`` deliveries of a channel that are pending and due by
        ``now`` (their next attempt moves to ``until``), so two replicas never send the
        same one; returns what this process got."""

    async def next_due(self, channels: list[Channel]) -> datetime | None:
        """When the earliest of these falls due: a pending delivery on one of these
        channels (a claim's end included), an email deferred to the digest, a waiting
        digest entry, an escalation. None if nothing waits."""

    async def record_sent(
        self, tx: Transaction, channel: Channel, ids: list[uuid.UUID], attempt: Attempt
    ) -> None:
        """Mark a batch sent (attempts counted, no error, nothing due) and log the
        attempt on each."""

    async def record_delivery(
        self,
        tx: Transaction | None,
        channel: Channel,
        notification_id: uuid.UUID,
        changes: Mapping[str, Any],
        attempts: list[Attempt],
    ) -> None:
        """Change a channel's state (``changes``: fields of its :class:`ChannelState`)
        and add its attempts to the log; the claim ends with it (a claim marks a
        delivery in flight)."""

    # --- suggestion entries and the digest --------------------------------------------
    async def entries_by_key(
        self, keys: list[str], tx: Transaction | None = None
    ) -> dict[str, SuggestionEntry]: ...

    async def add_entries(self, tx: Transaction, entries: list[SuggestionEntry]) -> None:
        """Unique per recipient, person and opening (the ``entry_id``)."""

    async def update_entry_suggestion(
        self, tx: Transaction, entry_id: str, suggestion: Document
    ) -> None: ...

    async def move_entry(
        self, tx: Transaction, entry_id: str, notification_id: uuid.UUID, suggestion: Document
    ) -> None:
        """A waiting entry announced by an alert instead of its digest."""

    async def entries_for_opening(
        self, opening_id: str, tx: Transaction | None = None
    ) -> list[SuggestionEntry]: ...

    async def withdraw_entries(self, tx: Transaction, entry_ids: list[str]) -> None:
        """Those still waiting are withdrawn (closed before their digest)."""

    async def waiting_entries(
        self, recipient_email: str, limit: int = 500, tx: Transaction | None = None
    ) -> list[SuggestionEntry]:
        """Soonest due first, then best score first."""

    async def digest_recipients_due(
        self, now: datetime, tx: Transaction | None = None
    ) -> list[str]:
        """Whose digest is due: waiting suggestions, or items whose email waits for it."""

    async def due_entries(
        self, recipient_email: str, now: datetime, tx: Transaction | None = None
    ) -> list[SuggestionEntry]:
        """Waiting and due, by person, best score first."""

    async def due_for_digest(
        self, recipient_email: str, now: datetime, tx: Transaction | None = None
    ) -> list[Notification]:
        """Emails deferred to the digest and due, oldest first."""

    async def bundle(
        self,
        tx: Transaction,
        digest_id: uuid.UUID,
        entry_ids: list[str],
        notification_ids: list[uuid.UUID],
        attempt: Attempt,
    ) -> None:
        """Hand waiting entries and deferred emails to the digest; if a replica bundled
        any of them first, raises :class:`BundledMeanwhile` (run again)."""

    # --- the daily email cap ----------------------------------------------------------
    async def take_email_slots(self, recipient_email: str, day: str, cap: int, wanted: int) -> int:
        """Count up to ``wanted`` immediate emails for the recipient's day, as far as the
        cap allows; returns how many were counted. Two replicas can never both take the
        last slot."""

    # --- escalation -------------------------------------------------------------------
    async def due_escalations(
        self, now: datetime, limit: int, tx: Transaction | None = None
    ) -> list[Notification]: ...

    async def take_escalation(
        self, tx: Transaction, notification_id: uuid.UUID, now: datetime
    ) -> bool:
        """Clear the escalation timer; True if it was still due and the alert unread
        (then ``escalated_at`` is ``now``)."""

    async def anyone_read(self, n: Notification, tx: Transaction | None = None) -> bool:
        """Has any recipient read the alert ``n`` is one copy of (same cause and kind)?"""

    # --- erasure ----------------------------------------------------------------------
    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        """Erasure: who is responsible for the person, every notification about them
        (inbox entries, escalations, the email and webhook delivery log inside), the
        attendance state of their enrolments and their suggestion entries; digests
        lose their group and items. Preferences are the recipients' (staff), not the
        person's, and stay."""

    # --- preferences and attendance ---------------------------------------------------
    async def preferences_of(
        self, recipient_email: str, tx: Transaction | None = None
    ) -> Preferences:
        """The recipient's (any case of the address), or the defaults."""

    async def preferences_for(
        self, recipient_emails: list[str], tx: Transaction | None = None
    ) -> dict[str, Preferences]:
        """Each recipient's, by lower-case address (the defaults for one with none)."""

    async def save_preferences(self, recipient_email: str, prefs: Preferences) -> None: ...

    async def attendance_of(
        self, enrolment_id: uuid.UUID, tx: Transaction | None = None
    ) -> AttendanceState: ...

    async def save_attendance(
        self, tx: Transaction, state: AttendanceState, person_id: uuid.UUID | None = None
    ) -> None:
        """``person_id``: whose enrolment it is, so an erasure finds the state."""

    # --- the inbox (inbox.py on MongoDB) ----------------------------------------------
    async def mark_read(
        self, notification_id: uuid.UUID, at: datetime, *, archive: bool = False
    ) -> Notification | None:
        """Read (or archive, which reads too); idempotent; None if unknown. An email
        still waiting for its time is not sent any more (the log says why)."""

    async def read_all(self, f: InboxFilter, at: datetime, district_id: str | None = None) -> int:
        """Mark every unread item of the filter read, stopping their waiting emails
        (``district_id``: only that district's); returns how many."""

    async def inbox_page(
        self, f: InboxFilter, *, offset: int, limit: int, now: datetime, counted: bool = True
    ) -> InboxPage:
        """Unread first, newest first (the archive: newest first); ``counted=False``
        leaves out the counts."""

    async def inbox_counts(self, recipient: str, now: datetime) -> InboxCounts: ...

    async def unread_by_person(
        self, recipient: str, district_id: str | None = None
    ) -> dict[uuid.UUID, int]:
        """Unread, not archived notifications per person they name (digests name none);
        ``district_id``: only that district's."""


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


class NotificationsRepository(Notifications):
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
        existing = {ix["name"] async for ix in await self.notifications.list_indexes()}
        for index in existing.intersection(OBSOLETE_INDEXES):
            await self.notifications.drop_index(index)
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
                IndexModel([("email.status", 1), ("email.next_attempt_at", 1)], name="email_due"),
                IndexModel(
                    [("webhook.status", 1), ("webhook.next_attempt_at", 1)], name="webhook_due"
                ),
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
        return await save_if_newer(self.recipients, to_document(r, "person_id"), session_of(tx))

    async def recipients_of(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Recipients | None:
        doc = await self.recipients.find_one({"_id": person_id}, session=session_of(tx))
        if doc is None:
            return None
        return from_document(Recipients, doc, "person_id")

    async def skip_emails_of(self, tx: Transaction, person_id: uuid.UUID, why: Attempt) -> None:
        await self.notifications.update_many(
            {
                "person_id": person_id,
                "email.status": {
                    "$in": [DeliveryStatus.PENDING.value, DeliveryStatus.DIGEST.value]
                },
            },
            {
                "$set": channel_update(
                    Channel.EMAIL, status=DeliveryStatus.SKIPPED, next_attempt_at=None
                ),
                "$unset": {_path(Channel.EMAIL, "claim"): ""},
                "$push": {"deliveries": _attempts([why])[0]},
            },
            session=session_of(tx),
        )

    # --- notifications ------------------------------------------------------------------
    async def add(self, tx: Transaction, notifications: list[Notification]) -> None:
        if notifications:
            await self.notifications.insert_many(
                [_doc(n) for n in notifications], session=session_of(tx)
            )

    async def exists(
        self, recipient_email: str, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> bool:
        return bool(
            await self.notifications.count_documents(
                {
                    "recipient_email": recipient_email,
                    "kind": kind,
                    "cause_event_id": cause_event_id,
                },
                session=session_of(tx),
                limit=1,
            )
        )

    async def told_of(
        self, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> set[str]:
        return {
            d["recipient_email"]
            async for d in self.notifications.find(
                {"cause_event_id": cause_event_id, "kind": kind},
                {"recipient_email": 1, "_id": 0},
                session=session_of(tx),
            )
        }

    async def get(
        self, notification_id: uuid.UUID, tx: Transaction | None = None
    ) -> Notification | None:
        doc = await self.notifications.find_one({"_id": notification_id}, session=session_of(tx))
        return _notification(doc) if doc else None

    # --- channels ------------------------------------------------------------------------
    async def due(
        self, channel: Channel, now: datetime, limit: int, tx: Transaction | None = None
    ) -> list[Notification]:
        # a pending delivery always has a next attempt time (no $or: it would scan)
        cursor = self.notifications.find(
            {
                _path(channel, "status"): DeliveryStatus.PENDING.value,
                _path(channel, "next_attempt_at"): {"$lte": now},
            },
            session=session_of(tx),
        ).limit(limit)
        return [_notification(d) async for d in cursor]

    async def claim_due(
        self, channel: Channel, now: datetime, until: datetime, limit: int
    ) -> list[Notification]:
        """In one write for the batch."""
        due = await self.due(channel, now, limit)
        if not due:
            return []
        token = uuid.uuid4().hex
        result = await in_transaction(
            self.db,
            lambda session: self.notifications.update_many(
                {
                    "_id": {"$in": [n.notification_id for n in due]},
                    _path(channel, "status"): DeliveryStatus.PENDING.value,
                    _path(channel, "next_attempt_at"): {"$lte": now},
                },
                {
                    "$set": {
                        **channel_update(channel, next_attempt_at=until),
                        _path(channel, "claim"): token,
                    }
                },
                session=session,
            ),
        )
        if result.modified_count == len(due):
            return due  # the usual case: nobody else was claiming, no second read
        # another replica claimed some of them: read back which are ours (by _id)
        ids = [n.notification_id for n in due]
        cursor = self.notifications.find({"_id": {"$in": ids}, _path(channel, "claim"): token})
        return [_notification(d) async for d in cursor]

    async def record_sent(
        self, tx: Transaction, channel: Channel, ids: list[uuid.UUID], attempt: Attempt
    ) -> None:
        """In one write for the batch."""
        await self.notifications.update_many(
            {"_id": {"$in": ids}},
            {
                "$set": channel_update(
                    channel,
                    status=DeliveryStatus.SENT,
                    sent_at=attempt.at,
                    last_error=None,
                    next_attempt_at=None,
                ),
                "$inc": {_path(channel, "attempts"): 1},
                "$unset": {_path(channel, "claim"): ""},
                "$push": {"deliveries": _attempts([attempt])[0]},
            },
            session=session_of(tx),
        )

    async def record_delivery(
        self,
        tx: Transaction | None,
        channel: Channel,
        notification_id: uuid.UUID,
        changes: Mapping[str, Any],
        attempts: list[Attempt],
    ) -> None:
        """In one write."""
        await self.notifications.update_one(
            {"_id": notification_id},
            {
                "$set": channel_update(channel, **changes),
                "$unset": {_path(channel, "claim"): ""},
                "$push": {"deliveries": {"$each": _attempts(attempts)}},
            },
            session=session_of(tx),
        )

    # --- suggestion entries and the digest --------------------------------------------
    async def entries_by_key(
        self, keys: list[str], tx: Transaction | None = None
    ) -> dict[str, SuggestionEntry]:
        cursor = self.entries.find({"_id": {"$in": keys}}, session=session_of(tx))
        return {d["_id"]: _entry(d) async for d in cursor}

    async def add_entries(self, tx: Transaction, entries: list[SuggestionEntry]) -> None:
        """Unique per recipient, person and opening (the ``_id``): a pair announced
        concurrently by two replicas is a write conflict or a duplicate key, and the
        loser's whole use case runs again and finds it announced."""
        if entries:
            await self.entries.insert_many([_entry_doc(e) for e in entries], session=session_of(tx))

    async def update_entry_suggestion(
        self, tx: Transaction, entry_id: str, suggestion: Document
    ) -> None:
        await self.entries.update_one(
            {"_id": entry_id}, {"$set": {"suggestion": suggestion}}, session=session_of(tx)
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
            session=session_of(tx),
        )

    async def entries_for_opening(
        self, opening_id: str, tx: Transaction | None = None
    ) -> list[SuggestionEntry]:
        cursor = self.entries.find({"opening_id": opening_id}, session=session_of(tx))
        return [_entry(d) async for d in cursor]

    async def withdraw_entries(self, tx: Transaction, entry_ids: list[str]) -> None:
        await self.entries.update_many(
            {"_id": {"$in": entry_ids}, "status": "waiting"},
            {"$set": {"status": "withdrawn"}},
            session=session_of(tx),
        )

    async def next_due(self, channels: list[Channel]) -> datetime | None:
        # each an indexed range read in index order: one document per query
        since = {"$gt": datetime(1970, 1, 1, tzinfo=UTC)}
        pending = DeliveryStatus.PENDING.value
        looks: list[tuple[AsyncCollection[Document], Document, str]] = [
            (self.notifications, {_path(ch, "status"): pending}, _path(ch, "next_attempt_at"))
            for ch in channels
        ]
        looks += [
            (
                self.notifications,
                {"email.status": DeliveryStatus.DIGEST.value},
                "email.next_attempt_at",
            ),
            (self.entries, {"status": "waiting"}, "due_at"),
            (self.notifications, {}, "escalate_at"),
        ]
        found: list[datetime] = []
        for collection, query, at in looks:
            first = (
                await collection.find({**query, at: since}, {at: 1}).sort(at, 1).limit(1).to_list()
            )
            if first:
                value: Any = first[0]
                for key in at.split("."):  # "email.next_attempt_at": a sub-document's
                    value = value[key]
                found.append(value)
        return min(found, default=None)

    async def digest_recipients_due(
        self, now: datetime, tx: Transaction | None = None
    ) -> list[str]:
        waiting = await self.entries.distinct(
            "recipient_email",
            {"status": "waiting", "due_at": {"$lte": now}},
            session=session_of(tx),
        )
        deferred = await self.notifications.distinct(
            "recipient_email",
            {"email.status": DeliveryStatus.DIGEST.value, "email.next_attempt_at": {"$lte": now}},
            session=session_of(tx),
        )
        return sorted({*waiting, *deferred})

    async def waiting_entries(
        self, recipient_email: str, limit: int = 500, tx: Transaction | None = None
    ) -> list[SuggestionEntry]:
        cursor = (
            self.entries.find(
                {"recipient_email": recipient_email.lower(), "status": "waiting"},
                session=session_of(tx),
            )
            .sort([("due_at", 1), ("score", -1)])
            .limit(limit)
        )
        return [_entry(d) async for d in cursor]

    async def due_entries(
        self, recipient_email: str, now: datetime, tx: Transaction | None = None
    ) -> list[SuggestionEntry]:
        cursor = self.entries.find(
            {"recipient_email": recipient_email, "status": "waiting", "due_at": {"$lte": now}},
            session=session_of(tx),
        ).sort([("person_id", 1), ("score", -1)])
        return [_entry(d) async for d in cursor]

    async def due_for_digest(
        self, recipient_email: str, now: datetime, tx: Transaction | None = None
    ) -> list[Notification]:
        cursor = self.notifications.find(
            {
                "recipient_email": recipient_email,
                "email.status": DeliveryStatus.DIGEST.value,
                "email.next_attempt_at": {"$lte": now},
            },
            session=session_of(tx),
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
        """Both updates name the state they found; a replica that bundled them first
        makes the counts differ, and the transaction is undone (raised as a write
        conflict, run again)."""
        if entry_ids:
            result = await self.entries.update_many(
                {"_id": {"$in": entry_ids}, "status": "waiting"},
                {"$set": {"status": "announced", "notification_id": digest_id}},
                session=session_of(tx),
            )
            if result.modified_count != len(entry_ids):
                raise BundledMeanwhile
        if notification_ids:
            result = await self.notifications.update_many(
                {"_id": {"$in": notification_ids}, "email.status": DeliveryStatus.DIGEST.value},
                {
                    "$set": {
                        **channel_update(
                            Channel.EMAIL, status=DeliveryStatus.BUNDLED, next_attempt_at=None
                        ),
                        "digest_id": digest_id,
                    },
                    "$push": {"deliveries": _attempts([attempt])[0]},
                },
                session=session_of(tx),
            )
            if result.modified_count != len(notification_ids):
                raise BundledMeanwhile

    async def replace_content(
        self,
        tx: Transaction,
        n: Notification,
        changes: Document | None = None,
        release_email_at: datetime | None = None,
    ) -> None:
        """In one write, the release too (it was a second one on a document with many
        indexes, each write of which SecantusDB pays per index): a pipeline update, its
        values literals, the release a condition on the email's state as stored."""
        content = {
            "facts": n.facts,
            "subject": n.subject,
            "body": n.body,
            "email_body": n.email_body,
            **(changes or {}),
        }
        stage: Document = {k: {"$literal": v} for k, v in content.items()}
        if release_email_at is not None:
            held = {
                "$and": [
                    {"$eq": ["$email.status", DeliveryStatus.PENDING.value]},
                    {"$eq": [{"$type": "$email.claim"}, "missing"]},
                    {"$gt": ["$email.next_attempt_at", release_email_at]},
                ]
            }
            due = {"$cond": [held, release_email_at, "$email.next_attempt_at"]}
            stage["email"] = {"$mergeObjects": ["$email", {"next_attempt_at": due}]}
        await self.notifications.update_one(
            {"_id": n.notification_id}, [{"$set": stage}], session=session_of(tx)
        )

    async def forget_tallies(self, tx: Transaction, recipients: list[str]) -> None:
        if recipients:
            await self.tallies.delete_many({"_id": {"$in": recipients}}, session=session_of(tx))

    async def find_by_cause(
        self, recipient_email: str, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> Notification | None:
        doc = await self.notifications.find_one(
            {
                "recipient_email": recipient_email.lower(),
                "kind": kind,
                "cause_event_id": cause_event_id,
            },
            session=session_of(tx),
        )
        return _notification(doc) if doc else None

    # --- the daily email cap ------------------------------------------------------------
    async def take_email_slots(self, recipient_email: str, day: str, cap: int, wanted: int) -> int:
        """One atomic write for a round's emails to the recipient (it was one per email):
        the count becomes ``min(cap, count + wanted)``, never less than it was, and the
        count before says how many were taken. Two replicas can never both take the last
        slot. The day's first count is an insert, not an upsert: SecantusDB answers two
        concurrent upserts of a missing document both with "there was none"."""
        if cap <= 0 or wanted <= 0:
            return 0
        key = f"{recipient_email.lower()}|{day}"
        sent = {"$ifNull": ["$sent", 0]}
        for _ in range(3):
            before = await self.email_counts.find_one_and_update(
                {"_id": key},
                [{"$set": {"sent": {"$max": [sent, {"$min": [cap, {"$add": [sent, wanted]}]}]}}}],
                return_document=ReturnDocument.BEFORE,
            )
            if before is not None:
                counted = int(before.get("sent", 0))
                return max(0, min(cap, counted + wanted) - counted)
            try:
                await self.email_counts.insert_one(
                    {"_id": key, "sent": min(cap, wanted), "day": day}
                )
            except DuplicateKeyError:
                continue  # another replica counted the day's first: add to its count
            return min(cap, wanted)
        return 0

    # --- escalation ------------------------------------------------------------------------
    async def due_escalations(
        self, now: datetime, limit: int, tx: Transaction | None = None
    ) -> list[Notification]:
        cursor = self.notifications.find(
            {"escalate_at": {"$lte": now}}, session=session_of(tx)
        ).limit(limit)
        return [_notification(d) async for d in cursor]

    async def take_escalation(
        self, tx: Transaction, notification_id: uuid.UUID, now: datetime
    ) -> bool:
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
            session=session_of(tx),
        )
        if result.modified_count != 1:
            return False
        doc = await self.notifications.find_one(
            {"_id": notification_id}, {"escalated_at": 1}, session=session_of(tx)
        )
        return bool(doc and doc.get("escalated_at"))

    async def anyone_read(self, n: Notification, tx: Transaction | None = None) -> bool:
        return bool(
            await self.notifications.count_documents(
                {
                    "cause_event_id": n.cause_event_id,
                    "kind": n.kind.value,
                    "read_at": {"$ne": None},
                },
                session=session_of(tx),
                limit=1,
            )
        )

    # --- erasure --------------------------------------------------------------------------
    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        session = session_of(tx)
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
        self, recipient_email: str, tx: Transaction | None = None
    ) -> Preferences:
        doc = await self.preferences.find_one(
            {"_id": recipient_email.lower()}, session=session_of(tx)
        )
        return Preferences.model_validate(doc) if doc else Preferences()

    async def preferences_for(
        self, recipient_emails: list[str], tx: Transaction | None = None
    ) -> dict[str, Preferences]:
        wanted = sorted({e.lower() for e in recipient_emails})
        found = {
            d["_id"]: Preferences.model_validate(d)
            async for d in self.preferences.find({"_id": {"$in": wanted}}, session=session_of(tx))
        }
        return {e: found.get(e) or Preferences() for e in wanted}

    async def save_preferences(self, recipient_email: str, prefs: Preferences) -> None:
        await self.preferences.replace_one(
            {"_id": recipient_email.lower()},
            {"_id": recipient_email.lower(), **prefs.model_dump(mode="json")},
            upsert=True,
        )

    async def attendance_of(
        self, enrolment_id: uuid.UUID, tx: Transaction | None = None
    ) -> AttendanceState:
        doc = await self.attendance.find_one({"_id": enrolment_id}, session=session_of(tx))
        if doc is None:
            return AttendanceState(enrolment_id=enrolment_id)
        return AttendanceState(
            enrolment_id=enrolment_id, at_risk=doc["at_risk"], last_alert_at=doc["last_alert_at"]
        )

    async def save_attendance(
        self, tx: Transaction, state: AttendanceState, person_id: uuid.UUID | None = None
    ) -> None:
        await self.attendance.replace_one(
            {"_id": state.enrolment_id},
            {
                "_id": state.enrolment_id,
                "at_risk": state.at_risk,
                "last_alert_at": state.last_alert_at,
                **({"person_id": person_id} if person_id is not None else {}),
            },
            upsert=True,
            session=session_of(tx),
        )

    # --- the inbox: read and counted at volume in inbox.py ---------------------------------
    @functools.cached_property
    def inbox(self) -> InboxStore:
        from .inbox import InboxStore  # it builds on this module's documents

        return InboxStore(self)

    async def mark_read(
        self, notification_id: uuid.UUID, at: datetime, *, archive: bool = False
    ) -> Notification | None:
        return await self.inbox.mark(notification_id, at, archive=archive)

    async def read_all(self, f: InboxFilter, at: datetime, district_id: str | None = None) -> int:
        return await self.inbox.read_all(f, at, district_id)

    async def inbox_page(
        self, f: InboxFilter, *, offset: int, limit: int, now: datetime, counted: bool = True
    ) -> InboxPage:
        return await self.inbox.page(f, offset=offset, limit=limit, now=now, counted=counted)

    async def inbox_counts(self, recipient: str, now: datetime) -> InboxCounts:
        return await self.inbox.counts(recipient, now)

    async def unread_by_person(
        self, recipient: str, district_id: str | None = None
    ) -> dict[uuid.UUID, int]:
        return await self.inbox.unread_by_person(recipient, district_id)


def channel_update(channel: Channel, **changes: Any) -> Document:
    """A ``$set`` of fields of one channel's :class:`ChannelState`, as stored:
    ``channel_update(Channel.EMAIL, status=DeliveryStatus.SENT)`` is
    ``{"email.status": "sent"}``. Timestamps stay BSON dates."""
    unknown = changes.keys() - ChannelState.model_fields.keys()
    if unknown:
        raise ValueError(f"not a field of a channel's state: {sorted(unknown)}")
    return {
        _path(channel, name): value.value if isinstance(value, Enum) else value
        for name, value in changes.items()
    }


def _path(channel: Channel, name: str) -> str:
    """Where a field of a channel's state is stored (``claim``: the repository's own)."""
    if channel not in OPTIONAL_CHANNELS:
        raise ValueError(f"no delivery state for the {channel} channel")
    return f"{channel.value}.{name}"


def _channel_doc(state: ChannelState) -> Document:
    doc = state.model_dump(mode="json")
    doc.update({name: getattr(state, name) for name in _CHANNEL_DATES})
    return doc


def _doc(n: Notification) -> Document:
    doc = to_document(n, "notification_id", native=(*_DATES, *_UUIDS))
    doc["recipient_email"] = n.recipient_email.lower()
    for ch in OPTIONAL_CHANNELS:
        doc[ch.value] = _channel_doc(n.channel(ch))
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
)
_CHANNEL_DATES = ("next_attempt_at", "sent_at")
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
    return from_document(Notification, doc, "notification_id")
