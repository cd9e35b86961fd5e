"""The outbox relay: publishes what transactions wrote to the outbox.

Fast path: the unit of work writes its outbox rows leased to this process for a
few seconds and hands them to the relay after the commit; the relay publishes
them from memory at once and marks them sent a little later (``mark_every_s``), in
one write for everything it published meanwhile: under load a round publishes one
or two rows, and a write per round was one more database operation per event. A
crash before the mark only means those events are published again once their lease
runs out, which consumers recognise (their inbox).

Recovery: every ``recover_every_s`` (not on every kick: under load that would be one
more query per commit), and soon after one of its own publishes failed, the relay
looks for rows whose lease ran out (their process crashed, or publishing failed),
leases a batch for itself (so replicas do not all publish it) and publishes it the
same way. An idle relay costs the database that one indexed query per interval.

Publishing is concurrent within a bound, each message with publisher confirms,
persistent delivery and ``mandatory`` (unroutable is an error). A crash between
publish and mark means the event is sent again; consumers are idempotent on the
event id, so that is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.rabbit import RabbitBroker, RabbitExchange
from pymongo.asynchronous.database import AsyncDatabase

from lotse_shared import tracing
from lotse_shared.background import Periodic
from lotse_shared.persistence.mongo import OUTBOX, OWN_LEASE_S, in_transaction

log = logging.getLogger("lotse.outbox")

Document = dict[str, Any]


class OutboxRelay:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        broker: RabbitBroker,
        exchange: RabbitExchange,
        *,
        recover_every_s: float = 10.0,
        batch_size: int = 500,
        concurrency: int = 64,
        lease_s: float = 30.0,
        mark_every_s: float = 0.25,
    ) -> None:
        self.db = db
        self.broker = broker
        self.exchange = exchange
        self.recover_every_s = recover_every_s
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_s)
        self._limit = asyncio.Semaphore(concurrency)
        self._fresh: list[Document] = []
        self._next_recovery = 0.0  # monotonic time of the next look for leftovers
        # far shorter than the own lease (OWN_LEASE_S): marked before any relay may retake
        self.mark_every_s = min(mark_every_s, OWN_LEASE_S / 4)
        self._published: list[str] = []  # sent, not yet marked
        self._next_mark = 0.0
        self._mark_timer: asyncio.TimerHandle | None = None
        # kicked by every commit; otherwise it wakes only when recovery is due
        self.loop = Periodic("outbox-relay", recover_every_s, self._round)
        self.start = self.loop.start

    async def stop(self) -> None:
        await self.loop.stop()
        if self._mark_timer is not None:
            self._mark_timer.cancel()
        if self._published:  # what it sent is marked, so no one sends it again
            try:
                await self._mark(force=True)
            except Exception:
                log.exception("marking %d sent event(s) at stop failed", len(self._published))

    def kick(self, committed: list[Document] | None = None) -> None:
        """Called after a commit with the rows it wrote (leased to this process)."""
        if committed:
            self._fresh.extend(committed)
        self.loop.kick()

    async def _round(self) -> bool:
        """Publish what was just committed, then, once recovery is due, one batch of
        leftovers. True if that batch was full (more may be waiting)."""
        while self._fresh:
            batch, self._fresh = self._fresh[: self.batch_size], self._fresh[self.batch_size :]
            await self._publish_and_mark(batch)
        await self._mark()
        if time.monotonic() < self._next_recovery:
            return False
        full = await self.publish_pending() == self.batch_size
        self._next_recovery = 0.0 if full else time.monotonic() + self.recover_every_s
        return full

    async def waiting(self) -> tuple[int, datetime | None]:
        """How many rows wait unsent, and when the oldest of them was committed."""
        unsent = {"sent_at": None}
        count = await self.db[OUTBOX].count_documents(unsent)
        oldest = (
            await self.db[OUTBOX]
            .find(unsent, {"created_at": 1})
            .sort("created_at", 1)
            .limit(1)
            .to_list()
        )
        return count, oldest[0]["created_at"] if oldest else None

    async def publish_pending(self) -> int:
        """Lease, publish and mark one batch; returns how many were published."""
        now = datetime.now(UTC)
        token = uuid.uuid4().hex
        candidates = (
            await self.db[OUTBOX]
            .find(
                {"sent_at": None, "lease_until": {"$lt": now}},
                {"_id": 1},
            )
            .sort("created_at", 1)
            .limit(self.batch_size)
            .to_list()
        )
        if not candidates:
            return 0
        ids = [c["_id"] for c in candidates]
        await in_transaction(
            self.db,
            lambda session: self.db[OUTBOX].update_many(
                {"_id": {"$in": ids}, "sent_at": None, "lease_until": {"$lt": now}},
                {"$set": {"lease_until": now + self.lease, "lease_token": token}},
                session=session,
            ),
        )
        leased = (
            await self.db[OUTBOX]
            .find({"lease_token": token, "sent_at": None})
            .sort("created_at", 1)
            .to_list()
        )
        sent = await self._publish_and_mark(leased)
        await self._mark(force=True)  # leased ones at once: the lease is the recovery's
        return sent

    async def _publish_and_mark(self, docs: list[Document]) -> int:
        """Publish concurrently; what the broker confirmed is marked by ``_mark``.
        Failures stay leased until their lease runs out, then the recovery path tries
        again."""
        results = await asyncio.gather(
            *(self._publish(doc) for doc in docs), return_exceptions=True
        )
        sent = [doc["_id"] for doc, ok in zip(docs, results, strict=True) if ok is True]
        failed = [doc["_id"] for doc, ok in zip(docs, results, strict=True) if ok is not True]
        for doc, result in zip(docs, results, strict=True):
            if result is not True:
                log.error("publishing outbox event %s failed: %r", doc["_id"], result)
        if failed:  # try them again once their lease has run out (or sooner, if due)
            retry_at = time.monotonic() + OWN_LEASE_S + 1.0
            self._next_recovery = min(self._next_recovery, retry_at)
        self._published.extend(sent)
        return len(sent)

    async def _mark(self, *, force: bool = False) -> None:
        """Mark what was published as sent, in one write, once ``mark_every_s`` has
        passed since the last mark (or a batch is full); else wake up for it then."""
        if not self._published:
            return
        now = time.monotonic()
        if not force and now < self._next_mark and len(self._published) < self.batch_size:
            if self._mark_timer is None:
                self._mark_timer = asyncio.get_running_loop().call_later(
                    self._next_mark - now, self._mark_due
                )
            return
        ids, self._published = self._published, []
        self._next_mark = now + self.mark_every_s
        done = datetime.now(UTC)
        try:
            await in_transaction(
                self.db,
                lambda session: self.db[OUTBOX].update_many(
                    {"_id": {"$in": ids}},
                    {"$set": {"sent_at": done, "sent_at_ttl": done}},
                    session=session,
                ),
            )
        except BaseException:
            self._published[:0] = ids  # marked with the next round
            raise

    def _mark_due(self) -> None:
        self._mark_timer = None
        self.loop.kick()

    async def _publish(self, doc: Document) -> bool:
        async with self._limit:
            with tracing.continued(doc.get("traceparent")):
                await self.broker.publish(
                    bytes(doc["body"]),
                    exchange=self.exchange,
                    routing_key=doc["routing_key"],
                    persist=True,
                    mandatory=True,
                    message_id=doc["_id"],
                    correlation_id=doc["correlation_id"],
                    content_type="application/json",
                    message_type=doc["event_type"],
                )
        return True
