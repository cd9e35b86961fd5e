"""An in-memory unit of work with the semantics the use cases rely on from MongoDB's:
all or nothing per transaction, the inbox that recognises a repeated event, the
tombstones that keep an erased person out, and the outbox of committed events."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import PersonErased
from lotse_shared.errors import AboutErasedPerson, AlreadyApplied, NotYetApplicable
from lotse_shared.persistence.mongo import subject_of
from lotse_shared.persistence.unit import Transaction

E = TypeVar("E", bound=Event)


class MemoryStore:
    """Base of the in-memory repositories: their state lives in plain attributes, which
    the unit of work copies when a transaction starts and puts back when it fails."""

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        uow.stores.append(self)

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(vars(self))

    def restore(self, state: dict[str, Any]) -> None:
        vars(self).clear()
        vars(self).update(state)


@dataclass
class InMemoryTransaction:
    uow: InMemoryUnitOfWork
    events: list[Event] = field(default_factory=list)

    def publish(self, event: Event) -> None:
        self.events.append(event)

    async def has_applied(self, event_id: str) -> bool:
        return event_id in self.uow.inbox

    async def erase_plumbing(self, person_id: uuid.UUID, erasure_id: uuid.UUID) -> dict[str, int]:
        before = len(self.uow.outbox)
        self.uow.outbox = [e for e in self.uow.outbox if subject_of(e) != person_id]
        return {"outbox": before - len(self.uow.outbox), "parked": 0, "audit_log": 0}

    async def keep_tombstone(
        self, person_id: uuid.UUID, erasure_id: uuid.UUID, erased_at: datetime
    ) -> None:
        self.uow.erased[person_id] = erasure_id


def _is_erasure(event: Event) -> bool:
    return isinstance(event, PersonErased)


@dataclass
class InMemoryUnitOfWork:
    inbox: dict[str, str | None] = field(default_factory=dict)  # event id -> why ignored
    # every event committed, in commit order, as the relay would have published it
    committed: list[Event] = field(default_factory=list)
    outbox: list[Event] = field(default_factory=list)  # the rows: an erasure deletes some
    erased: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # person -> erasure
    stores: list[MemoryStore] = field(default_factory=list)
    commits: int = 0

    @asynccontextmanager
    async def transaction(self, applying: Event | None = None) -> AsyncIterator[Transaction]:
        before = (
            dict(self.inbox),
            list(self.outbox),
            dict(self.erased),
            [s.snapshot() for s in self.stores],
        )
        if applying is not None:
            event_id = str(applying.event_id)
            if event_id in self.inbox:
                raise AlreadyApplied(event_id)
            person_id = subject_of(applying)
            if person_id in self.erased and not _is_erasure(applying):
                self.inbox[event_id] = "person erased"
                raise AboutErasedPerson(event_id)
            self.inbox[event_id] = None
        tx = InMemoryTransaction(self)
        try:
            yield tx
        except BaseException as exc:
            # the port's rule, which group commit relies on: waiting is decided before
            # any write
            written = isinstance(exc, NotYetApplicable) and (
                tx.events
                or any(s.snapshot() != b for s, b in zip(self.stores, before[3], strict=True))
            )
            self.inbox, self.outbox, self.erased = before[0], before[1], before[2]
            for store, state in zip(self.stores, before[3], strict=True):
                store.restore(state)
            if written:
                raise AssertionError(f"NotYetApplicable after a write: {exc}") from exc
            raise
        events = tx.events
        if applying is None:
            events = [e for e in events if _is_erasure(e) or subject_of(e) not in self.erased]
        self.outbox.extend(events)
        self.committed.extend(events)
        self.commits += 1

    async def handled_without_effects(self, event: Event, why: str) -> None:
        self.inbox.setdefault(str(event.event_id), why)

    def published(self, kind: type[E]) -> list[E]:
        """The committed events of one kind, oldest first."""
        return [e for e in self.committed if isinstance(e, kind)]
