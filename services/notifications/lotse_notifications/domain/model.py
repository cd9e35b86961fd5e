"""Who is told what. Pure: no I/O.

The routing table says which roles hear about which kind of event; a person's
contacts (from intake) say who holds those roles for that person.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from lotse_shared.contracts.common import ContactRole, DistrictId, Language
from lotse_shared.contracts.intake import ResponsibleContact


class Kind(StrEnum):
    SUGGESTIONS_READY = "suggestions_ready"
    COURSE_COMPLETED = "course_completed"
    COURSE_DROPPED = "course_dropped"


ROUTING: dict[Kind, frozenset[ContactRole]] = {
    Kind.SUGGESTIONS_READY: frozenset({ContactRole.CASEWORKER}),
    Kind.COURSE_COMPLETED: frozenset({ContactRole.CASEWORKER, ContactRole.MENTOR}),
    Kind.COURSE_DROPPED: frozenset({ContactRole.CASEWORKER, ContactRole.MENTOR}),
}


class Recipients(BaseModel):
    """notifications' read model of a person: name, contacts, and email consent."""

    person_id: uuid.UUID
    district_id: DistrictId
    revision: int
    display_name: str
    contacts: list[ResponsibleContact]
    email_consent: bool

    def told_about(self, kind: Kind) -> list[ResponsibleContact]:
        roles = ROUTING[kind]
        seen: set[str] = set()
        chosen = []
        for contact in self.contacts:
            if contact.role in roles and contact.email.lower() not in seen:
                seen.add(contact.email.lower())
                chosen.append(contact)
        return chosen


class EmailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # no consent to send this person's data by email


class Notification(BaseModel):
    notification_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    person_id: uuid.UUID
    district_id: DistrictId
    kind: Kind
    recipient_email: str
    recipient_name: str
    recipient_role: ContactRole
    language: Language
    subject: str
    body: str
    facts: dict[str, Any] = Field(default_factory=dict)
    cause_event_id: str
    correlation_id: str | None = None  # the business flow it belongs to, for tracing
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    read_at: datetime | None = None
    email_status: EmailStatus = EmailStatus.PENDING
    email_attempts: int = 0
    email_next_attempt_at: datetime | None = None
    email_sent_at: datetime | None = None
    email_last_error: str | None = None


RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)


def next_attempt(attempts: int, now: datetime) -> datetime:
    """When to try an email again after ``attempts`` temporary failures."""
    return now + RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
