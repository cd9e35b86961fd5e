"""Where placement keeps openings, its read model of people, and suggestions."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from lotse_shared.persistence.mongo import Transaction, save_if_newer

from .domain.matching import permitted_types
from .domain.model import Candidate, Opening

Document = dict[str, Any]
KM_PER_DEGREE_LAT = 111.0
MAX_REACH_KM = 150.0


def bounding_box(lat: float, lon: float, km: float) -> Document:
    """A lat/lon box around a point; cheap to index, refined by the exact distance."""
    dlat = km / KM_PER_DEGREE_LAT
    dlon = km / (KM_PER_DEGREE_LAT * max(math.cos(math.radians(lat)), 0.1))
    return {
        "lat": {"$gte": lat - dlat, "$lte": lat + dlat},
        "lon": {"$gte": lon - dlon, "$lte": lon + dlon},
    }


class PlacementRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.openings = db["openings"]
        self.people = db["people"]
        self.sets = db["suggestion_sets"]
        self.suggested = db["suggested"]
        self.imports = db["imports"]

    async def ensure_indexes(self) -> None:
        await self.openings.create_indexes(
            [
                IndexModel([("source", 1), ("source_ref", 1)], unique=True, name="source_ref"),
                IndexModel(
                    [("status", 1), ("opening_type", 1), ("required_rank", 1), ("lat", 1)],
                    name="open_by_type_level",
                ),
            ]
        )
        await self.people.create_indexes(
            [IndexModel([("permitted_types", 1), ("german_rank", 1), ("lat", 1)], name="matchable")]
        )
        await self.sets.create_indexes(
            [IndexModel([("person_id", ASCENDING), ("created_at", DESCENDING)], name="by_person")]
        )
        await self.suggested.create_indexes([IndexModel("person_id", name="by_person")])
        for collection in (self.people, self.openings):
            await collection.create_indexes(
                [IndexModel("match_pending.at", sparse=True, name="match_pending")]
            )

    # --- people read model ------------------------------------------------------
    async def save_candidate(self, tx: Transaction, person: Candidate) -> bool:
        """Store if newer than what we hold (events can overtake each other)."""
        return await save_if_newer(self.people, _candidate_doc(person), tx.session)

    async def candidate(
        self, person_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> Candidate | None:
        doc = await self.people.find_one({"_id": person_id}, session=session)
        return _candidate(doc) if doc else None

    async def candidates_for(
        self, opening: Opening, session: AsyncClientSession | None = None
    ) -> list[Candidate]:
        """People who could fit this opening, found by index; exact rules run after."""
        query: Document = {
            "permitted_types": opening.opening_type.value,
            "german_rank": {"$gte": opening.required_rank},
            "matching_consent": True,
            "district_id": opening.district_id,
            **bounding_box(opening.lat, opening.lon, MAX_REACH_KM),
        }
        return [_candidate(d) async for d in self.people.find(query, session=session)]

    # --- matching still to do (written with the change, cleared when matched) ---------
    async def mark_pending(
        self,
        tx: Transaction,
        kind: str,
        doc_id: uuid.UUID,
        marker: Document,
        *,
        course_level_of: Candidate | None = None,
    ) -> None:
        """Write the marker; with ``course_level_of``, that person's new course level in
        the same round trip."""
        collection = self.people if kind == "person" else self.openings
        changes: Document = {"match_pending": marker}
        if course_level_of is not None:
            changes |= {
                "course_level": course_level_of.course_level,
                "german_rank": course_level_of.german_rank,
            }
        await collection.update_one({"_id": doc_id}, {"$set": changes}, session=tx.session)

    async def pending_person(
        self, person_id: uuid.UUID, session: AsyncClientSession
    ) -> tuple[Document | None, Candidate | None]:
        """The person's match marker and the person, in one read."""
        doc = await self.people.find_one({"_id": person_id}, session=session)
        return (doc.get("match_pending"), _candidate(doc)) if doc else (None, None)

    async def pending_opening(
        self, opening_id: uuid.UUID, session: AsyncClientSession
    ) -> tuple[Document | None, Opening | None]:
        """The opening's match marker and the opening, in one read."""
        doc = await self.openings.find_one({"_id": opening_id}, session=session)
        return (doc.get("match_pending"), _opening(doc)) if doc else (None, None)

    async def clear_pending(
        self, tx: Transaction, kind: str, doc_id: uuid.UUID, marker: Document
    ) -> None:
        collection = self.people if kind == "person" else self.openings
        await collection.update_one(
            {"_id": doc_id, "match_pending.at": marker["at"]},
            {"$unset": {"match_pending": ""}},
            session=tx.session,
        )

    async def pending(self, kind: str, older_than: datetime) -> list[uuid.UUID]:
        collection = self.people if kind == "person" else self.openings
        cursor = collection.find({"match_pending.at": {"$lt": older_than}}, {"_id": 1})
        return [d["_id"] async for d in cursor]

    # --- openings -----------------------------------------------------------------
    async def opening_by_ref(
        self, source: str, source_ref: str, session: AsyncClientSession | None = None
    ) -> Opening | None:
        doc = await self.openings.find_one(
            {"source": source, "source_ref": source_ref}, session=session
        )
        return _opening(doc) if doc else None

    async def get_opening(
        self, opening_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> Opening | None:
        doc = await self.openings.find_one({"_id": opening_id}, session=session)
        return _opening(doc) if doc else None

    async def save_opening(
        self, tx: Transaction, opening: Opening, previous: Opening | None
    ) -> None:
        doc = _opening_doc(opening)
        if previous is None:
            await self.openings.insert_one(doc, session=tx.session)
            return
        history_entry = {
            k: v for k, v in _opening_doc(previous).items() if k not in ("_id", "history")
        }
        await self.openings.update_one(
            {"_id": opening.opening_id},
            {"$set": doc, "$push": {"history": history_entry}},
            session=tx.session,
        )

    async def openings_for(
        self, person: Candidate, reach_km: float, session: AsyncClientSession | None = None
    ) -> list[Opening]:
        """Open openings this person might take, found by index; exact rules run after."""
        types = [t.value for t in permitted_types(person)]
        if not types:
            return []
        query: Document = {
            "status": "open",
            "opening_type": {"$in": types},
            "required_rank": {"$lte": person.german_rank},
            "seats_free": {"$gt": 0},
            "district_id": person.district_id,
            **bounding_box(person.lat, person.lon, reach_km),
        }
        return [_opening(d) async for d in self.openings.find(query, session=session)]

    async def list_openings(self, status: str | None, limit: int, offset: int) -> list[Opening]:
        query = {"status": status} if status else {}
        cursor = self.openings.find(query).sort("published_at", -1).skip(offset).limit(limit)
        return [_opening(d) async for d in cursor]

    async def open_openings(self, district_id: str) -> list[Opening]:
        cursor = self.openings.find({"status": "open", "district_id": district_id})
        return [_opening(d) async for d in cursor]

    # --- suggestions ----------------------------------------------------------------
    async def already_suggested(
        self, person_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> set[str]:
        cursor = self.suggested.find({"person_id": person_id}, {"opening_id": 1}, session=session)
        return {str(d["opening_id"]) async for d in cursor}

    async def record_set(self, tx: Transaction, suggestion_set: Document) -> None:
        await self.sets.insert_one(suggestion_set, session=tx.session)
        now = datetime.now(UTC)
        await self.suggested.insert_many(
            [
                {
                    "_id": f"{suggestion_set['person_id']}:{s['opening_id']}",
                    "person_id": suggestion_set["person_id"],
                    "opening_id": s["opening_id"],
                    "suggestion_set_id": suggestion_set["_id"],
                    "at": now,
                }
                for s in suggestion_set["suggestions"]
            ],
            session=tx.session,
        )

    async def sets_of(self, person_id: uuid.UUID, limit: int = 20) -> list[Document]:
        cursor = self.sets.find({"person_id": person_id}).sort("created_at", -1).limit(limit)
        return [d async for d in cursor]

    # --- imports of partners' feeds ---------------------------------------------------
    async def open_refs(self, source: str) -> set[str]:
        cursor = self.openings.find({"source": source, "status": "open"}, {"source_ref": 1})
        return {d["source_ref"] async for d in cursor}

    async def add_import_batch(
        self, tx: Transaction, summary: Document, seen_refs: list[str]
    ) -> Document:
        """Add one batch's counts, rejections and references to its import; returns the
        import as it now stands."""
        counts = ("received", "created", "updated", "unchanged", "closed")
        doc = await self.imports.find_one_and_update(
            {"_id": summary["import_id"]},
            {
                "$setOnInsert": {
                    "source": summary["source"],
                    "format": summary["format"],
                    "started_at": datetime.now(UTC),
                    "completed": False,
                },
                "$set": {"updated_at": datetime.now(UTC), "full_feed": summary["full_feed"]},
                "$inc": {k: summary[k] for k in counts},
                "$push": {"rejected": {"$each": summary["rejected"]}},
                "$addToSet": {"seen_refs": {"$each": seen_refs}},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=tx.session,
        )
        assert doc is not None
        return doc

    async def get_import(
        self, import_id: uuid.UUID, session: AsyncClientSession | None = None
    ) -> Document | None:
        return await self.imports.find_one({"_id": import_id}, session=session)

    async def complete_import(
        self, tx: Transaction, import_id: uuid.UUID, full_feed: bool, closed: int
    ) -> Document | None:
        """Mark an import completed (once); None if it was completed already."""
        return await self.imports.find_one_and_update(
            {"_id": import_id, "completed": False},
            {
                "$set": {
                    "completed": True,
                    "full_feed": full_feed,
                    "completed_at": datetime.now(UTC),
                },
                "$inc": {"closed": closed},
            },
            return_document=ReturnDocument.AFTER,
            session=tx.session,
        )


def _candidate_doc(person: Candidate) -> Document:
    doc = person.model_dump(mode="json", exclude={"person_id"})
    doc["_id"] = person.person_id
    doc["german_rank"] = person.german_rank
    doc["permitted_types"] = sorted(t.value for t in permitted_types(person))
    return doc


def _candidate(doc: Document) -> Candidate:
    data = dict(doc)
    data["person_id"] = data.pop("_id")
    return Candidate.model_validate(data)


def _opening_doc(opening: Opening) -> Document:
    doc = opening.model_dump(mode="json", exclude={"opening_id", "published_at", "updated_at"})
    doc.update(
        _id=opening.opening_id,
        published_at=opening.published_at,
        updated_at=opening.updated_at,
        seats_free=opening.seats_free,
        required_rank=opening.required_rank,
    )
    return doc


def _opening(doc: Document) -> Opening:
    data = {k: v for k, v in doc.items() if k != "history"}
    data["opening_id"] = data.pop("_id")
    return Opening.model_validate(data)
