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
  ``UnitOfWork.transaction`` and ``ParkingLot.park``), so a late or replayed event
  cannot bring the person back.

The consumers' inbox (dedup) records hold event ids and types only, nothing about
the person, and stay for their dedup window.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from .auth.audit import COLLECTION as AUDIT
from .contracts.intake import PersonErased
from .messaging.parking import PARKED
from .persistence.mongo import ERASURES, OUTBOX, Transaction, UnitOfWork

log = logging.getLogger("lotse.erasure")

Document = dict[str, Any]
# A service's own part: delete or anonymise its collections; returns counts per collection.
PersonEraser = Callable[[Transaction, uuid.UUID], Awaitable[dict[str, int]]]


def erased_marker(erasure_id: uuid.UUID) -> str:
    """What replaces the person's id where a record of the fact must stay (audit)."""
    return f"erased:{erasure_id}"


async def erase_plumbing(
    tx: Transaction, person_id: uuid.UUID, erasure_id: uuid.UUID
) -> dict[str, int]:
    """Outbox rows and parked events about the person; the audit entries naming them."""
    db, session = tx.db, tx.session
    outbox = await db[OUTBOX].delete_many({"person_id": person_id}, session=session)
    parked = await db[PARKED].delete_many({"person_id": str(person_id)}, session=session)
    return {
        OUTBOX: outbox.deleted_count,
        PARKED: parked.deleted_count,
        AUDIT: await anonymise_audit(tx, person_id, erasure_id),
    }


async def anonymise_audit(tx: Transaction, person_id: uuid.UUID, erasure_id: uuid.UUID) -> int:
    """The one change the append-only audit log allows: the erased person's id, in the
    subjects and the path, becomes ``erased:<erasure id>``."""
    rows = tx.db[AUDIT]
    old, new = str(person_id), erased_marker(erasure_id)
    changed = 0
    async for row in rows.find(
        {"subjects.person_id": old}, {"path": 1, "subjects": 1}, session=tx.session
    ):
        subjects = {k: new if v == old else v for k, v in row.get("subjects", {}).items()}
        await rows.update_one(
            {"_id": row["_id"]},
            {"$set": {"subjects": subjects, "path": str(row.get("path", "")).replace(old, new)}},
            session=tx.session,
        )
        changed += 1
    return changed


async def keep_tombstone(
    tx: Transaction, person_id: uuid.UUID, erasure_id: uuid.UUID, erased_at: datetime
) -> None:
    await tx.db[ERASURES].replace_one(
        {"_id": person_id},
        {
            "_id": person_id,
            "erasure_id": erasure_id,
            "erased_at": erased_at,
            "applied_at": datetime.now(UTC),
        },
        upsert=True,
        session=tx.session,
    )


async def apply_erasure(
    uow: UnitOfWork, event: PersonErased, erase_own: PersonEraser, service: str
) -> dict[str, int]:
    """A consumer's whole erasure, in one transaction with the event's inbox record."""
    p = event.payload
    async with uow.transaction(applying=event) as tx:
        counts = await erase_own(tx, p.person_id)
        counts |= await erase_plumbing(tx, p.person_id, p.erasure_id)
        await keep_tombstone(tx, p.person_id, p.erasure_id, p.erased_at)
    # no name, no person id in the log: the erasure id leads to intake's record
    log.warning(
        "%s applied erasure %s (district %s): %s",
        service,
        p.erasure_id,
        p.district_id,
        ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
    )
    return counts
