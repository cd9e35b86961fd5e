"""The envelope every Lotse event travels in.

An event on the wire is one JSON object::

    {"event_id": "...", "event_type": "courses.course.completed", "event_version": 1,
     "occurred_at": "2026-11-24T09:00:00Z", "producer": "courses",
     "correlation_id": "...", "causation_id": "...", "payload": {...}}

Each concrete event class pins ``event_type`` and ``event_version`` with
``Literal`` types, so a message of the wrong type or version fails validation
instead of being half-understood; they are stated there once, and the defaults and the
routing key (``<event_type>.v<version>``) follow from them. A breaking change gets a
new class (``...V2``) published beside the old one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CausedBy:
    """An event's place in a flow, when the event itself is no longer at hand (e.g. kept
    with work that a later transaction finishes)."""

    event_id: uuid.UUID
    correlation_id: uuid.UUID


class Payload(BaseModel):
    """Base of every payload: frozen, unknown fields ignored (forward compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class PartnerPayload(Payload):
    """Payloads partners send: unknown fields are an error, so a typo is reported by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(BaseModel):
    """Envelope fields shared by every event. Subclasses add ``payload``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ROUTING_KEY: ClassVar[str]
    DESCRIPTION: ClassVar[str] = ""

    # Required, no default: an event that arrived without one was given a fresh id, so
    # each redelivery of it was applied again.
    event_id: uuid.UUID = Field(description="Unique per event; the idempotency key.")
    event_type: str = Field(description="Dotted name, e.g. courses.course.completed.")
    event_version: int = Field(description="Schema version of the payload.")
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    producer: str = Field(
        min_length=1, max_length=64, description="Service or partner that produced it."
    )
    correlation_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="Shared by every event of one business flow."
    )
    causation_id: uuid.UUID | None = Field(
        default=None, description="event_id of the event that caused this one."
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """A concrete event (one whose type and version are ``Literal``) gets them as
        defaults, and its routing key from them."""
        super().__pydantic_init_subclass__(**kwargs)
        fields = cls.model_fields
        type_ = get_args(fields["event_type"].annotation)
        version = get_args(fields["event_version"].annotation)
        if not (type_ and version):
            return  # an abstract base of events
        fields["event_type"].default, fields["event_version"].default = type_[0], version[0]
        cls.ROUTING_KEY = f"{type_[0]}.v{version[0]}"
        cls.model_rebuild(force=True)

    @classmethod
    def create(
        cls, payload: Payload, *, producer: str, cause: Event | CausedBy | None = None
    ) -> Self:
        """Build an event; with ``cause``, it joins the cause's flow (correlation/causation)."""
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "producer": producer,
            "payload": payload,
        }
        if cause is not None:
            fields["correlation_id"] = cause.correlation_id
            fields["causation_id"] = cause.event_id
        return cls(**fields)

    def to_wire(self) -> bytes:
        return self.model_dump_json().encode()
