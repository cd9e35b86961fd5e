"""Erasure on request: what every service does to forget a person.

intake erases a person when an admin asks (``POST /people/{id}/erasure``) and
publishes ``intake.person.erased.v1``. Every service then, in one transaction:

- deletes what its own collections hold about the person (its ``PersonEraser``);
- deletes the plumbing rows about them: outbox rows, sent or still pending (a late
  publish must not undo the erasure), and parked events;
- anonymises the audit trail: the entries stay (that somebody read or changed
  something, when, and with what outcome is the point of an audit log), but the
  person's id in them is replaced by ``erased:<erasure id>``;
- keeps a tombstone in ``erasures`` (person id, erasure id, when), the only trace
  left. Events about a tombstoned person are acknowledged and ignored (see
  ``MongoUnitOfWork.transaction`` and ``ParkingLot.park``), so a late or replayed event
  cannot bring the person back.

The consumers' inbox (dedup) records hold event ids and types only, nothing about
the person, and stay for their dedup window.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from .contracts.intake import PersonErased
from .persistence.mongo import erased_marker
from .persistence.unit import Transaction, UnitOfWork

log = logging.getLogger("lotse.erasure")

# A service's own part: delete or anonymise its collections; returns counts per collection.
PersonEraser = Callable[[Transaction, uuid.UUID], Awaitable[dict[str, int]]]

__all__ = ["PersonEraser", "apply_erasure", "erased_marker"]


async def apply_erasure(
    uow: UnitOfWork, event: PersonErased, erase_own: PersonEraser, service: str
) -> dict[str, int]:
    """A consumer's whole erasure, in one transaction with the event's inbox record."""
    p = event.payload
    async with uow.transaction(applying=event) as tx:
        counts = await erase_own(tx, p.person_id)
        counts |= await tx.erase_plumbing(p.person_id, p.erasure_id)
        await tx.keep_tombstone(p.person_id, p.erasure_id, p.erased_at)
    # no name, no person id in the log: the erasure id leads to intake's record
    log.warning(
        "%s applied erasure %s (district %s): %s",
        service,
        p.erasure_id,
        p.district_id,
        ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
    )
    return counts
