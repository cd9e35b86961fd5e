"""The AsyncMongoClient factory and the unit of work every handler writes through.

A unit of work is one MongoDB transaction holding, together:
- the inbox record of the event being applied (unique ``_id`` = event id, so a
  second delivery fails on the index, not on a check-then-write race);
- the handler's own writes;
- the events the change causes (the outbox), published after commit by the relay.

An event about a person this service has erased (a tombstone in ``erasures``) is
refused inside the same transaction (:class:`AboutErasedPerson`): a late or replayed
event must not bring an erased person back. A transaction that applies no event
(HTTP, delivery loops) does not publish events about erased people either.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import PersonErased
from lotse_shared.errors import AboutErasedPerson, AlreadyApplied, NotYetApplicable
from lotse_shared.persistence.retry import retry_transient
from lotse_shared.persistence.unit import BatchAborted, Transaction, group_commit_allowed
from lotse_shared.tracing import current_traceparent

log = logging.getLogger("lotse.persistence")

Document = dict[str, Any]

INBOX = "inbox"
OUTBOX = "outbox"
ERASURES = "erasures"  # tombstones of erased people; see lotse_shared.erasure
PARKED = "parked"  # events waiting for what they depend on; see messaging.parking
AUDIT = "audit_log"  # who read or changed what; see auth.audit
# the erasure event itself passes the tombstone checks below
ERASED_EVENT_TYPE: str = PersonErased.model_fields["event_type"].default
DEDUP_WINDOW_S = 90 * 24 * 3600
OWN_LEASE_S = 10.0  # how long a crash may delay an event the committer did not publish

T = TypeVar("T")


def make_client(url: str, **options: Any) -> AsyncMongoClient[Document]:
    """Create (not connect) a client; the first operation connects.

    ``options`` are further client options, e.g. TLS (``lotse_shared.transport``).
    """
    return AsyncMongoClient(
        url,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=5000,
        **options,
    )


async def ensure_plumbing_indexes(db: AsyncDatabase[Document]) -> None:
    await db[INBOX].create_indexes(
        [IndexModel("applied_at", expireAfterSeconds=DEDUP_WINDOW_S, name="dedup_window")]
    )
    await db[OUTBOX].create_indexes(
        [
            # no $or in the relay's query: SecantusDB's planner scans the collection for one
            IndexModel([("sent_at", 1), ("lease_until", 1)], name="unsent_unleased"),
            IndexModel(
                "sent_at_ttl",
                expireAfterSeconds=7 * 24 * 3600,
                name="sent_ttl",
            ),
            # an erasure deletes the rows about the person, sent or not
            IndexModel("person_id", sparse=True, name="by_person"),
        ]
    )


def subject_of(event: Event) -> uuid.UUID | None:
    """The person an event is about, if any (every person event names ``person_id``)."""
    person_id = getattr(getattr(event, "payload", None), "person_id", None)
    return person_id if isinstance(person_id, uuid.UUID) else None


class _Culprits(Exception):
    """A group commit failed at its end because of these members (their ids)."""

    def __init__(self, members: set[int]) -> None:
        super().__init__(f"{len(members)} member(s) cannot be applied")
        self.members = members


class _SubjectErased(Exception):
    """Inside a transaction: the event's person was erased; nothing may be written."""


async def in_transaction(
    db: AsyncDatabase[Document], write: Callable[[AsyncClientSession], Awaitable[T]]
) -> T:
    """Run ``write`` (an ``update_many``/``delete_many`` given the session) in a short
    transaction of its own, run again if it loses a write conflict.

    Every multi-document write goes this way, never bare: SecantusDB runs a bare one
    in chunks and, when a chunk conflicts with an open transaction, retries it forever
    while holding the collection's lock, so that transaction's next statement on the
    collection waits for the lock and both hang (an erasure against the outbox relay's
    marking hung the tests). Inside a transaction the conflict is answered at once.
    ``tests/unit/test_architecture.py`` checks that no bare one is written."""

    async def once() -> T:
        async with db.client.start_session() as session, await session.start_transaction():
            return await write(session)

    return await retry_transient(once)


async def record_ignored(
    db: AsyncDatabase[Document], event_id: str, event_type: str, why: str = "person erased"
) -> None:
    """Record an event as handled without effects (in the inbox, like an applied one):
    one about an erased person, so nothing about them is written, or one with nothing to
    do; a redelivery is then recognised, and the event is accounted for."""
    with suppress(DuplicateKeyError):
        await db[INBOX].insert_one(
            {
                "_id": event_id,
                "event_type": event_type,
                "applied_at": datetime.now(UTC),
                "ignored": why,
            }
        )


