"""notifications' store in memory, behaving as ``NotificationsRepository`` (and, for the
inbox, ``InboxStore``) do on MongoDB; and a sender that records what it was given.

Reads hand out copies and writes keep copies, as a database does: a use case that
changes a model it read has changed nothing until it writes. Natural order is the
order of insertion. The inbox counts are counted afresh on every read (MongoDB keeps
a tally of settled notifications that an erasure makes stale for up to an hour).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from lotse_notifications.domain.model import (
    Attempt,
    AttendanceState,
    Channel,
    DeliveryStatus,
    Notification,
    Preferences,
    Recipients,
    SuggestionEntry,
)
from lotse_notifications.failures import PermanentDeliveryError, TemporaryDeliveryError
from lotse_notifications.inbox import READ_BEFORE_SENT, InboxCounts, InboxFilter, InboxPage
from lotse_notifications.repository import BundledMeanwhile, Notifications
from lotse_shared.persistence.unit import Transaction

from .unit_of_work import InMemoryUnitOfWork, MemoryStore

Document = dict[str, Any]
WAITING = (DeliveryStatus.PENDING, DeliveryStatus.DIGEST)  # the email is not out yet
EARLIEST = datetime.min.replace(tzinfo=UTC)


def _changed(n: Notification, changes: Document) -> Notification:
    """``n`` with fields set as a ``$set`` of them would (values as stored)."""
    return Notification.model_validate({**n.model_dump(), **changes})


def _key(n: Notification) -> Document:
    """What inbox.py reads of a notification to filter and count it."""
    return {
        "_id": n.notification_id,
        "recipient_email": n.recipient_email,
        "kind": n.kind.value,
        "person_id": n.person_id,
        "district_id": n.district_id,
        "created_at": n.created_at,
        "read_at": n.read_at,
        "archived_at": n.archived_at,
        "email": {"status": n.email.status.value},
    }


def _unread(n: Notification) -> bool:
    return n.read_at is None and n.archived_at is None


class InMemoryNotifications(MemoryStore, Notifications):
    recipients: dict[uuid.UUID, Recipients]
    notifications: dict[uuid.UUID, Notification]
    claims: set[tuple[uuid.UUID, Channel]]  # deliveries in flight
    entries: dict[str, SuggestionEntry]
    preferences: dict[str, Preferences]
    attendance: dict[uuid.UUID, tuple[AttendanceState, uuid.UUID | None]]  # with whose
    email_counts: dict[str, int]  # "<recipient>|<day>" -> emails sent

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        super().__init__(uow)
        self.recipients = {}
        self.notifications = {}
        self.claims = set()
        self.entries = {}
        self.preferences = {}
        self.attendance = {}
        self.email_counts = {}

    # --- recipients -------------------------------------------------------------------
    async def save_recipients(self, tx: Transaction, r: Recipients) -> bool:
        kept = self.recipients.get(r.person_id)
        if kept is not None and kept.revision >= r.revision:
            return False
        self.recipients[r.person_id] = r.model_copy(deep=True)
        return True

    async def recipients_of(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Recipients | None:
        found = self.recipients.get(person_id)
        return found.model_copy(deep=True) if found else None

    async def skip_emails_of(self, tx: Transaction, person_id: uuid.UUID, why: Attempt) -> None:
        for n in self.notifications.values():
            if n.person_id == person_id and n.email.status in WAITING:
                n.email.status = DeliveryStatus.SKIPPED
                n.email.next_attempt_at = None
                n.deliveries.append(why.model_copy())
                self.claims.discard((n.notification_id, Channel.EMAIL))

    # --- notifications ----------------------------------------------------------------
    async def add(self, tx: Transaction, notifications: list[Notification]) -> None:
        seen = {(n.recipient_email, n.kind, n.cause_event_id) for n in self.notifications.values()}
        for n in notifications:
            unique = (n.recipient_email.lower(), n.kind, n.cause_event_id)
            if unique in seen or n.notification_id in self.notifications:
                raise DuplicateKeyError(f"E11000 one_per_recipient_kind_cause {unique}")
            seen.add(unique)
        for n in notifications:
            kept = n.model_copy(deep=True)
            kept.recipient_email = n.recipient_email.lower()
            self.notifications[n.notification_id] = kept

    async def exists(
        self, recipient_email: str, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> bool:
        return await self._by_cause(recipient_email, kind, cause_event_id) is not None

    async def told_of(
        self, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> set[str]:
        return {
            n.recipient_email
            for n in self.notifications.values()
            if (n.kind.value, n.cause_event_id) == (kind, cause_event_id)
        }

    async def _by_cause(self, email: str, kind: str, cause: str) -> Notification | None:
        return next(
            (
                n
                for n in self.notifications.values()
                if (n.recipient_email, n.kind.value, n.cause_event_id) == (email, kind, cause)
            ),
            None,
        )

    async def get(
        self, notification_id: uuid.UUID, tx: Transaction | None = None
    ) -> Notification | None:
        found = self.notifications.get(notification_id)
        return found.model_copy(deep=True) if found else None

    async def find_by_cause(
        self, recipient_email: str, kind: str, cause_event_id: str, tx: Transaction | None = None
    ) -> Notification | None:
        found = await self._by_cause(recipient_email.lower(), kind, cause_event_id)
        return found.model_copy(deep=True) if found else None

    async def replace_content(
        self,
        tx: Transaction,
        n: Notification,
        changes: Document | None = None,
        release_email_at: datetime | None = None,
    ) -> None:
        if (kept := self.notifications.get(n.notification_id)) is None:
            return
        text = {"facts": n.facts, "subject": n.subject, "body": n.body, "email_body": n.email_body}
        changed = _changed(kept, {**text, **(changes or {})})
        self.notifications[n.notification_id] = changed
        if (
            release_email_at is not None
            and changed.email.status is DeliveryStatus.PENDING
            and (n.notification_id, Channel.EMAIL) not in self.claims
            and changed.email.next_attempt_at is not None
            and changed.email.next_attempt_at > release_email_at
        ):
            changed.email.next_attempt_at = release_email_at

    async def forget_tallies(self, tx: Transaction, recipients: list[str]) -> None:
        """Nothing to forget: counts are counted afresh on every read here."""

    # --- channels ---------------------------------------------------------------------
    def _due(self, channel: Channel, now: datetime) -> list[Notification]:
        return [
            n
            for n in self.notifications.values()
            if n.channel(channel).status is DeliveryStatus.PENDING
            and (due := n.channel(channel).next_attempt_at) is not None
            and due <= now
        ]

    async def claim_due(
        self, channel: Channel, now: datetime, until: datetime, limit: int
    ) -> list[Notification]:
        due = self._due(channel, now)[:limit]
        got = [n.model_copy(deep=True) for n in due]
        for n in due:
            n.channel(channel).next_attempt_at = until
            self.claims.add((n.notification_id, channel))
        return got

    async def next_due(self, channels: list[Channel]) -> datetime | None:
        found = [
            state.next_attempt_at
            for n in self.notifications.values()
            for ch in channels
            if (state := n.channel(ch)).status is DeliveryStatus.PENDING
            and state.next_attempt_at is not None
        ]
        found += [
            n.email.next_attempt_at
            for n in self.notifications.values()
            if n.email.status is DeliveryStatus.DIGEST and n.email.next_attempt_at is not None
        ]
        found += [e.due_at for e in self.entries.values() if e.status == "waiting" and e.due_at]
        found += [n.escalate_at for n in self.notifications.values() if n.escalate_at is not None]
        return min(found, default=None)

    async def record_sent(
        self, tx: Transaction, channel: Channel, ids: list[uuid.UUID], attempt: Attempt
    ) -> None:
        for i in ids:
            if (n := self.notifications.get(i)) is None:
                continue
            state = n.channel(channel)
            state.status, state.sent_at = DeliveryStatus.SENT, attempt.at
            state.last_error, state.next_attempt_at = None, None
            state.attempts += 1
            n.deliveries.append(attempt.model_copy())
            self.claims.discard((i, channel))

    async def record_delivery(
        self,
        tx: Transaction | None,
        channel: Channel,
        notification_id: uuid.UUID,
        changes: Mapping[str, Any],
        attempts: list[Attempt],
    ) -> None:
        if (kept := self.notifications.get(notification_id)) is None:
            return
        state = kept.channel(channel)
        changed = _changed(kept, {channel.value: {**state.model_dump(), **changes}})
        changed.deliveries += [a.model_copy() for a in attempts]
        self.notifications[notification_id] = changed
        self.claims.discard((notification_id, channel))

    # --- suggestion entries and the digest --------------------------------------------
    async def entries_by_key(
        self, keys: list[str], tx: Transaction | None = None
    ) -> dict[str, SuggestionEntry]:
        return {k: self.entries[k].model_copy(deep=True) for k in keys if k in self.entries}

    async def add_entries(self, tx: Transaction, entries: list[SuggestionEntry]) -> None:
        ids = [e.entry_id for e in entries]
        if len(set(ids)) != len(ids) or any(i in self.entries for i in ids):
            raise DuplicateKeyError(f"E11000 suggestion_entries _id {ids}")
        self.entries.update({e.entry_id: e.model_copy(deep=True) for e in entries})

    async def update_entry_suggestion(
        self, tx: Transaction, entry_id: str, suggestion: Document
    ) -> None:
        if (e := self.entries.get(entry_id)) is not None:
            e.suggestion = dict(suggestion)

    async def move_entry(
        self, tx: Transaction, entry_id: str, notification_id: uuid.UUID, suggestion: Document
    ) -> None:
        e = self.entries.get(entry_id)
        if e is not None and e.status == "waiting":
            e.status, e.notification_id, e.suggestion = "announced", notification_id, suggestion

    async def entries_for_opening(
        self, opening_id: str, tx: Transaction | None = None
    ) -> list[SuggestionEntry]:
        return [
            e.model_copy(deep=True) for e in self.entries.values() if e.opening_id == opening_id
        ]

    async def withdraw_entries(self, tx: Transaction, entry_ids: list[str]) -> None:
        for i in entry_ids:
            if (e := self.entries.get(i)) is not None and e.status == "waiting":
                e.status = "withdrawn"

    def _waiting(self, recipient_email: str) -> list[SuggestionEntry]:
        return [
            e
            for e in self.entries.values()
            if e.recipient_email == recipient_email and e.status == "waiting"
        ]

    async def waiting_entries(
        self, recipient_email: str, limit: int = 500, tx: Transaction | None = None
    ) -> list[SuggestionEntry]:
        found = sorted(
            self._waiting(recipient_email.lower()), key=lambda e: (e.due_at or EARLIEST, -e.score)
        )
        return [e.model_copy(deep=True) for e in found[:limit]]

    def _deferred(self, now: datetime) -> list[Notification]:
        return [
            n
            for n in self.notifications.values()
            if n.email.status is DeliveryStatus.DIGEST
            and n.email.next_attempt_at is not None
            and n.email.next_attempt_at <= now
        ]

    async def digest_recipients_due(
        self, now: datetime, tx: Transaction | None = None
    ) -> list[str]:
        waiting = {
            e.recipient_email
            for e in self.entries.values()
            if e.status == "waiting" and e.due_at is not None and e.due_at <= now
        }
        return sorted(waiting | {n.recipient_email for n in self._deferred(now)})

    async def due_entries(
        self, recipient_email: str, now: datetime, tx: Transaction | None = None
    ) -> list[SuggestionEntry]:
        due = [e for e in self._waiting(recipient_email) if e.due_at and e.due_at <= now]
        due.sort(key=lambda e: (e.person_id, -e.score))
        return [e.model_copy(deep=True) for e in due]

    async def due_for_digest(
        self, recipient_email: str, now: datetime, tx: Transaction | None = None
    ) -> list[Notification]:
        due = [n for n in self._deferred(now) if n.recipient_email == recipient_email]
        return [n.model_copy(deep=True) for n in sorted(due, key=lambda n: n.created_at)]

    async def bundle(
        self,
        tx: Transaction,
        digest_id: uuid.UUID,
        entry_ids: list[str],
        notification_ids: list[uuid.UUID],
        attempt: Attempt,
    ) -> None:
        entries = [self.entries[i] for i in entry_ids if i in self.entries]
        waiting = [e for e in entries if e.status == "waiting"]
        for e in waiting:
            e.status, e.notification_id = "announced", digest_id
        if entry_ids and len(waiting) != len(entry_ids):
            raise BundledMeanwhile
        items = [self.notifications[i] for i in notification_ids if i in self.notifications]
        deferred = [n for n in items if n.email.status is DeliveryStatus.DIGEST]
        for n in deferred:
            n.email.status, n.digest_id, n.email.next_attempt_at = (
                DeliveryStatus.BUNDLED,
                digest_id,
                None,
            )
            n.deliveries.append(attempt.model_copy())
        if notification_ids and len(deferred) != len(notification_ids):
            raise BundledMeanwhile

    # --- the daily email cap ----------------------------------------------------------
    async def take_email_slots(self, recipient_email: str, day: str, cap: int, wanted: int) -> int:
        if cap <= 0 or wanted <= 0:
            return 0
        key = f"{recipient_email.lower()}|{day}"
        sent = self.email_counts.get(key, 0)
        self.email_counts[key] = max(sent, min(cap, sent + wanted))
        return max(0, min(cap, sent + wanted) - sent)

    # --- escalation -------------------------------------------------------------------
    async def due_escalations(
        self, now: datetime, limit: int, tx: Transaction | None = None
    ) -> list[Notification]:
        due = [
            n
            for n in self.notifications.values()
            if n.escalate_at is not None and n.escalate_at <= now
        ]
        return [n.model_copy(deep=True) for n in due[:limit]]

    async def take_escalation(
        self, tx: Transaction, notification_id: uuid.UUID, now: datetime
    ) -> bool:
        n = self.notifications.get(notification_id)
        if n is None or n.escalate_at is None or n.escalate_at > now:
            return False
        n.escalate_at = None
        n.escalated_at = now if n.read_at is None else None
        return n.escalated_at is not None

    async def anyone_read(self, n: Notification, tx: Transaction | None = None) -> bool:
        return any(
            o.cause_event_id == n.cause_event_id and o.kind is n.kind and o.read_at is not None
            for o in self.notifications.values()
        )

    # --- erasure ----------------------------------------------------------------------
    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        def drop(kept: dict[Any, Any], about: Any) -> int:
            gone = [k for k, v in kept.items() if about(v)]
            for k in gone:
                del kept[k]
            return len(gone)

        pid = str(person_id)
        digests = 0
        for n in self.notifications.values():
            if n.kind.value != "digest":
                continue
            groups = [g for g in n.facts.get("groups", []) if g.get("person_id") != pid]
            items = [i for i in n.facts.get("items", []) if i.get("person_id") != pid]
            if (len(groups), len(items)) != (
                len(n.facts.get("groups", [])),
                len(n.facts.get("items", [])),
            ):
                n.facts = {**n.facts, "groups": groups, "items": items}
                digests += 1
        return {
            "recipients": int(self.recipients.pop(person_id, None) is not None),
            "notifications": drop(self.notifications, lambda n: n.person_id == person_id),
            "attendance": drop(self.attendance, lambda a: a[1] == person_id),
            "suggestion_entries": drop(self.entries, lambda e: e.person_id == person_id),
            "digests_changed": digests,
        }

    # --- preferences and attendance ---------------------------------------------------
    async def preferences_of(
        self, recipient_email: str, tx: Transaction | None = None
    ) -> Preferences:
        found = self.preferences.get(recipient_email.lower())
        return found.model_copy(deep=True) if found else Preferences()

    async def preferences_for(
        self, recipient_emails: list[str], tx: Transaction | None = None
    ) -> dict[str, Preferences]:
        return {e.lower(): await self.preferences_of(e) for e in recipient_emails}

    async def save_preferences(self, recipient_email: str, prefs: Preferences) -> None:
        self.preferences[recipient_email.lower()] = prefs.model_copy(deep=True)

    async def attendance_of(
        self, enrolment_id: uuid.UUID, tx: Transaction | None = None
    ) -> AttendanceState:
        if (kept := self.attendance.get(enrolment_id)) is None:
            return AttendanceState(enrolment_id=enrolment_id)
        return kept[0].model_copy()

    async def save_attendance(
        self, tx: Transaction, state: AttendanceState, person_id: uuid.UUID | None = None
    ) -> None:
        self.attendance[state.enrolment_id] = (state.model_copy(), person_id)

    # --- the inbox --------------------------------------------------------------------
    def _skip_email(self, n: Notification, at: datetime) -> None:
        n.email.status = DeliveryStatus.READ
        n.email.next_attempt_at = None
        self.claims.discard((n.notification_id, Channel.EMAIL))
        n.deliveries.append(
            Attempt(
                channel=Channel.EMAIL,
                at=at,
                result=DeliveryStatus.SKIPPED.value,
                detail=READ_BEFORE_SENT,
            )
        )

    async def mark_read(
        self, notification_id: uuid.UUID, at: datetime, *, archive: bool = False
    ) -> Notification | None:
        if (n := self.notifications.get(notification_id)) is None:
            return None
        if n.email.status in WAITING:
            self._skip_email(n, at)
        if n.read_at is None:
            n.read_at = at
        if archive and n.archived_at is None:
            n.archived_at = at
        return n.model_copy(deep=True)

    async def read_all(self, f: InboxFilter, at: datetime, district_id: str | None = None) -> int:
        unread_in = InboxFilter(f.recipient, kind=f.kind, person_id=f.person_id, unread_only=True)
        marked = [
            n
            for n in self.notifications.values()
            if unread_in.keeps(_key(n)) and district_id in (None, n.district_id)
        ]
        for n in marked:
            if n.email.status in WAITING:
                self._skip_email(n, at)
            n.read_at = at
        return len(marked)

    def _of(self, recipient: str) -> Iterable[Notification]:
        return (n for n in self.notifications.values() if n.recipient_email == recipient)

    async def inbox_page(
        self, f: InboxFilter, *, offset: int, limit: int, now: datetime, counted: bool = True
    ) -> InboxPage:
        counts = await self.inbox_counts(f.recipient, now) if counted else InboxCounts()
        shown = sorted(
            (n for n in self._of(f.recipient) if f.keeps(_key(n))),
            key=lambda n: (_unread(n), n.created_at, n.notification_id),
            reverse=True,
        )
        if f.person_id is not None:
            total, unread = len(shown), sum(_unread(n) for n in shown)
        else:
            total = counts.total(f)
            unread = 0 if f.archived else counts.of("unread", f.kind)
        page = [n.model_copy(deep=True) for n in shown[offset : offset + limit]]
        return InboxPage(page, total, unread, counts)

    async def inbox_counts(self, recipient: str, now: datetime) -> InboxCounts:
        counts = InboxCounts()
        for n in self._of(recipient):
            counts.add(_key(n))
            if counts.newest is None or n.created_at > counts.newest:
                counts.newest = n.created_at
        return counts

    async def unread_by_person(
        self, recipient: str, district_id: str | None = None
    ) -> dict[uuid.UUID, int]:
        return dict(
            Counter(
                n.person_id
                for n in self._of(recipient)
                if _unread(n) and n.person_id is not None and district_id in (None, n.district_id)
            )
        )


class RecordedSends:
    """An email or webhook sender: keeps what it was given; ``fail_next`` scripts the
    next attempts' failures (an SMTP 4xx is temporary, a 5xx permanent)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.failures: list[Exception] = []

    def fail_next(self, *errors: str, permanent: bool = False) -> None:
        kind = PermanentDeliveryError if permanent else TemporaryDeliveryError
        self.failures += [kind(e) for e in errors]

    async def __call__(self, n: Notification, now: datetime) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(n)
