"""What became of each partner message, for the partner to read (``GET /partner/messages``).

The consumer plumbing (deadletter's failure middleware, the parking lot) records
every partner event it handles here: applied, a duplicate, parked (and why),
retrying (attempt, next try), dead-lettered (reason, fields) or ignored. One
document per (producer, event id), overwritten by each later outcome, so a
partner sees a parked event turn applied or dead-lettered.

Only what the partner sent or what Lotse concluded is kept: event id, routing
key, producer, status, reason, field names, times and attempts, never the body.
A reason may name ids the partner sent (a ``person_id``), nothing else of a person.

Recording must never change what happens to the message: a failed write is
retried like any lost write conflict and otherwise logged, never raised. A message
is attributed only to a producer the broker vouched for (``user_id``); one without
``user_id`` is recorded nowhere, since no partner can be shown it safely.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from lotse_shared.errors import RuleViolation
from lotse_shared.persistence.retry import retry_transient

log = logging.getLogger("lotse.outcomes")

Document = dict[str, Any]
PARTNER_MESSAGES = "partner_messages"
MAX_ID_LENGTH = 200  # an event id is a partner's string until validated
MAX_REASON_LENGTH = 2000
# What a partner reads about an event whose person was erased: no more than that, since
# the partner's own id for them is all it sent.
NOT_IN_LOTSE = "not applied: its person is not in Lotse (any more); nothing of it was kept"


class Status(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # applied before: this copy changed nothing
    PARKED = "parked"  # waits for another event (e.g. the person's registration)
    RETRYING = "retrying"  # failed on Lotse's side; tried again later
    DEAD_LETTERED = "dead_lettered"  # will not be applied; the reason says why
    IGNORED = "ignored"  # nothing to apply: its person is not in Lotse (any more)


@dataclass(frozen=True)
class PartnerMessage:
    producer: str
    event_id: str
    routing_key: str
    status: Status
    reason: str | None
    fields: list[str]
    attempts: int
    next_attempt_at: datetime | None
    first_seen_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, doc: Document) -> PartnerMessage:
        return cls(
            producer=doc["producer"],
            event_id=doc["event_id"],
            routing_key=doc.get("routing_key", ""),
            status=Status(doc["status"]),
            reason=doc.get("reason"),
            fields=list(doc.get("fields") or []),
            attempts=int(doc.get("attempts") or 1),
            next_attempt_at=doc.get("next_attempt_at"),
            first_seen_at=doc["first_seen_at"],
            updated_at=doc["updated_at"],
        )


def failing_fields(exc: BaseException) -> list[str]:
    """The fields a validation error or rule violation names (``payload.level_reached``)."""
    if isinstance(exc, ValidationError):
        fields = []
        for err in exc.errors(include_url=False):
            path = list(err["loc"])
            if path and path[0] == "event":  # the handler's parameter, not the message's
                path = path[1:]
            field = ".".join(str(p) for p in path)
            if field and field not in fields:
                fields.append(field)
        return fields
    if isinstance(exc, RuleViolation):
        return [exc.field]
    return []


class PartnerMessages:
    """The ``partner_messages`` collection of one service's database."""

    def __init__(self, db: AsyncDatabase[Document], *, keep_s: float) -> None:
        self.db = db
        self.keep = timedelta(seconds=keep_s)

    async def ensure_indexes(self) -> None:
        await self.db[PARTNER_MESSAGES].create_indexes(
            [
                IndexModel([("producer", 1), ("event_id", 1)], unique=True, name="by_event"),
                IndexModel([("producer", 1), ("updated_at", DESCENDING)], name="newest_first"),
                # coordinators' and admins' reads across partners
                IndexModel([("updated_at", DESCENDING)], name="all_newest_first"),
                IndexModel("event_id", name="by_event_id"),
                # each document carries its own expiry, so changing the setting needs no
                # collMod of the index
                IndexModel("expire_at", expireAfterSeconds=0, name="expiry"),
            ]
        )

    async def record(
        self,
        *,
        producer: str,
        event_id: str,
        routing_key: str,
        status: Status,
        reason: str | None = None,
        fields: Sequence[str] = (),
        attempts: int = 1,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Upsert the message's latest outcome; logs instead of raising."""
        if not producer or not event_id:
            return
        now = datetime.now(UTC)
        key = {"producer": producer[:MAX_ID_LENGTH], "event_id": event_id[:MAX_ID_LENGTH]}
        update = {
            "$set": {
                "routing_key": routing_key[:MAX_ID_LENGTH],
                "status": status.value,
                "reason": reason[:MAX_REASON_LENGTH] if reason is not None else None,
                "fields": [f[:MAX_ID_LENGTH] for f in fields[:50]],
                "attempts": attempts,
                "next_attempt_at": next_attempt_at,
                "updated_at": now,
                "expire_at": now + self.keep,
            },
            "$setOnInsert": {"first_seen_at": now},
        }

        async def upsert() -> None:
            try:
                await self.db[PARTNER_MESSAGES].update_one(key, update, upsert=True)
            except DuplicateKeyError:  # two outcomes of one event at once: the insert lost
                await self.db[PARTNER_MESSAGES].update_one(key, update)

        try:
            await retry_transient(upsert)
        except Exception:
            log.exception("could not record %s of event %s (%s)", status, event_id, producer)

    async def newest(
        self, producer: str | None, *, status: Status | None = None, limit: int = 50
    ) -> list[PartnerMessage]:
        """The producer's messages (None: every producer's), latest outcome first."""
        query: Document = {} if producer is None else {"producer": producer}
        if status is not None:
            query["status"] = status.value
        cursor = self.db[PARTNER_MESSAGES].find(query).sort("updated_at", DESCENDING).limit(limit)
        return [PartnerMessage.of(doc) for doc in await cursor.to_list()]

    async def get(self, producer: str, event_id: str) -> PartnerMessage | None:
        doc = await self.db[PARTNER_MESSAGES].find_one({"producer": producer, "event_id": event_id})
        return PartnerMessage.of(doc) if doc is not None else None

    async def with_event_id(self, event_id: str) -> list[PartnerMessage]:
        """Every producer's message with this event id (for staff, who name no partner)."""
        docs = await self.db[PARTNER_MESSAGES].find({"event_id": event_id}).to_list(10)
        return [PartnerMessage.of(doc) for doc in docs]