async def is_erased(
    db: AsyncDatabase[Document], person_id: uuid.UUID, session: AsyncClientSession | None = None
) -> bool:
    return await db[ERASURES].find_one({"_id": person_id}, {"_id": 1}, session=session) is not None


def inbox_row(event: Event) -> Document:
    """The inbox's record that this service applied ``event`` (its id is the key)."""
    return {
        "_id": str(event.event_id),
        "event_type": event.event_type,
        "applied_at": datetime.now(UTC),
    }


def outbox_document(event: Event, lease_s: float = 0.0) -> Document:
    """An outbox row; with ``lease_s`` the committing process keeps it to itself that
    long (it publishes from memory), after which any relay may take it."""
    now = datetime.now(UTC)
    doc: Document = {
        "_id": str(event.event_id),
        "routing_key": event.ROUTING_KEY,
        "event_type": event.event_type,
        "correlation_id": str(event.correlation_id),
        "body": event.to_wire(),
        "created_at": now,
        "sent_at": None,
        "lease_until": now + timedelta(seconds=lease_s),
        # the trace of the transaction that wrote it, which the relay's publish continues
        "traceparent": current_traceparent(),
    }
    if (person_id := subject_of(event)) is not None:
        doc["person_id"] = person_id  # so an erasure finds the rows about the person
    return doc


async def save_if_newer(
    collection: AsyncCollection[Document], doc: Document, session: AsyncClientSession | None
) -> bool:
    """Store a read-model snapshot unless we hold the same or a newer ``revision``.

    Events travel on separate queues, so an older snapshot can arrive last. Returns
    False when it was ignored. No duplicate-key error is provoked on purpose: inside a
    transaction it would abort the whole transaction.
    """
    result = await collection.replace_one(
        {"_id": doc["_id"], "revision": {"$lt": doc["revision"]}}, doc, session=session
    )
    if result.matched_count:
        return True
    if await collection.find_one({"_id": doc["_id"]}, {"_id": 1}, session=session):
        return False
    await collection.insert_one(doc, session=session)
    return True


@dataclass
class MongoTransaction:
    """A :class:`~lotse_shared.persistence.unit.Transaction` in a MongoDB session."""

    db: AsyncDatabase[Document]
    session: AsyncClientSession
    events: list[Event] = field(default_factory=list)
    # in a group commit, the events its earlier members applied: their inbox rows are
    # written at its commit
    applied_before: set[str] = field(default_factory=set)

    def publish(self, event: Event) -> None:
        self.events.append(event)

    async def has_applied(self, event_id: str) -> bool:
        if event_id in self.applied_before:
            return True
        # a point read: a count is an aggregation, several times its cost on SecantusDB
        found = await self.db[INBOX].find_one({"_id": event_id}, {"_id": 1}, session=self.session)
        return found is not None

    async def erase_plumbing(self, person_id: uuid.UUID, erasure_id: uuid.UUID) -> dict[str, int]:
        db, session = self.db, self.session
        outbox = await db[OUTBOX].delete_many({"person_id": person_id}, session=session)
        await self._ignore_parked(person_id)
        parked = await db[PARKED].delete_many({"person_id": str(person_id)}, session=session)
        return {
            OUTBOX: outbox.deleted_count,
            PARKED: parked.deleted_count,
            AUDIT: await self._anonymise_audit(person_id, erasure_id),
        }

    async def _ignore_parked(self, person_id: uuid.UUID) -> None:
        """The events parked about the person go with the erasure; each is recorded as
        handled without effects first, as one arriving after the erasure is, so none of
        them is unaccounted for and a redelivery is recognised. Upserts, not inserts: a
        duplicate key would abort the erasure's transaction."""
        waiting = (
            await self.db[PARKED]
            .find({"person_id": str(person_id)}, {"routing_key": 1}, session=self.session)
            .to_list()
        )
        if not waiting:
            return
        now = datetime.now(UTC)
        await self.db[INBOX].bulk_write(
            [
                UpdateOne(
                    {"_id": row["_id"]},
                    {
                        "$setOnInsert": {
                            "event_type": row.get("routing_key"),
                            "applied_at": now,
                            "ignored": "person erased while the event was parked",
                        }
                    },
                    upsert=True,
                )
                for row in waiting
            ],
            session=self.session,
        )

    async def _anonymise_audit(self, person_id: uuid.UUID, erasure_id: uuid.UUID) -> int:
        """The one change the append-only audit log allows: the erased person's id, in
        the subjects and the path, becomes ``erased:<erasure id>``."""
        rows = self.db[AUDIT]
        old, new = str(person_id), erased_marker(erasure_id)
        changed = 0
        async for row in rows.find(
            {"subjects.person_id": old}, {"path": 1, "subjects": 1}, session=self.session
        ):
            subjects = {k: new if v == old else v for k, v in row.get("subjects", {}).items()}
            await rows.update_one(
                {"_id": row["_id"]},
                {
                    "$set": {
                        "subjects": subjects,
                        "path": str(row.get("path", "")).replace(old, new),
                    }
                },
                session=self.session,
            )
            changed += 1
        return changed

    async def keep_tombstone(
        self, person_id: uuid.UUID, erasure_id: uuid.UUID, erased_at: datetime
    ) -> None:
        await self.db[ERASURES].replace_one(
            {"_id": person_id},
            {
                "_id": person_id,
                "erasure_id": erasure_id,
                "erased_at": erased_at,
                "applied_at": datetime.now(UTC),
            },
            upsert=True,
            session=self.session,
        )


