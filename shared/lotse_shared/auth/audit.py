"""The audit trail: who read or changed what, when, through which
endpoint, and with what outcome.

Every request that carried a valid token is recorded, refused ones (403, and the
404 another district's id gets) included, so probing shows up too. Rows are only
ever inserted: this module has no update or delete. The one exception is an
erasure (``MongoTransaction.erase_plumbing``), which replaces the erased
person's id in their entries by ``erased:<erasure id>``; so in production the
services' MongoDB user needs ``insert``, ``find`` and ``update`` on the collection,
never ``remove``.
An admin reads the log of their own district through ``GET /audit``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field
from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from lotse_shared.persistence.mongo import AUDIT

from .principal import Principal

Document = dict[str, Any]
COLLECTION = AUDIT
# path and query parameters that name whose data was touched
SUBJECT_KEYS = ("person_id", "enrolment_id", "notification_id", "course_id", "recipient")


class AuditEntry(BaseModel):
    entry_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    service: str
    user: str
    role: str | None
    district_id: str | None
    method: str
    endpoint: str = Field(description="The route as declared, e.g. /people/{person_id}")
    path: str
    subjects: dict[str, str] = Field(
        default_factory=dict, description="Whose data: person_id, enrolment_id, ... as called"
    )
    status: int
    outcome: str = Field(description="allowed (2xx/3xx), refused (401/403/404), or failed")


def outcome_of(status: int) -> str:
    if status < 400:
        return "allowed"
    if status in (401, 403, 404):
        return "refused"
    return "failed"


class AuditLog:
    def __init__(self, db: AsyncDatabase[Document], service: str) -> None:
        self.rows = db[COLLECTION]
        self.service = service

    async def ensure_indexes(self) -> None:
        await self.rows.create_indexes(
            [
                IndexModel([("district_id", 1), ("at", DESCENDING)], name="by_district"),
                IndexModel([("subjects.person_id", 1), ("at", DESCENDING)], name="by_person"),
                IndexModel([("user", 1), ("at", DESCENDING)], name="by_user"),
            ]
        )

    def entry(
        self,
        principal: Principal,
        *,
        method: str,
        endpoint: str,
        path: str,
        subjects: dict[str, str],
        status: int,
    ) -> AuditEntry:
        return AuditEntry(
            service=self.service,
            user=principal.user_id,
            role=principal.role.value if principal.roles else None,
            district_id=principal.district_id,
            method=method,
            endpoint=endpoint,
            path=path,
            subjects=subjects,
            status=status,
            outcome=outcome_of(status),
        )

    async def append(self, entry: AuditEntry) -> None:
        doc = entry.model_dump(exclude={"entry_id"})
        doc["_id"] = entry.entry_id
        await self.rows.insert_one(doc)

    async def query(
        self,
        *,
        district_id: str,
        person_id: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        query: Document = {"district_id": district_id}
        if person_id:
            query["subjects.person_id"] = person_id
        if user:
            query["user"] = user
        if since:
            query["at"] = {"$gte": since}
        cursor = self.rows.find(query).sort([("at", -1), ("_id", 1)]).skip(offset).limit(limit)
        return [AuditEntry.model_validate({**d, "entry_id": d["_id"]}) async for d in cursor]


def concerning(request: Request, **ids: object) -> None:
    """Name in the audit row whose data a call touched when its path does not say it
    (an enrolment's person, a new person's id)."""
    noted: dict[str, str] = getattr(request.state, "audit_subjects", {})
    noted.update({k: str(v) for k, v in ids.items()})
    request.state.audit_subjects = noted


def redact(request: Request, value: str, replacement: str) -> None:
    """Write ``replacement`` instead of ``value`` in this call's audit entry (path and
    subjects): an erasure's own entry must not name the person it erased."""
    redactions: dict[str, str] = getattr(request.state, "audit_redactions", {})
    redactions[value] = replacement
    request.state.audit_redactions = redactions
