"""Events that cannot be applied yet wait here (see errors.NotYetApplicable).

Events travel on separate queues, so "course completed" can overtake "person
registered". Such an event is kept in the service's ``parked`` collection and
tried again: at once when another event about the same person is applied, and
by a sweep with growing pauses per event. An event still parked after
``max_age_s`` is dead-lettered with its reason; one that fails for good on replay
(a rule violation) is dead-lettered at once. Nothing is dropped.

The sweep looks at the database only when something is due: it remembers the
earliest retry or expiry it saw and what this process parked since, and otherwise
looks again every ``recheck_s`` (for what another process parked and left behind).
An empty parking lot costs the database one query pair per ``recheck_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from lotse_shared import tracing
from lotse_shared.background import Periodic
from lotse_shared.errors import AboutErasedPerson, AlreadyApplied, DomainError, NotYetApplicable
from lotse_shared.persistence.mongo import PARKED as PARKED_COLLECTION
from lotse_shared.persistence.mongo import is_erased, record_ignored

from .outcomes import NOT_IN_LOTSE, PartnerMessages, Status, failing_fields

if TYPE_CHECKING:
    from .deadletter import DeadLetters

log = logging.getLogger("lotse.parking")

Document = dict[str, Any]
PARKED = PARKED_COLLECTION
MAX_PAUSE = timedelta(hours=1)
_INSIDE: ContextVar[bool] = ContextVar("lotse_parking_inside", default=False)

Dispatch = Callable[[str, bytes], Awaitable[None]]


class ParkingLot:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        dead_letters: DeadLetters,
        *,
        max_age_s: float,
        sweep_every_s: float = 5.0,
        recheck_s: float = 30.0,
        outcomes: PartnerMessages | None = None,
    ) -> None:
        self.db = db
        self.dead_letters = dead_letters
        self.outcomes = outcomes
        self.max_age = timedelta(seconds=max_age_s)
        self.sweep_every_s = sweep_every_s
        self.recheck = timedelta(seconds=recheck_s)
        self._next_due: datetime | None = None  # None: not known yet, look now
        self._dispatch: Dispatch | None = None
        # replays run side by side (one person's at a time), a sweep alone
        self._turn = asyncio.Condition()
        self._replays = 0
        self._sweeps_waiting = 0
        self._sweeping = False
        self._people: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.loop = Periodic("parking-sweep", sweep_every_s, self.sweep_if_due)
        self.start = self.loop.start
        self.stop = self.loop.stop

    def attach(self, dispatch: Dispatch) -> None:
        """Wire the service's handlers in (done once by the composition root)."""
        self._dispatch = dispatch

    async def ensure_indexes(self) -> None:
        await self.db[PARKED].create_indexes(
            [
                IndexModel("person_id", name="by_person"),
                IndexModel("retry_at", name="by_retry"),
                IndexModel("parked_at", name="by_age"),
            ]
        )

    async def park(
        self,
        *,
        event_id: str,
        routing_key: str,
        body: bytes,
        person_id: str,
        reason: str,
        producer: str | None = None,
        partner_event_id: str | None = None,
    ) -> bool:
        """Keep the event for later; False (and nothing kept) if the person was erased:
        an event about them is never applicable again and must not keep their data.
        ``producer`` is a partner event's verified producer: its outcome is recorded
        for it (under ``partner_event_id``), and its dead letter still names it."""
        if await self._erased(person_id):
            await record_ignored(self.db, event_id, routing_key)
            return False
        now = datetime.now(UTC)
        await self.db[PARKED].update_one(
            {"_id": event_id},
            {
                "$setOnInsert": {
                    "routing_key": routing_key,
                    "body": body,
                    "person_id": person_id,
                    "parked_at": now,
                    "attempts": 0,
                    "retry_at": now + timedelta(seconds=self.sweep_every_s),
                    "producer": producer,
                    "partner_event_id": partner_event_id or event_id,
                    # its replay, whenever and wherever, continues the event's trace
                    "traceparent": tracing.current_traceparent(),
                },
                "$set": {"reason": reason},
            },
            upsert=True,
        )
        self._due_by(now + timedelta(seconds=self.sweep_every_s))
        return True

    def _due_by(self, when: datetime) -> None:
        if self._next_due is not None and when < self._next_due:
            self._next_due = when

    async def _erased(self, person_id: str) -> bool:
        try:
            subject = uuid.UUID(person_id)
        except ValueError:
            return False
        return await is_erased(self.db, subject)

    async def count(self) -> int:
        return await self.db[PARKED].count_documents({})

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """A sweep runs alone in this process. Without that it could dead-letter an
        expired event that a replay was applying at that moment: the event was then
        applied *and* dead-lettered. A replay or sweep started from inside a replayed
        handler runs in the same task and does not wait for itself."""
        if _INSIDE.get():
            yield
            return
        async with self._turn:
            self._sweeps_waiting += 1  # no new replay starts meanwhile: the sweep's turn
            await self._turn.wait_for(lambda: not self._sweeping and self._replays == 0)
            self._sweeps_waiting -= 1
            self._sweeping = True
        token = _INSIDE.set(True)
        try:
            yield
        finally:
            _INSIDE.reset(token)
            async with self._turn:
                self._sweeping = False
                self._turn.notify_all()

    @asynccontextmanager
    async def _replaying(self, person_ids: list[str]) -> AsyncIterator[None]:
        """Replays side by side, never during a sweep; one person's one at a time (so
        the same parked event is not applied by two and reported a duplicate)."""
        if _INSIDE.get():
            yield
            return
        async with self._turn:
            await self._turn.wait_for(lambda: not self._sweeping and not self._sweeps_waiting)
            self._replays += 1
        token = _INSIDE.set(True)
        try:
            async with contextlib.AsyncExitStack() as held:
                for person_id in sorted(set(person_ids)):  # one order: no deadlock
                    lock = self._people.setdefault(person_id, asyncio.Lock())
                    await held.enter_async_context(lock)
                yield
        finally:
            _INSIDE.reset(token)
            async with self._turn:
                self._replays -= 1
                self._turn.notify_all()

    async def replay_for(self, person_ids: Iterable[str]) -> int:
        """Try the parked events of these people now; returns how many were applied."""
        people = list(person_ids)
        async with self._replaying(people):
            docs = await self.db[PARKED].find({"person_id": {"$in": people}}).to_list()
            return await self._replay(docs)

    async def _replay(self, docs: list[Document]) -> int:
        if self._dispatch is None or not docs:
            return 0
        applied = 0
        for doc in sorted(docs, key=lambda d: d["parked_at"]):
            try:
                with tracing.continued(doc.get("traceparent")):
                    await self._dispatch(doc["routing_key"], bytes(doc["body"]))
            except AboutErasedPerson:
                await self._record(doc, Status.IGNORED, NOT_IN_LOTSE)
            except AlreadyApplied:
                await self._record(doc, Status.DUPLICATE, "applied before; not again")
            except NotYetApplicable as exc:
                attempts = int(doc.get("attempts", 0)) + 1
                pause = min(timedelta(seconds=self.sweep_every_s * 2**attempts), MAX_PAUSE)
                self._due_by(datetime.now(UTC) + pause)
                await self.db[PARKED].update_one(
                    {"_id": doc["_id"]},
                    {
                        "$set": {
                            "reason": str(exc),
                            "attempts": attempts,
                            "retry_at": datetime.now(UTC) + pause,
                        }
                    },
                )
                await self._record(
                    doc, Status.PARKED, f"waiting: {exc}", next_attempt_at=datetime.now(UTC) + pause
                )
                continue
            except (ValidationError, DomainError) as exc:
                await self._dead_letter(doc, str(exc), fields=failing_fields(exc))
                continue
            else:
                await self._record(doc, Status.APPLIED)
            await self.db[PARKED].delete_one({"_id": doc["_id"]})
            applied += 1
        return applied

    async def sweep_if_due(self) -> None:
        if self._next_due is not None and datetime.now(UTC) < self._next_due:
            return
        await self.sweep()

    async def sweep(self) -> tuple[int, int]:
        """Retry what is due, dead-letter what waited too long; then note when the
        next sweep has something to do."""
        async with self._exclusive():
            done = await self._sweep()
            self._next_due = await self._earliest_due()
            return done

    async def _earliest_due(self) -> datetime:
        now = datetime.now(UTC)
        parked = self.db[PARKED]
        retry = await parked.find({}, {"retry_at": 1}).sort("retry_at", 1).limit(1).to_list()
        oldest = await parked.find({}, {"parked_at": 1}).sort("parked_at", 1).limit(1).to_list()
        due = [d["retry_at"] for d in retry] + [d["parked_at"] + self.max_age for d in oldest]
        return min([now + self.recheck, *due])

    async def _sweep(self) -> tuple[int, int]:
        now = datetime.now(UTC)
        expired = 0
        old = await self.db[PARKED].find({"parked_at": {"$lt": now - self.max_age}}).to_list()
        for doc in old:
            await self._dead_letter(
                doc, f"{doc['reason']}; waited longer than {self.max_age}", replayed=False
            )
            expired += 1
        due = await self.db[PARKED].find({"retry_at": {"$lte": now}}).to_list()
        return (await self._replay(due), expired)

    async def _dead_letter(
        self, doc: Document, reason: str, fields: list[str] | None = None, *, replayed: bool = True
    ) -> None:
        await self.dead_letters.send(
            body=bytes(doc["body"]),
            headers={},
            routing_key=doc["routing_key"],
            reason=reason,
            error_type="NotApplicable",
            message_id=doc["_id"],
            correlation_id=None,
            # an operator's replay of it must not fail the producer check
            verified_producer=doc.get("producer"),
        )
        await self._record(
            doc, Status.DEAD_LETTERED, reason, fields=fields or [], replayed=replayed
        )
        await self.db[PARKED].delete_one({"_id": doc["_id"]})
        log.warning("parked event %s dead-lettered: %s", doc["_id"], reason)

    async def _record(
        self,
        doc: Document,
        status: Status,
        reason: str | None = None,
        *,
        fields: list[str] | None = None,
        next_attempt_at: datetime | None = None,
        replayed: bool = True,
    ) -> None:
        """The parked partner event's new outcome, for its producer (never raises).
        Its attempts: the first delivery, the replays before, and this one if replayed."""
        producer = doc.get("producer")
        if self.outcomes is None or not producer:
            return
        await self.outcomes.record(
            producer=producer,
            event_id=str(doc.get("partner_event_id") or doc["_id"]),
            routing_key=doc["routing_key"],
            status=status,
            reason=reason,
            fields=fields or [],
            attempts=int(doc.get("attempts", 0)) + 1 + int(replayed),
            next_attempt_at=next_attempt_at,
        )