def erased_marker(erasure_id: uuid.UUID) -> str:
    """What replaces the person's id where a record of the fact must stay (audit)."""
    return f"erased:{erasure_id}"


def session_of(tx: Transaction | None) -> AsyncClientSession | None:
    """The MongoDB session a repository method runs in: the transaction's, or none for a
    read outside any transaction."""
    if tx is None:
        return None
    if not isinstance(tx, MongoTransaction):
        raise TypeError(f"a MongoDB repository cannot take part in {type(tx).__name__}")
    return tx.session


class MongoUnitOfWork:
    """A :class:`~lotse_shared.persistence.unit.UnitOfWork` on MongoDB transactions."""

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        db: AsyncDatabase[Document],
        on_committed: Callable[[list[Document]], None] | None = None,
        max_concurrent: int = 4,
        batch_max: int = 1,
        batch_wait_s: float = 0.005,
        on_batch: Callable[[int, bool], None] = lambda members, committed: None,
    ) -> None:
        self.client = client
        self.db = db
        self._on_committed = on_committed
        self._group = (
            GroupCommit(self, batch_max, batch_wait_s, on_batch) if batch_max > 1 else None
        )
        # More concurrent transactions than this buy nothing but write conflicts and
        # latency (measured: SecantusDB's throughput is flat from 1 to 64), and every
        # transaction open when a process is killed lingers on the server until it
        # expires. Handlers beyond the gate wait here, not in the database.
        self.gate = asyncio.Semaphore(max_concurrent)

    async def handled_without_effects(self, event: Event, why: str) -> None:
        """In one write and no transaction: there is nothing else to write."""
        await record_ignored(self.db, str(event.event_id), event.event_type, why)

    @asynccontextmanager
    async def transaction(self, applying: Event | None = None) -> AsyncIterator[Transaction]:
        if self._group is not None and self._group.may_join(applying):
            async with self._group.member(applying) as member:
                yield member
            return
        try:
            async with self._transaction(applying) as tx:
                yield tx
        except _SubjectErased:
            assert applying is not None
            await record_ignored(self.db, str(applying.event_id), applying.event_type)
            raise AboutErasedPerson(str(applying.event_id)) from None

    @asynccontextmanager
    async def _transaction(self, applying: Event | None) -> AsyncIterator[MongoTransaction]:
        async with self.gate, self.client.start_session() as session:  # noqa: SIM117
            async with await session.start_transaction():
                tx = MongoTransaction(db=self.db, session=session)
                if applying is not None:
                    try:
                        await self.db[INBOX].insert_one(inbox_row(applying), session=session)
                    except DuplicateKeyError:
                        raise AlreadyApplied(str(applying.event_id)) from None
                    person_id = subject_of(applying)
                    if (
                        person_id is not None
                        and applying.event_type != ERASED_EVENT_TYPE
                        and await is_erased(self.db, person_id, session)
                    ):
                        raise _SubjectErased  # aborts the transaction, inbox row included
                yield tx
                if applying is None and tx.events:
                    tx.events = await self._without_erased(tx.events, session)
                rows = [outbox_document(e, self.lease_s) for e in tx.events]
                if rows:
                    await self.db[OUTBOX].insert_many(rows, session=session)
        self.committed(rows)

    @property
    def lease_s(self) -> float:
        """Rows the committing process will publish itself are leased to it."""
        return OWN_LEASE_S if self._on_committed is not None else 0.0

    def committed(self, rows: list[Document]) -> None:
        if rows and self._on_committed is not None:
            self._on_committed(rows)

    async def _without_erased(
        self, events: list[Event], session: AsyncClientSession
    ) -> list[Event]:
        """Drop events about people erased meanwhile (an email delivered while the
        erasure was applied, say): their outbox rows would outlive the erasure."""
        subjects = {
            s
            for e in events
            if e.event_type != ERASED_EVENT_TYPE and (s := subject_of(e)) is not None
        }
        if not subjects:
            return events
        erased = {
            d["_id"]
            async for d in self.db[ERASURES].find(
                {"_id": {"$in": list(subjects)}}, {"_id": 1}, session=session
            )
        }
        if not erased:
            return events
        log.info("%d event(s) about erased people not published", len(erased))
        return [
            e for e in events if e.event_type == ERASED_EVENT_TYPE or subject_of(e) not in erased
        ]


