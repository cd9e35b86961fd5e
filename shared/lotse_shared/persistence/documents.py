"""Models as MongoDB documents, and back: the one mapping every repository uses.

A model's own id (``person_id``, ``opening_id`` ...) is the document's ``_id``. Values
are stored as JSON would carry them (enums as their values, dates of the calendar as
text), except the ``native`` fields: timestamps and ids a query compares or sorts stay
BSON dates and UUIDs, since as text they would sort and compare wrongly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

Document = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


def to_document(model: BaseModel, id_field: str, *, native: Collection[str] = ()) -> Document:
    doc = model.model_dump(mode="json", exclude={id_field, *native})
    doc["_id"] = getattr(model, id_field)
    doc.update({name: getattr(model, name) for name in native})
    return doc


def from_document(
    model: type[M], doc: Mapping[str, Any], id_field: str, *, drop: Collection[str] = ()
) -> M:
    """``drop``: what the repository keeps beside the model (leases, search keys)."""
    data = {k: v for k, v in doc.items() if k not in drop}
    data[id_field] = data.pop("_id")
    return model.model_validate(data)
