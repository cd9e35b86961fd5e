"""A service with no traffic leaves the database alone: the outbox relay and the
parking lot's sweep query it only when something can be due."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from lotse_shared.messaging.outbox import OutboxRelay
from lotse_shared.messaging.parking import ParkingLot


class CountingCollection:
    """Answers every query with nothing and counts it."""

    def __init__(self, calls: Counter[str], name: str) -> None:
        self.calls, self.name = calls, name

    def find(self, *args: Any, **kwargs: Any) -> CountingCollection:
        self.calls[f"find {self.name}"] += 1
        return self

    def sort(self, *args: Any) -> CountingCollection:
        return self

    def limit(self, n: int) -> CountingCollection:
        return self

    async def to_list(self) -> list[Any]:
        return []

    async def update_one(self, *args: Any, **kwargs: Any) -> None:
        self.calls[f"update {self.name}"] += 1

    async def find_one(self, *args: Any, **kwargs: Any) -> None:
        self.calls[f"find_one {self.name}"] += 1


class CountingDatabase:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __getitem__(self, name: str) -> CountingCollection:
        return CountingCollection(self.calls, name)


async def test_an_idle_relay_looks_for_leftovers_once_per_interval() -> None:
    db = CountingDatabase()
    relay = OutboxRelay(db, broker=None, exchange=None, recover_every_s=10)  # type: ignore[arg-type]
    for _ in range(20):  # what twenty wake-ups without a commit would do
        await relay._round()
    assert db.calls == Counter({"find outbox": 1})  # at start; the next one in 10 s
    relay._next_recovery = 0.0  # the interval has passed
    await relay._round()
    assert db.calls == Counter({"find outbox": 2})


async def test_an_empty_parking_lot_is_looked_at_once_per_recheck() -> None:
    db = CountingDatabase()
    lot = ParkingLot(db, dead_letters=None, max_age_s=3600, recheck_s=30)  # type: ignore[arg-type]
    for _ in range(20):
        await lot.sweep_if_due()
    # one sweep (expired, due) and when the next is due (first retry, oldest)
    assert db.calls == Counter({"find parked": 4})
    assert lot._next_due is not None
    assert lot._next_due > datetime.now(UTC) + timedelta(seconds=25)

    # an event parked here is due sooner: the sweep comes for it then, not later
    await lot.park(event_id="e1", routing_key="k", body=b"{}", person_id="p", reason="why")
    assert lot._next_due < datetime.now(UTC) + timedelta(seconds=6)


class RefusingBroker:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker unreachable")


async def test_a_failed_publish_brings_the_next_look_for_leftovers_forward() -> None:
    relay = OutboxRelay(
        CountingDatabase(),  # type: ignore[arg-type]
        broker=RefusingBroker(),  # type: ignore[arg-type]
        exchange=None,  # type: ignore[arg-type]
        recover_every_s=600,
    )
    row = {"_id": "e1", "body": b"{}", "routing_key": "k", "correlation_id": "c", "event_type": "t"}
    relay._next_recovery = time.monotonic() + 600
    assert await relay._publish_and_mark([row]) == 0
    # once its lease has run out (10 s), not at the next interval (600 s)
    assert relay._next_recovery < time.monotonic() + 12
    relay._next_recovery = 0.0  # a recovery already due stays due
    await relay._publish_and_mark([row])
    assert relay._next_recovery == 0.0


class ConfirmingBroker:
    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, *args: Any, message_id: str, **kwargs: Any) -> None:
        self.published.append(message_id)


async def test_what_is_published_in_quick_rounds_is_marked_sent_in_one_write(
    monkeypatch: Any,
) -> None:
    """Each commit kicks a round; under load a round publishes a row or two. They are
    published at once and marked together, not with a write per round."""
    marks: list[list[str]] = []

    async def recording(db: Any, write: Any) -> None:
        class Outbox:
            async def update_many(self, query: Any, update: Any, session: Any) -> None:
                assert set(update["$set"]) == {"sent_at", "sent_at_ttl"}
                marks.append(list(query["_id"]["$in"]))

        class Db:
            def __getitem__(self, name: str) -> Outbox:
                assert name == "outbox"
                return Outbox()

        relay.db = Db()  # type: ignore[assignment]
        await write(None)

    monkeypatch.setattr("lotse_shared.messaging.outbox.in_transaction", recording)
    broker = ConfirmingBroker()
    relay = OutboxRelay(
        CountingDatabase(),  # type: ignore[arg-type]
        broker=broker,  # type: ignore[arg-type]
        exchange=None,  # type: ignore[arg-type]
        recover_every_s=600,
        mark_every_s=0.3,
    )
    relay._next_recovery = time.monotonic() + 600
    await relay.start()

    def row(i: int) -> dict[str, Any]:
        return {
            "_id": f"e{i}",
            "body": b"{}",
            "routing_key": "k",
            "correlation_id": "c",
            "event_type": "t",
        }

    try:
        for i in range(6):
            relay.kick([row(i)])
            await asyncio.sleep(0.02)
        assert broker.published == [f"e{i}" for i in range(6)]  # none waited for a mark
        await asyncio.sleep(0.5)
        # the first at once, the other five together once the interval had passed
        assert marks == [["e0"], ["e1", "e2", "e3", "e4", "e5"]]
        relay.kick([row(6)])
        await asyncio.sleep(0.02)
    finally:
        await relay.stop()
    assert marks[-1] == ["e6"]  # stopping marks what it sent, so no one sends it again