# --- group commit -------------------------------------------------------------------------

_IN_BATCH_BODY: ContextVar[bool] = ContextVar("lotse_in_batch_body", default=False)


@dataclass(eq=False)
class _Batch:
    """Transactions of several messages in one MongoDB transaction. Their bodies run one
    after another in its session; their inbox and outbox rows are written together at
    the end, in one ``insert_many`` each, then one commit."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sealed: asyncio.Event = field(default_factory=asyncio.Event)  # no one joins any more
    all_in: asyncio.Event = field(default_factory=asyncio.Event)  # every body has run
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # committed or rolled back
    reserved: int = 0
    finished: int = 0
    failed: BaseException | None = None
    # the members that caused the failure (by their transaction); None: not one of them
    # (the commit itself failed), so every member runs again alone
    culprits: set[int] | None = field(default_factory=set)
    session: AsyncClientSession | None = None
    applying: list[Event] = field(default_factory=list)
    applying_members: list[int] = field(default_factory=list)
    applied_ids: set[str] = field(default_factory=set)
    outbox_rows: list[Document] = field(default_factory=list)
    # rows of transactions that applied no event: dropped at commit if about people
    # erased meanwhile, as a transaction on its own does (``_without_erased``)
    plain_rows: list[Document] = field(default_factory=list)

    def fail(self, exc: BaseException, culprits: set[int] | None = None) -> None:
        if self.failed is None:
            self.failed = exc
            self.culprits = culprits

    def aborted(self, member: int) -> BatchAborted:
        alone = self.culprits is None or member in self.culprits
        return BatchAborted(alone=alone)

    def body_done(self) -> None:
        self.finished += 1
        if self.sealed.is_set() and self.finished == self.reserved:
            self.all_in.set()


class GroupCommit:
    """Group commit for consumers: the transactions that concurrent handlers open within
    ``max_wait_s`` of the first (up to ``max_size``) are one MongoDB transaction, begun
    when that window closes and run one body after another; each handler waits for its
    commit, so every message is acknowledged only once its effects are durable.

    A failure rolls the whole batch back (MongoDB has no savepoints) and every member
    raises :class:`BatchAborted`; ``retry_transient`` runs each again at once. The member
    that caused it (its own exception, its inbox row a duplicate, its person erased) runs
    alone, where the retry, parking and dead-letter rules apply to it by itself; the
    others run in a new batch (twice at most, then alone too). A failure of the commit
    itself sends every member alone. An erasure, and a transaction opened inside
    another, never join.
    """

    def __init__(
        self,
        uow: MongoUnitOfWork,
        max_size: int,
        max_wait_s: float,
        observe: Callable[[int, bool], None] = lambda members, committed: None,
    ) -> None:
        self.uow = uow
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.observe = observe  # members, committed
        self._open: _Batch | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self._members = itertools.count()

    @staticmethod
    def may_join(applying: Event | None) -> bool:
        if not group_commit_allowed() or _IN_BATCH_BODY.get():
            return False
        return applying is None or applying.event_type != ERASED_EVENT_TYPE

    @asynccontextmanager
    async def member(self, applying: Event | None) -> AsyncIterator[Transaction]:
        batch = self._join()
        member = next(self._members)
        inside = _IN_BATCH_BODY.set(True)
        try:
            # The transaction begins once no one joins any more: every member's snapshot
            # is then younger than its arrival, so it sees what committed before (its own
            # first step, say), as a transaction of its own would.
            await batch.sealed.wait()
            async with batch.lock:
                if batch.failed is None and batch.session is None:
                    await self._begin(batch)
                if batch.failed is not None:
                    raise batch.aborted(member) from batch.failed
                assert batch.session is not None
                tx = MongoTransaction(
                    db=self.uow.db, session=batch.session, applied_before=batch.applied_ids
                )
                try:
                    yield tx
                except NotYetApplicable:
                    # decided before anything is written (the port's rule, which the
                    # in-memory unit of work checks): the batch goes on without it
                    raise
                except Exception as exc:
                    batch.fail(exc, {member})
                    raise batch.aborted(member) from exc
                except BaseException as exc:  # cancelled: the batch cannot commit either
                    batch.fail(exc, {member})
                    raise
                rows = [outbox_document(e, self.uow.lease_s) for e in tx.events]
                if applying is not None:
                    batch.applying.append(applying)
                    batch.applying_members.append(member)
                    batch.applied_ids.add(str(applying.event_id))
                    batch.outbox_rows.extend(rows)
                else:
                    batch.plain_rows.extend(rows)
        finally:
            _IN_BATCH_BODY.reset(inside)
            batch.body_done()
        await batch.settled.wait()
        if batch.failed is not None:
            raise batch.aborted(member) from batch.failed

    def _join(self) -> _Batch:
        batch = self._open  # never one that failed: bodies run only once it is sealed
        if batch is None:
            batch = self._open = _Batch()
            closer = asyncio.create_task(self._close(batch))
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)
        batch.reserved += 1
        if batch.reserved >= self.max_size:
            self._seal(batch)
        return batch

    def _seal(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        batch.sealed.set()
        if batch.finished == batch.reserved:
            batch.all_in.set()

    async def _begin(self, batch: _Batch) -> None:
        await self.uow.gate.acquire()
        session = self.uow.client.start_session()
        try:
            await session.start_transaction()
        except Exception as exc:
            batch.fail(exc)
            await session.end_session()
            self.uow.gate.release()
            return
        batch.session = session

    async def _close(self, batch: _Batch) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(batch.sealed.wait(), self.max_wait_s)
        self._seal(batch)
        await batch.all_in.wait()
        rows: list[Document] = []
        try:
            if batch.failed is None and batch.session is not None:
                rows = await self._commit(batch, batch.session)
        except _Culprits as exc:
            batch.fail(exc, exc.members)
        except Exception as exc:
            batch.fail(exc, None)  # the commit itself: every member runs again alone
        finally:
            await self._end(batch)
        self.observe(batch.reserved, batch.failed is None)
        if batch.failed is None:
            self.uow.committed(rows)
        else:
            alone = "all" if batch.culprits is None else str(len(batch.culprits))
            log.info(
                "a batch of %d rolled back (%s); %s run again alone, the others in a new one",
                batch.reserved,
                type(batch.failed).__name__,
                alone,
            )
        batch.settled.set()

    async def _commit(self, batch: _Batch, session: AsyncClientSession) -> list[Document]:
        db = self.uow.db
        # one read for the tombstones of everyone the batch is about
        subjects = {
            s
            for e in batch.applying
            if e.event_type != ERASED_EVENT_TYPE and (s := subject_of(e)) is not None
        }
        about = subjects | {r["person_id"] for r in batch.plain_rows if "person_id" in r}
        erased: set[Any] = set()
        if about:
            erased = {
                d["_id"]
                async for d in db[ERASURES].find(
                    {"_id": {"$in": list(about)}}, {"_id": 1}, session=session
                )
            }
        if erased & subjects:  # those members, alone, record their events as ignored
            raise _Culprits(
                {
                    m
                    for m, e in zip(batch.applying_members, batch.applying, strict=True)
                    if subject_of(e) in erased and e.event_type != ERASED_EVENT_TYPE
                }
            )
        rows = batch.outbox_rows + [
            r
            for r in batch.plain_rows
            if r["event_type"] == ERASED_EVENT_TYPE or r.get("person_id") not in erased
        ]
        if batch.applying:
            try:
                await db[INBOX].insert_many([inbox_row(e) for e in batch.applying], session=session)
            except BulkWriteError as exc:  # applied before: alone, it is AlreadyApplied
                first = exc.details.get("writeErrors", [{}])[0].get("index")
                if first is None:
                    raise
                raise _Culprits({batch.applying_members[first]}) from exc
        if rows:
            await db[OUTBOX].insert_many(rows, session=session)
        await session.commit_transaction()
        return rows

    async def _end(self, batch: _Batch) -> None:
        session = batch.session
        if session is None:
            return
        try:
            if session.in_transaction:
                with suppress(Exception):
                    await session.abort_transaction()
            await session.end_session()
        finally:
            self.uow.gate.release()
