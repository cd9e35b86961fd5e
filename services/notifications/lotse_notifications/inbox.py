"""Reading a recipient's inbox at volume: filtered pages, counts, marking read.

A caseworker may hold thousands of notifications, and SecantusDB fetches and decodes
every document an index lookup yields before it sorts, skips and limits in Python:
there is no early stop at the page's end, and a count decodes every match (measured at
5,000 notifications of ~3 kB: ~0.35 s for one count, ~0.45 s for the first page sorted
by the server, ~0.6 s for the newest one). So nothing here asks the database for more
documents than a page needs:

- **pages** are read newest first in time windows (the last day, week, month, ...)
  through indexes whose keys end in ``created_at``, until the page is full; a window
  returns slim keys, the page's documents are then read by id. Unread items come first:
  they are read through the index that holds only them.
- **counts** (per kind: open, unread, archived) come from a tally per recipient of the
  notifications older than :data:`SETTLED`, plus a live count of the newer ones. The
  writes here (read, archive, read-all) correct the tally in their own transaction;
  what other code changes about settled notifications (an erasure deletes them) is
  caught up when the tally is rebuilt: in the background, once it is
  :data:`REBUILT_AFTER` old (the counts read meanwhile are the old tally's); only a
  recipient's very first read waits for it (~0.4 s at 5,000). Newer notifications are
  not in the tally because they still change elsewhere (an alert turns unread again
  when suggestions join it, within minutes).

Reading an item also stops its email if that has not gone out yet (the read-time half
of "skip if read"), in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from lotse_shared.persistence.mongo import in_transaction

from .domain.model import Attempt, Channel, DeliveryStatus, Kind, Notification
from .repository import NotificationsRepository, _attempts, _notification, channel_update

Document = dict[str, Any]

SETTLED = timedelta(hours=1)  # older notifications are counted in the tally
REBUILT_AFTER = timedelta(hours=1)  # catches up with what others changed (an erasure)
# newest first: each window reaches further back than the one before, up to all of it
WINDOWS = (
    timedelta(days=1),
    timedelta(days=7),
    timedelta(days=30),
    timedelta(days=91),
    timedelta(days=365),
)
READ_BEFORE_SENT = "im Posteingang gelesen, bevor die E-Mail ausging"
WAITING = (DeliveryStatus.PENDING.value, DeliveryStatus.DIGEST.value)  # email not out yet
# what paging, counting and read-all need of a notification
KEYS = {
    "_id": 1,
    "kind": 1,
    "person_id": 1,
    "district_id": 1,
    "created_at": 1,
    "read_at": 1,
    "archived_at": 1,
    "email.status": 1,
}
BUCKETS = ("open", "unread", "archived")
log = logging.getLogger("lotse.notifications")


@dataclass(frozen=True)
class InboxFilter:
    """Which part of one recipient's inbox: the archive or the inbox, and optionally only
    unread items, one kind, one person."""

    recipient: str
    archived: bool = False
    unread_only: bool = False
    kind: Kind | None = None
    person_id: uuid.UUID | None = None

    def keeps(self, key: Document) -> bool:
        if key.get("recipient_email", self.recipient) != self.recipient:
            return False
        if self.kind is not None and key.get("kind") != self.kind.value:
            return False
        if self.person_id is not None and key.get("person_id") != self.person_id:
            return False
        if self.archived:
            return key.get("archived_at") is not None
        return key.get("archived_at") is None and (
            not self.unread_only or key.get("read_at") is None
        )


@dataclass
class InboxCounts:
    """Per kind: ``open`` (in the inbox), ``unread`` (of those), ``archived``."""

    kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    newest: datetime | None = None  # the newest notification's arrival, archived too

    def add(self, key: Document, sign: int = 1) -> None:
        counts = self.kinds.setdefault(key["kind"], dict.fromkeys(BUCKETS, 0))
        for bucket in _buckets(key):
            counts[bucket] += sign

    def of(self, bucket: str, kind: Kind | None = None) -> int:
        kinds = self.kinds.values() if kind is None else [self.kinds.get(kind.value, {})]
        return sum(max(0, c.get(bucket, 0)) for c in kinds)

    @property
    def unread(self) -> int:
        return self.of("unread")

    def unread_by_kind(self) -> dict[str, int]:
        return {k.value: self.of("unread", k) for k in Kind}

    def total(self, f: InboxFilter) -> int:
        """How many items the filter shows (without a person filter)."""
        if f.archived:
            return self.of("archived", f.kind)
        return self.of("unread" if f.unread_only else "open", f.kind)


@dataclass
class InboxPage:
    items: list[Notification]
    total: int  # items in the filter
    unread: int  # unread items in the filter
    counts: InboxCounts  # the whole inbox's


class InboxStore:
    """The inbox side of the notifications collection, plus the tallies."""

    def __init__(self, repo: NotificationsRepository) -> None:
        self.db = repo.db
        self.notifications = repo.notifications
        self.tallies = repo.tallies
        self.rebuilding: dict[str, asyncio.Task[Document]] = {}  # recipient -> rebuild

    # --- reading --------------------------------------------------------------------
    async def page(
        self, f: InboxFilter, *, offset: int, limit: int, now: datetime, counted: bool = True
    ) -> InboxPage:
        """Unread first, newest first (the archive: newest first); ``counted=False``
        leaves out the counts (``total``, ``unread`` and ``counts`` are then 0)."""
        counts = await self.counts(f.recipient, now) if counted else InboxCounts()
        if f.person_id is not None:
            # one person's items are few: all of them, then sorted here
            keys = sorted(
                (k for k in await self._person_keys(f.person_id, None) if f.keeps(k)),
                key=_inbox_order,
                reverse=True,
            )
            total, unread = len(keys), sum(_is_unread(k) for k in keys)
            chosen = keys[offset : offset + limit]
        else:
            total = counts.total(f)
            unread = 0 if f.archived else counts.of("unread", f.kind)
            chosen = await self._window_page(f, offset, limit, now)
        return InboxPage(await self._by_ids([k["_id"] for k in chosen]), total, unread, counts)

    async def counts(self, recipient: str, now: datetime) -> InboxCounts:
        tally = await self.tallies.find_one({"_id": recipient})
        if tally is None or tally["built_at"] > now:  # none yet, or the clock went back
            tally = await self._build_tally(recipient, now)
        elif tally["built_at"] < now - REBUILT_AFTER:
            self._rebuild_soon(recipient, now)
        counts = InboxCounts(
            kinds={k: dict(c) for k, c in tally["kinds"].items()}, newest=tally.get("newest")
        )
        async for key in self.notifications.find(
            {"recipient_email": recipient, "created_at": {"$gte": tally["cutoff"]}}, KEYS
        ):
            counts.add(key)
            if counts.newest is None or key["created_at"] > counts.newest:
                counts.newest = key["created_at"]
        return counts

    async def unread_by_person(
        self, recipient: str, district_id: str | None = None
    ) -> dict[uuid.UUID, int]:
        """Unread, not archived notifications per person they name (digests name none),
        in one aggregation through the ``inbox`` index; ``district_id``: only that
        district's (an admin in someone else's inbox)."""
        match: Document = {
            "recipient_email": recipient,
            "archived_at": None,
            "read_at": None,
            "person_id": {"$ne": None},
        }
        if district_id is not None:
            match["district_id"] = district_id
        pipeline: list[Document] = [
            {"$match": match},
            {"$group": {"_id": "$person_id", "unread": {"$sum": 1}}},
        ]
        cursor = await self.notifications.aggregate(pipeline)
        return {d["_id"]: d["unread"] async for d in cursor}

    async def _window_page(
        self, f: InboxFilter, offset: int, limit: int, now: datetime
    ) -> list[Document]:
        need = offset + limit
        if f.archived:
            archived = await self._newest(_by_time(f), f.keeps, need, now)
            return archived[offset:]
        unread = await self._newest(_unread_query(f), f.keeps, need, now)
        if f.unread_only or len(unread) >= need:
            return unread[offset:need]
        # the page reaches past the unread ones, so all of them were read: len(unread) is
        # exact, and the read ones continue where they end
        read_filter = InboxFilter(f.recipient, kind=f.kind)
        read = await self._newest(
            _by_time(f),
            lambda k: read_filter.keeps(k) and not _is_unread(k),
            need - len(unread),
            now,
        )
        return (unread + read)[offset:need]

    async def _newest(
        self,
        query: Document,
        keeps: Callable[[Document], bool],
        need: int,
        now: datetime,
        session: AsyncClientSession | None = None,
    ) -> list[Document]:
        """The ``need`` newest keys matching ``query`` and ``keeps``, newest first. Each
        window reads only the time the windows before it did not."""
        found: list[Document] = []
        newer_than: datetime | None = None
        for span in (*WINDOWS, None):
            if len(found) >= need:
                break
            since = now - span if span is not None else None
            bounds = {
                **({"$gte": since} if since is not None else {}),
                **({"$lt": newer_than} if newer_than is not None else {}),
            }
            windowed = {**query, "created_at": bounds} if bounds else query
            found += [
                k
                async for k in self.notifications.find(windowed, KEYS, session=session)
                if keeps(k)
            ]
            newer_than = since
        return sorted(found, key=_newest_first, reverse=True)[:need]

    async def _person_keys(
        self, person_id: uuid.UUID, session: AsyncClientSession | None
    ) -> list[Document]:
        # the person's notifications for every recipient: a few dozen, through by_person
        projection = {**KEYS, "recipient_email": 1}
        return [
            k
            async for k in self.notifications.find(
                {"person_id": person_id}, projection, session=session
            )
        ]

    async def _by_ids(self, ids: list[uuid.UUID]) -> list[Notification]:
        if not ids:
            return []
        docs = {d["_id"]: d async for d in self.notifications.find({"_id": {"$in": ids}})}
        return [_notification(docs[i]) for i in ids if i in docs]

    def _rebuild_soon(self, recipient: str, now: datetime) -> None:
        if recipient in self.rebuilding:
            return
        task = asyncio.get_running_loop().create_task(self._build_tally(recipient, now))
        self.rebuilding[recipient] = task

        def done(t: asyncio.Task[Document]) -> None:
            del self.rebuilding[recipient]
            if not t.cancelled() and t.exception() is not None:
                log.warning("inbox tally not rebuilt: %r", t.exception())

        task.add_done_callback(done)

    async def _build_tally(self, recipient: str, now: datetime) -> Document:
        """Count the settled notifications once; in a transaction, so a read counted
        meanwhile is a write conflict on the tally and this runs again."""
        cutoff = now - SETTLED

        async def build(session: AsyncClientSession) -> Document:
            counts = InboxCounts()
            async for key in self.notifications.find(
                {"recipient_email": recipient, "created_at": {"$lt": cutoff}}, KEYS, session=session
            ):
                counts.add(key)
                if counts.newest is None or key["created_at"] > counts.newest:
                    counts.newest = key["created_at"]
            tally = {
                "_id": recipient,
                "cutoff": cutoff,
                "built_at": now,
                "newest": counts.newest,
                "kinds": counts.kinds,
            }
            await self.tallies.replace_one({"_id": recipient}, tally, upsert=True, session=session)
            return tally

        return await in_transaction(self.db, build)

    # --- marking read -----------------------------------------------------------------
    async def mark(
        self, notification_id: uuid.UUID, at: datetime, *, archive: bool = False
    ) -> Notification | None:
        """Read (or archive, which reads too); idempotent. An email still waiting for its
        time is not sent any more."""

        async def write(session: AsyncClientSession) -> Document | None:
            before = await self.notifications.find_one({"_id": notification_id}, session=session)
            if before is None:
                return None
            update = _read_update(before, at, archive)
            if not update:
                return before
            after = await self.notifications.find_one_and_update(
                {"_id": notification_id},
                update,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            await self._correct_tally(session, before["recipient_email"], [(before, after)])
            return after

        doc = await in_transaction(self.db, write)
        return _notification(doc) if doc else None

    async def read_all(self, f: InboxFilter, at: datetime, district_id: str | None = None) -> int:
        """Mark every unread item of the filter read (``district_id``: only that
        district's; None: every district's); returns how many. One transaction: a page
        opened meanwhile sees all of them read or none."""
        unread_in = InboxFilter(f.recipient, kind=f.kind, person_id=f.person_id, unread_only=True)

        async def write(session: AsyncClientSession) -> int:
            if f.person_id is not None:
                keys = await self._person_keys(f.person_id, session)
            else:
                keys = await self.notifications.find(
                    _unread_query(f), KEYS, session=session
                ).to_list()
            keys = [
                k
                for k in keys
                if unread_in.keeps(k) and district_id in (None, k.get("district_id"))
            ]
            if not keys:
                return 0
            waiting = [k["_id"] for k in keys if _email_waits(k)]
            if waiting:
                await self.notifications.update_many(
                    {"_id": {"$in": waiting}, "email.status": {"$in": list(WAITING)}},
                    _email_skipped(at),
                    session=session,
                )
            result = await self.notifications.update_many(
                {"_id": {"$in": [k["_id"] for k in keys]}, "read_at": None},
                {"$set": {"read_at": at}},
                session=session,
            )
            await self._correct_tally(
                session, f.recipient, [(k, {**k, "read_at": at}) for k in keys]
            )
            return result.modified_count

        return await in_transaction(self.db, write)

    async def _correct_tally(
        self,
        session: AsyncClientSession,
        recipient: str,
        changes: Iterable[tuple[Document, Document | None]],
    ) -> None:
        """Move settled items between the tally's buckets, as they changed."""
        tally = await self.tallies.find_one({"_id": recipient}, {"cutoff": 1}, session=session)
        if tally is None:
            return  # built from scratch on the next read
        delta = InboxCounts()
        for before, after in changes:
            if after is not None and before["created_at"] < tally["cutoff"]:
                delta.add(before, -1)
                delta.add(after)
        inc = {
            f"kinds.{kind}.{bucket}": n
            for kind, buckets in delta.kinds.items()
            for bucket, n in buckets.items()
            if n
        }
        if inc:
            await self.tallies.update_one(
                {"_id": recipient, "cutoff": tally["cutoff"]}, {"$inc": inc}, session=session
            )


