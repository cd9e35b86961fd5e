"""The unit of work as the use cases see it: a port, free of any database.

A use case opens a transaction, reads and writes through its repositories (each
method takes the transaction, reads and writes alike), records the events the change
causes with ``publish``, and commits by leaving the block; an exception anywhere
undoes all of it. ``lotse_shared.persistence.mongo`` is the adapter the services run
on; ``tests/fakes`` holds an in-memory one for the unit tier.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Protocol

from lotse_shared.contracts.envelope import Event


class Transaction(Protocol):
    """What a use case sees inside a unit of work."""

    events: list[Event]

    def publish(self, event: Event) -> None:
        """Record an event; it is written with the transaction and published after commit."""

    async def has_applied(self, event_id: str) -> bool:
        """Has this service applied (or handled without effects) that event, as far as
        this transaction sees?"""

    async def erase_plumbing(self, person_id: uuid.UUID, erasure_id: uuid.UUID) -> dict[str, int]:
        """Forget the person in what every service keeps beside its own data: outbox
        rows and parked events about them go, the audit entries naming them are
        anonymised. Returns counts per collection."""

    async def keep_tombstone(
        self, person_id: uuid.UUID, erasure_id: uuid.UUID, erased_at: datetime
    ) -> None:
        """Remember that the person was erased, so no later event brings them back."""


class UnitOfWork(Protocol):
    def transaction(
        self, applying: Event | None = None
    ) -> AbstractAsyncContextManager[Transaction]:
        """Open a transaction; with ``applying``, the event is recorded in the inbox in
        it: a repeat raises ``AlreadyApplied``, one about an erased person
        ``AboutErasedPerson`` (after recording the event as handled).

        A use case decides ``NotYetApplicable`` (the event waits in the parking lot)
        before it writes anything in the transaction: a group commit then goes on
        without that event instead of rolling back the others'."""

    async def handled_without_effects(self, event: Event, why: str) -> None:
        """Record ``event`` as handled with nothing to do, so a redelivery is known."""


class BatchAborted(Exception):
    """The group commit this transaction joined was rolled back: nothing of it was
    written. ``retry_transient`` runs the use case again at once: ``alone`` if this
    transaction caused it (its failure is then its own, under the usual rules), else
    in another batch."""

    def __init__(self, alone: bool) -> None:
        super().__init__("the batch was rolled back; " + ("alone" if alone else "rejoin"))
        self.alone = alone


_GROUP_COMMIT: ContextVar[bool] = ContextVar("lotse_group_commit", default=False)


@contextmanager
def group_commit(allowed: bool = True) -> Iterator[None]:
    """Inside, a unit of work may commit this task's transactions together with other
    tasks' (a consumer applying one message among many); ``allowed=False``: alone."""
    token = _GROUP_COMMIT.set(allowed)
    try:
        yield
    finally:
        _GROUP_COMMIT.reset(token)


def group_commit_allowed() -> bool:
    return _GROUP_COMMIT.get()


class WaitingEvents(Protocol):
    """Events parked until what they depend on arrives (``messaging.parking``): a use
    case that brings a person's facts asks for the events waiting on them."""

    async def replay_for(self, person_ids: Iterable[str]) -> int:
        """Try the parked events of these people now; returns how many were applied."""
