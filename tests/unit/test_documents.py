"""The one model ↔ document mapping the repositories share."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from pydantic import BaseModel

from lotse_shared.contracts.common import CefrLevel
from lotse_shared.persistence.documents import from_document, to_document


class Thing(BaseModel):
    thing_id: uuid.UUID
    owner_id: uuid.UUID
    level: CefrLevel
    due_on: date
    created_at: datetime


def test_the_id_becomes_underscore_id_and_native_fields_keep_their_types() -> None:
    thing = Thing(
        thing_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        level=CefrLevel.B1,
        due_on=date(2026, 12, 1),
        created_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
    )
    doc = to_document(thing, "thing_id", native=("owner_id", "created_at"))
    assert doc["_id"] == thing.thing_id
    assert "thing_id" not in doc
    assert doc["owner_id"] == thing.owner_id  # a UUID, compared as one in the database
    assert doc["created_at"] == thing.created_at  # a date the database sorts
    assert doc["level"] == "B1"
    assert doc["due_on"] == "2026-12-01"  # JSON's form
    assert from_document(Thing, {**doc, "lease": 1}, "thing_id", drop=("lease",)) == thing