def _unread_query(f: InboxFilter) -> Document:
    """Through the ``inbox`` (or ``inbox_kind``) index: unread items only."""
    kind = {"kind": f.kind.value} if f.kind is not None else {}
    return {"recipient_email": f.recipient, **kind, "archived_at": None, "read_at": None}


def _by_time(f: InboxFilter) -> Document:
    """Through ``inbox_by_time`` (or ``inbox_kind_by_time``): every item, any state.

    The state is filtered here, not in the query: SecantusDB walks a compound index
    only for equalities on its leading keys and one range after them, the window."""
    kind = {"kind": f.kind.value} if f.kind is not None else {}
    return {"recipient_email": f.recipient, **kind}


def _read_update(before: Document, at: datetime, archive: bool) -> Document:
    changes: Document = {}
    if before.get("read_at") is None:
        changes["read_at"] = at
    if archive and before.get("archived_at") is None:
        changes["archived_at"] = at
    if not changes and not _email_waits(before):
        return {}
    update: Document = {"$set": changes} if changes else {}
    if _email_waits(before):
        skipped = _email_skipped(at)
        update = {**skipped, "$set": {**skipped["$set"], **changes}}
    return update


def _email_skipped(at: datetime) -> Document:
    """Read before its email went out: the email is not sent, and the log says why."""
    attempt = Attempt(
        channel=Channel.EMAIL, at=at, result=DeliveryStatus.SKIPPED.value, detail=READ_BEFORE_SENT
    )
    return {
        "$set": channel_update(Channel.EMAIL, status=DeliveryStatus.READ, next_attempt_at=None),
        "$unset": {"email.claim": ""},
        "$push": {"deliveries": _attempts([attempt])[0]},
    }


def _email_waits(key: Document) -> bool:
    """Has the email of this notification (as read with ``KEYS``) not gone out yet?"""
    return (key.get("email") or {}).get("status") in WAITING


def _buckets(key: Document) -> tuple[str, ...]:
    if key.get("archived_at") is not None:
        return ("archived",)
    return ("open", "unread") if key.get("read_at") is None else ("open",)


def _is_unread(key: Document) -> bool:
    return key.get("read_at") is None and key.get("archived_at") is None


def _newest_first(key: Document) -> tuple[datetime, uuid.UUID]:
    return key["created_at"], key["_id"]


def _inbox_order(key: Document) -> tuple[bool, datetime, uuid.UUID]:
    return _is_unread(key), key["created_at"], key["_id"]
