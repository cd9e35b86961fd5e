"""Where placement keeps openings, its read model of people, suggestions, cases and
imports: the store the use cases see (a port), and its MongoDB adapter. Every method
takes the transaction it runs in, reads included; a read outside one passes none."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from lotse_shared.contracts.common import CefrLevel
from lotse_shared.persistence.documents import from_document, to_document
from lotse_shared.persistence.mongo import in_transaction, save_if_newer, session_of
from lotse_shared.persistence.unit import Transaction

from .domain.area import cell_of, reach_key, reach_keys_around
from .domain.caseload import OpenSuggestion
from .domain.matching import max_reach_km, permitted_types
from .domain.model import Candidate, MatchPending, Opening, OpeningFilter, OpeningStatus
from .domain.pipeline import Case
from .domain.reporting import PersonFigures
from .domain.vectorised import Crowd, OpeningTable, PeopleTable

Document = dict[str, Any]
log = logging.getLogger("lotse.placement")
KEYS_PER_QUERY = 20  # reach keys per people lookup (see _people_with_keys)
# Indexes of earlier versions, dropped on start: their compound range queries were
# never used by the database's planner (it scanned), and they cost every write.
OBSOLETE_INDEXES = {"openings": ["open_by_type_level"], "people": ["matchable"]}


class AlreadyTold(Exception):
    """A suggestion set names an opening the person was told of meanwhile: a concurrent
    matching recorded the same pair first."""


class CaseExists(Exception):
    """The person has a case for this opening already (one case per pair)."""


class PlacementStore(Protocol):
    """What placement's use cases read and write: people (its read model), openings,
    suggestions, cases and imports. Writes take the transaction first; reads take it
    last, or none outside a transaction."""

    # --- people read model ------------------------------------------------------------
    async def candidate(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Candidate | None: ...

    async def save_candidate(self, tx: Transaction, person: Candidate) -> bool:
        """Store unless we hold the same or a newer revision (events can overtake each
        other); False when ignored. Replaces the whole person, a match marker included."""

    async def save_courses(self, tx: Transaction, person: Candidate) -> None:
        """Store what placement learnt from courses (level reached, ongoing courses)."""

    async def candidates_among(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Candidate]:
        """The people of ``person_ids`` placement knows, in one query."""

    async def candidates_for(
        self, opening: Opening, tx: Transaction | None = None
    ) -> list[Candidate]:
        """People of the opening's district who might reach it (by their reach key: only
        people who consent to matching and may work have one); the exact rules run after."""

    async def candidates_for_each(
        self, openings: list[Opening], tx: Transaction | None = None
    ) -> dict[uuid.UUID, list[Candidate]]:
        """:meth:`candidates_for` for a batch (an import), in one lookup; each opening
        takes those whose German (reached or aimed at) can meet its requirement."""

    async def people_figures(
        self, district_id: str, tx: Transaction | None = None
    ) -> list[PersonFigures]:
        """Every registered person of the district: where they live, their German and
        whether a course is running."""

    # --- matching still to do (written with the change, cleared when matched) ---------
    async def mark_pending(
        self,
        tx: Transaction,
        kind: str,
        doc_id: uuid.UUID,
        marker: MatchPending,
        *,
        person_changes: Candidate | None = None,
    ) -> None:
        """Write the marker on the person or opening, if stored; with ``person_changes``,
        what placement learnt from courses about that person in the same write."""

    async def pending_person(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> tuple[MatchPending | None, Candidate | None]:
        """The person's match marker and the person, in one read."""

    async def pending_opening(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> tuple[MatchPending | None, Opening | None]:
        """The opening's match marker and the opening, in one read."""

    async def clear_pending(
        self, tx: Transaction, kind: str, doc_id: uuid.UUID, marker: MatchPending
    ) -> None:
        """Clear the marker only if it is still the one read (``at``): one set again
        meanwhile stays for its own matching."""

    async def pending(
        self, kind: str, older_than: datetime, tx: Transaction | None = None
    ) -> list[uuid.UUID]:
        """Ids of the people or openings whose marker was set before ``older_than``."""

    # --- openings -----------------------------------------------------------------------
    async def opening_by_ref(
        self, source: str, source_ref: str, tx: Transaction | None = None
    ) -> Opening | None: ...

    async def get_opening(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Opening | None: ...

    async def get_openings(
        self, opening_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Opening]: ...

    async def save_opening(
        self, tx: Transaction, opening: Opening, previous: Opening | None
    ) -> None:
        """Insert a new opening, or replace ``previous`` and keep it in the history. Only
        an open opening with a free seat can be found by the search."""

    async def opening_history(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> list[Document]:
        """The opening's earlier versions, oldest first."""

    async def keep_in_history(
        self, tx: Transaction, opening_id: uuid.UUID, version: Opening, why: str
    ) -> None:
        """Add a version that is not applied (older than the one held) to the history,
        marked ``not_applied`` with ``why``."""

    async def openings_stored(self, tx: Transaction | None = None) -> int:
        """All openings, closed ones included (an estimate is good enough)."""

    async def openings_searchable(
        self, tx: Transaction | None = None, *, district_id: str | None = None
    ) -> list[Opening]:
        """Every open opening with a free seat, of one district if ``district_id`` is
        given."""

    async def openings_in(
        self, cells: list[str], max_rank: int = 6, tx: Transaction | None = None
    ) -> list[Opening]:
        """Open openings with a free seat with a place in these grid cells that ask for
        German up to ``max_rank``, without their history and description."""

    async def opening_table(self) -> OpeningTable | None:
        """The matching features of every open opening with a free seat, as committed
        before this call (at least as new as any transaction begun before it); None
        where the store cannot keep one (the search then walks rings)."""

    async def openings_by_id(
        self, opening_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Opening]:
        """Those of ``opening_ids`` that are open with a free seat, without their
        history and description."""

    async def list_openings(
        self,
        which: OpeningFilter,
        limit: int,
        offset: int,
        tx: Transaction | None = None,
        *,
        district_id: str,
        source: str | None = None,
    ) -> list[Opening]:
        """The district's openings that pass the filter, newest first (``text``: a
        literal, case-insensitive part of the title or the employer)."""

    # --- suggestions --------------------------------------------------------------------
    async def already_suggested(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> dict[str, bool]:
        """opening id -> told only on a forecast level (and not decided on since)."""

    async def record_set(
        self, tx: Transaction, suggestion_set: Document, confirmed: set[str]
    ) -> None:
        """Store the set and mark its openings told; ``confirmed`` were told before on a
        forecast level and are now marked confirmed. Raises AlreadyTold if another of
        its openings was told to the person meanwhile."""

    async def suggestion_entry(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Document | None:
        """The told-marker of the pair: its set, and the decision taken, if any."""

    async def decide_suggestion(
        self, tx: Transaction, person_id: uuid.UUID, opening_id: uuid.UUID, decision: Document
    ) -> None: ...

    async def withdraw_suggestions(self, tx: Transaction, person_id: uuid.UUID, why: str) -> None:
        """Consent withdrawn: the undecided suggestions can no longer be taken up."""

    async def forget_withdrawn(self, tx: Transaction, person_id: uuid.UUID) -> None:
        """Consent given again: what was withdrawn may be suggested anew."""

    async def open_scores_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, dict[uuid.UUID, float | None]]:
        """Per person, each opening suggested, not decided on and still open, with the
        score it was last told with (None on entries written before it was kept)."""

    async def open_suggestions_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, list[OpenSuggestion]]:
        """Per person, the openings suggested and not decided on that are still open,
        each once, with the score and reasons of the set that told it last."""

    async def suggested_to(
        self, opening_id: uuid.UUID, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> set[str]:
        """Those of ``person_ids`` who were told of this opening (``str`` ids)."""

    async def people_suggested_in(
        self, district_id: str, tx: Transaction | None = None
    ) -> set[uuid.UUID]:
        """Everyone of the district who was ever suggested an opening."""

    # --- placement cases ----------------------------------------------------------------
    async def insert_case(self, tx: Transaction, case: Case) -> None:
        """Raises CaseExists if the person has a case for the opening already."""

    async def case(self, case_id: uuid.UUID, tx: Transaction | None = None) -> Case | None: ...

    async def case_for(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Case | None: ...

    async def save_case(self, tx: Transaction, case: Case) -> bool:
        """Store the next version; False if someone else saved one first."""

    async def delete_closed_cases(self, closed_before: datetime) -> int:
        """Retention, in a transaction of its own: closed cases older than the period go
        (with their history)."""

    async def cases_in(self, district_id: str, tx: Transaction | None = None) -> list[Case]: ...

    async def cases_among(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Case]:
        """Every case of these people, in one query."""

    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        """Erasure: the read model, suggestion sets, told/decided markers and cases.
        Openings keep their seat counts (numbers, no one's data)."""

    # --- imports of partners' feeds -------------------------------------------------------
    async def open_refs(self, source: str, tx: Transaction | None = None) -> set[str]:
        """The references of the source's open openings."""

    async def add_import_batch(
        self,
        tx: Transaction,
        summary: Document,
        seen_refs: list[str],
        district_id: str | None = None,
    ) -> Document:
        """Add one batch's counts, rejections and references to its import (started by
        the first); returns the import as it now stands. ``district_id``: the district
        of whoever sent it over HTTP (staff of another district do not see it); a partner's
        feed has none."""

    async def get_import(
        self, import_id: uuid.UUID, tx: Transaction | None = None
    ) -> Document | None: ...

    async def complete_import(
        self, tx: Transaction, import_id: uuid.UUID, full_feed: bool, closed: int
    ) -> Document | None:
        """Mark an import completed (once), adding ``closed``; None if it was completed
        already (or is unknown)."""


class PlacementRepository(PlacementStore):
    """The MongoDB adapter of :class:`PlacementStore`."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.openings = db["openings"]
        self.people = db["people"]
        self.sets = db["suggestion_sets"]
        self.suggested = db["suggested"]
        self.cases = db["cases"]
        self.imports = db["imports"]
        self.index = OpeningIndex(self.openings)

    async def ensure_indexes(self) -> None:
        for name, indexes in OBSOLETE_INDEXES.items():
            existing = {ix["name"] async for ix in await self.db[name].list_indexes()}
            for index in set(indexes) & existing:
                await self.db[name].drop_index(index)
        await self.openings.create_indexes(
            [
                IndexModel([("source", 1), ("source_ref", 1)], unique=True, name="source_ref"),
                # present only while open with a free seat: the rings search
                IndexModel("cell", sparse=True, name="open_by_cell"),
            ]
        )
        # present only while the person consents and may work: who can reach a place
        await self.people.create_indexes(
            [IndexModel("reach_key", sparse=True, name="by_reach_key")]
        )
        await self.sets.create_indexes(
            [IndexModel([("person_id", ASCENDING), ("created_at", DESCENDING)], name="by_person")]
        )
        await self.suggested.create_indexes([IndexModel("person_id", name="by_person")])
        await self.cases.create_indexes(
            [
                IndexModel([("person_id", 1), ("opening_id", 1)], unique=True, name="one_per_pair"),
                IndexModel("person_id", name="by_person"),
                IndexModel("district_id", name="by_district"),
                # present only once closed: the retention sweep's range
                IndexModel("closed_at", sparse=True, name="closed_at"),
            ]
        )
        await self.people.create_indexes([IndexModel("district_id", name="by_district")])
        for collection in (self.people, self.openings):
            await collection.create_indexes(
                [IndexModel("match_pending.at", sparse=True, name="match_pending")]
            )

    # --- people read model ------------------------------------------------------
    async def save_candidate(self, tx: Transaction, person: Candidate) -> bool:
        return await save_if_newer(self.people, _candidate_doc(person), session_of(tx))

    async def candidate(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Candidate | None:
        doc = await self.people.find_one({"_id": person_id}, session=session_of(tx))
        return _candidate(doc) if doc else None

    async def candidates_among(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Candidate]:
        cursor = self.people.find(
            {"_id": {"$in": person_ids}}, {"match_pending": 0}, session=session_of(tx)
        )
        return [_candidate(d) async for d in cursor]

    async def candidates_for(
        self, opening: Opening, tx: Transaction | None = None
    ) -> list[Candidate]:
        """By one indexed lookup of the reach keys around its places."""
        return [
            person
            async for person in (
                _candidate(d) async for d in self._people_with_keys(_reach_keys(opening), tx)
            )
            if person.district_id == opening.district_id
        ]

    # --- matching still to do (written with the change, cleared when matched) ---------
    async def mark_pending(
        self,
        tx: Transaction,
        kind: str,
        doc_id: uuid.UUID,
        marker: MatchPending,
        *,
        person_changes: Candidate | None = None,
    ) -> None:
        """The marker and what was learnt from courses in the same round trip."""
        collection = self.people if kind == "person" else self.openings
        changes: Document = {"match_pending": _pending_doc(marker)}
        if person_changes is not None:
            changes |= _learnt_from_courses(person_changes)
        await collection.update_one({"_id": doc_id}, {"$set": changes}, session=session_of(tx))

    async def candidates_for_each(
        self, openings: list[Opening], tx: Transaction | None = None
    ) -> dict[uuid.UUID, list[Candidate]]:
        """One indexed lookup for the union of their reach keys; the features of the
        people found are computed once, for every opening of the batch (a ``Crowd``)."""
        wanted = {o.opening_id: _reach_keys(o) for o in openings}
        every_key = sorted({k for keys in wanted.values() for k in keys})
        people: list[Candidate] = []
        by_key: dict[str, list[list[int]]] = {}
        async for doc in self._people_with_keys(every_key, tx):
            person = _candidate(doc)
            ranks = by_key.setdefault(doc["reach_key"], [[] for _ in range(7)])
            ranks[person.reachable_rank].append(len(people))
            people.append(person)
        table = PeopleTable.of(people)
        # per key and German asked for: the rows of those whose German can meet it
        rows = {
            key: [
                np.array([i for group in ranks[r:] for i in group], dtype=np.int64)
                for r in range(7)
            ]
            for key, ranks in by_key.items()
        }
        districts = np.array([p.district_id for p in people], dtype=object)
        found: dict[uuid.UUID, list[Candidate]] = {}
        for o in openings:
            need = o.required_rank
            parts = [rows[key][need] for key in wanted[o.opening_id] if key in rows]
            mine = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            found[o.opening_id] = Crowd(table, mine[districts[mine] == o.district_id])
        return found

    async def _people_with_keys(
        self, keys: list[str], tx: Transaction | None
    ) -> AsyncIterator[Document]:
        """The people with one of these reach keys, by a few values per query: the
        database's ``$in`` costs more than linearly in the values (SecantusDB, 4,000
        people: 435 keys in one query 1.8 s, in queries of 20 keys 0.34 s)."""
        for i in range(0, len(keys), KEYS_PER_QUERY):
            cursor = self.people.find(
                {"reach_key": {"$in": keys[i : i + KEYS_PER_QUERY]}}, session=session_of(tx)
            )
            async for doc in cursor:
                yield doc

    async def save_courses(self, tx: Transaction, person: Candidate) -> None:
        await self.people.update_one(
            {"_id": person.person_id},
            {"$set": _learnt_from_courses(person)},
            session=session_of(tx),
        )

    async def pending_person(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> tuple[MatchPending | None, Candidate | None]:
        doc = await self.people.find_one({"_id": person_id}, session=session_of(tx))
        return (_pending(doc), _candidate(doc)) if doc else (None, None)

    async def pending_opening(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> tuple[MatchPending | None, Opening | None]:
        doc = await self.openings.find_one({"_id": opening_id}, session=session_of(tx))
        return (_pending(doc), _opening(doc)) if doc else (None, None)

    async def clear_pending(
        self, tx: Transaction, kind: str, doc_id: uuid.UUID, marker: MatchPending
    ) -> None:
        collection = self.people if kind == "person" else self.openings
        await collection.update_one(
            {"_id": doc_id, "match_pending.at": marker.at},
            {"$unset": {"match_pending": ""}},
            session=session_of(tx),
        )

    async def pending(
        self, kind: str, older_than: datetime, tx: Transaction | None = None
    ) -> list[uuid.UUID]:
        collection = self.people if kind == "person" else self.openings
        cursor = collection.find(
            {"match_pending.at": {"$lt": older_than}}, {"_id": 1}, session=session_of(tx)
        )
        return [d["_id"] async for d in cursor]

    # --- openings -----------------------------------------------------------------
    async def opening_by_ref(
        self, source: str, source_ref: str, tx: Transaction | None = None
    ) -> Opening | None:
        doc = await self.openings.find_one(
            {"source": source, "source_ref": source_ref}, session=session_of(tx)
        )
        return _opening(doc) if doc else None

    async def get_opening(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Opening | None:
        doc = await self.openings.find_one({"_id": opening_id}, session=session_of(tx))
        return _opening(doc) if doc else None

    async def get_openings(
        self, opening_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Opening]:
        cursor = self.openings.find({"_id": {"$in": opening_ids}}, session=session_of(tx))
        return [_opening(d) async for d in cursor]

    async def save_opening(
        self, tx: Transaction, opening: Opening, previous: Opening | None
    ) -> None:
        doc = _opening_doc(opening)
        if previous is None:
            await self.openings.insert_one(doc, session=session_of(tx))
            return
        update: Document = {"$set": doc, "$push": {"history": _history_entry(previous)}}
        if "cell" not in doc:
            update["$unset"] = {"cell": ""}  # closed or full: out of the search
        await self.openings.update_one({"_id": opening.opening_id}, update, session=session_of(tx))

    async def opening_history(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> list[Document]:
        doc = await self.openings.find_one(
            {"_id": opening_id}, {"history": 1}, session=session_of(tx)
        )
        return list(doc.get("history", [])) if doc else []

    async def keep_in_history(
        self, tx: Transaction, opening_id: uuid.UUID, version: Opening, why: str
    ) -> None:
        entry = _history_entry(version)
        entry["not_applied"] = why
        await self.openings.update_one(
            {"_id": opening_id}, {"$push": {"history": entry}}, session=session_of(tx)
        )

    async def openings_stored(self, tx: Transaction | None = None) -> int:
        # the collection's size, not a query (and so outside any transaction)
        return await self.openings.estimated_document_count()

    async def openings_searchable(
        self, tx: Transaction | None = None, *, district_id: str | None = None
    ) -> list[Opening]:
        """Those with a grid cell (``cell``: present only while open with a free seat)."""
        query: Document = {"cell": {"$exists": True}}
        if district_id is not None:
            query["district_id"] = district_id
        cursor = self.openings.find(query, {"history": 0, "description": 0}, session=session_of(tx))
        return [_opening(d) async for d in cursor]

    async def openings_in(
        self, cells: list[str], max_rank: int = 6, tx: Transaction | None = None
    ) -> list[Opening]:
        """One indexed lookup of ``cell`` (grid cell and German level asked for)."""
        keys = [f"{cell}|{rank}" for cell in cells for rank in range(max_rank + 1)]
        cursor = self.openings.find(
            {"cell": {"$in": keys}}, {"history": 0, "description": 0}, session=session_of(tx)
        )
        return [_opening(d) async for d in cursor]

    async def opening_table(self) -> OpeningTable | None:
        return await self.index.current()

    async def openings_by_id(
        self, opening_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Opening]:
        # by id alone: with ``cell`` in the query SecantusDB may walk that index instead
        cursor = self.openings.find(
            {"_id": {"$in": opening_ids}}, {"history": 0, "description": 0}, session=session_of(tx)
        )
        return [_opening(d) async for d in cursor if "cell" in d]

    async def list_openings(
        self,
        which: OpeningFilter,
        limit: int,
        offset: int,
        tx: Transaction | None = None,
        *,
        district_id: str,
        source: str | None = None,
    ) -> list[Opening]:
        query: Document = {"district_id": district_id}
        if which.status:
            query["status"] = which.status.value
        if source:
            query["source"] = source
        if which.opening_type:
            query["opening_type"] = which.opening_type.value
        if which.sector:
            query["sector"] = which.sector.value
        if which.municipality:
            query["municipality"] = which.municipality
        levels = which.levels_within()
        if levels is not None:
            query["required_german_level"] = {"$in": [None, *(lv.value for lv in levels)]}
        either: list[list[Document]] = []
        if which.starts_by:
            # stored as ISO dates, which sort as strings do; none given: it starts at once
            by = which.starts_by.isoformat()
            either.append([{"start_date": None}, {"start_date": {"$lte": by}}])
        if which.text:
            pattern = {"$regex": re.escape(which.text), "$options": "i"}
            either.append([{"title": pattern}, {"employer": pattern}])
        if either:
            query["$and"] = [{"$or": alternatives} for alternatives in either]
        cursor = (
            self.openings.find(query, {"history": 0}, session=session_of(tx))
            .sort([("published_at", -1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        return [_opening(d) async for d in cursor]

    # --- suggestions ----------------------------------------------------------------
    async def already_suggested(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> dict[str, bool]:
        cursor = self.suggested.find(
            {"person_id": person_id},
            {"opening_id": 1, "forecast": 1, "decision": 1},
            session=session_of(tx),
        )
        return {
            str(d["opening_id"]): bool(d.get("forecast")) and not d.get("decision")
            async for d in cursor
        }

    async def record_set(
        self, tx: Transaction, suggestion_set: Document, confirmed: set[str]
    ) -> None:
        try:
            await self._record_set(tx, suggestion_set, confirmed)
        except (DuplicateKeyError, BulkWriteError) as e:
            if isinstance(e, BulkWriteError) and not _only_duplicates(e):
                raise
            raise AlreadyTold(str(suggestion_set["person_id"])) from e

    async def _record_set(
        self, tx: Transaction, suggestion_set: Document, confirmed: set[str]
    ) -> None:
        await self.sets.insert_one(suggestion_set, session=session_of(tx))
        now = datetime.now(UTC)
        person_id, set_id = suggestion_set["person_id"], suggestion_set["_id"]
        fresh = [s for s in suggestion_set["suggestions"] if str(s["opening_id"]) not in confirmed]
        if fresh:
            await self.suggested.insert_many(
                [
                    {
                        "_id": f"{person_id}:{s['opening_id']}",
                        "person_id": person_id,
                        "opening_id": s["opening_id"],
                        "suggestion_set_id": set_id,
                        "forecast": s["forecast"],
                        # the caseload's "best suggestion" reads it here, not from the set
                        "score": s["score"],
                        "at": now,
                    }
                    for s in fresh
                ],
                session=session_of(tx),
            )
        if confirmed:
            scores = {str(s["opening_id"]): s["score"] for s in suggestion_set["suggestions"]}
            await self.suggested.bulk_write(
                [
                    UpdateOne(
                        {"_id": f"{person_id}:{oid}"},
                        {
                            "$set": {
                                "forecast": False,
                                "suggestion_set_id": set_id,
                                "score": scores.get(oid),
                                "at": now,
                            }
                        },
                    )
                    for oid in sorted(confirmed)
                ],
                session=session_of(tx),
            )

    async def suggestion_entry(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Document | None:
        return await self.suggested.find_one(
            {"_id": f"{person_id}:{opening_id}"}, session=session_of(tx)
        )

    async def decide_suggestion(
        self, tx: Transaction, person_id: uuid.UUID, opening_id: uuid.UUID, decision: Document
    ) -> None:
        await self.suggested.update_one(
            {"_id": f"{person_id}:{opening_id}"}, {"$set": decision}, session=session_of(tx)
        )

    async def withdraw_suggestions(self, tx: Transaction, person_id: uuid.UUID, why: str) -> None:
        await self.suggested.update_many(
            {"person_id": person_id, "decision": None},
            {"$set": {"decision": "withdrawn", "reason": why, "decided_at": datetime.now(UTC)}},
            session=session_of(tx),
        )

    async def forget_withdrawn(self, tx: Transaction, person_id: uuid.UUID) -> None:
        await self.suggested.delete_many(
            {"person_id": person_id, "decision": "withdrawn"}, session=session_of(tx)
        )

    async def decisions_of(self, person_id: uuid.UUID) -> dict[str, str]:
        """opening id -> accepted | dismissed, for the suggestions decided so far."""
        cursor = self.suggested.find({"person_id": person_id}, {"opening_id": 1, "decision": 1})
        return {str(d["opening_id"]): d["decision"] async for d in cursor if d.get("decision")}

    async def open_scores_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, dict[uuid.UUID, float | None]]:
        """Two queries, reading neither the suggestion sets (their reasons) nor the
        openings' texts: those cost a caseload of 150 people most of its time."""
        entries, still_open = await self._undecided_and_open(
            person_ids, {"score": 1}, {"_id": 1}, tx
        )
        found: dict[uuid.UUID, dict[uuid.UUID, float | None]] = defaultdict(dict)
        for entry in entries:
            if entry["opening_id"] in still_open:
                found[entry["person_id"]][entry["opening_id"]] = entry.get("score")
        return found

    async def _undecided_and_open(
        self,
        person_ids: list[uuid.UUID],
        entry_fields: Document,
        opening_fields: Document,
        tx: Transaction | None,
    ) -> tuple[list[Document], dict[uuid.UUID, Document]]:
        """These people's suggestions not decided on, and those of their openings still
        open (by id), each read with the fields asked for."""
        fields = {"person_id": 1, "opening_id": 1, **entry_fields}
        query = {"person_id": {"$in": person_ids}, "decision": None}
        entries = await self.suggested.find(query, fields, session=session_of(tx)).to_list()
        if not entries:
            return [], {}
        wanted = {"_id": {"$in": list({e["opening_id"] for e in entries})}, "status": "open"}
        cursor = self.openings.find(wanted, opening_fields, session=session_of(tx))
        return entries, {d["_id"]: d async for d in cursor}

    async def open_suggestions_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, list[OpenSuggestion]]:
        """Three queries whatever the number of people; the set that told it last is the
        one its told-marker names."""
        entries, still_open = await self._undecided_and_open(
            person_ids, {"suggestion_set_id": 1}, {"history": 0, "description": 0}, tx
        )
        if not entries:
            return {}
        openings = {opening_id: _opening(d) for opening_id, d in still_open.items()}
        sets = {
            d["_id"]: d
            async for d in self.sets.find(
                {"_id": {"$in": list({e["suggestion_set_id"] for e in entries})}},
                {"suggestions": 1, "created_at": 1},
                session=session_of(tx),
            )
        }
        found: dict[uuid.UUID, list[OpenSuggestion]] = defaultdict(list)
        for entry in entries:
            opening = openings.get(entry["opening_id"])
            told = sets.get(entry["suggestion_set_id"])
            if opening is None or told is None:
                continue  # closed (or its set gone with an erasure race): not open
            item = next(
                (s for s in told["suggestions"] if s["opening_id"] == entry["opening_id"]), None
            )
            if item is None:
                continue
            found[entry["person_id"]].append(OpenSuggestion.as_told(opening, told, item))
        return found

    async def suggested_to(
        self, opening_id: uuid.UUID, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> set[str]:
        keys = [f"{pid}:{opening_id}" for pid in person_ids]
        cursor = self.suggested.find(
            {"_id": {"$in": keys}}, {"person_id": 1}, session=session_of(tx)
        )
        return {str(d["person_id"]) async for d in cursor}

    async def people_suggested_in(
        self, district_id: str, tx: Transaction | None = None
    ) -> set[uuid.UUID]:
        found = await self.sets.distinct(
            "person_id", {"district_id": district_id}, session=session_of(tx)
        )
        return set(found)

    # --- placement cases ----------------------------------------------------------
    async def insert_case(self, tx: Transaction, case: Case) -> None:
        try:
            await self.cases.insert_one(_case_doc(case), session=session_of(tx))
        except DuplicateKeyError as e:
            raise CaseExists(f"{case.person_id}:{case.opening_id}") from e

    async def case(self, case_id: uuid.UUID, tx: Transaction | None = None) -> Case | None:
        doc = await self.cases.find_one({"_id": case_id}, session=session_of(tx))
        return _case(doc) if doc else None

    async def case_for(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Case | None:
        doc = await self.cases.find_one(
            {"person_id": person_id, "opening_id": opening_id}, session=session_of(tx)
        )
        return _case(doc) if doc else None

    async def save_case(self, tx: Transaction, case: Case) -> bool:
        result = await self.cases.replace_one(
            {"_id": case.case_id, "version": case.version - 1},
            _case_doc(case),
            session=session_of(tx),
        )
        return result.matched_count == 1

    async def delete_closed_cases(self, closed_before: datetime) -> int:
        result = await in_transaction(
            self.db,
            lambda session: self.cases.delete_many(
                {"closed_at": {"$lt": closed_before}}, session=session
            ),
        )
        return result.deleted_count

    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        people = await self.people.delete_one({"_id": person_id}, session=session_of(tx))
        counts = {"people": people.deleted_count}
        for name, collection in (
            ("suggestion_sets", self.sets),
            ("suggested", self.suggested),
            ("cases", self.cases),
        ):
            result = await collection.delete_many({"person_id": person_id}, session=session_of(tx))
            counts[name] = result.deleted_count
        return counts

    async def cases_of(self, person_id: uuid.UUID) -> list[Case]:
        return [_case(d) async for d in self.cases.find({"person_id": person_id})]

    async def cases_in(self, district_id: str, tx: Transaction | None = None) -> list[Case]:
        cursor = self.cases.find({"district_id": district_id}, session=session_of(tx))
        return [_case(d) async for d in cursor]

    async def cases_among(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Case]:
        cursor = self.cases.find({"person_id": {"$in": person_ids}}, session=session_of(tx))
        return [_case(d) async for d in cursor]

    async def people_figures(
        self, district_id: str, tx: Transaction | None = None
    ) -> list[PersonFigures]:
        cursor = self.people.find(
            {"district_id": district_id},
            {"municipality": 1, "german_level": 1, "course_level": 1, "ongoing_courses": 1},
            session=session_of(tx),
        )
        return [
            PersonFigures(
                person_id=d["_id"],
                municipality=d["municipality"],
                german_level=_level(d.get("german_level")),
                course_level=_level(d.get("course_level")),
                in_course=bool(d.get("ongoing_courses")),
            )
            async for d in cursor
        ]

    async def sets_of(self, person_id: uuid.UUID, limit: int = 20) -> list[Document]:
        cursor = self.sets.find({"person_id": person_id}).sort("created_at", -1).limit(limit)
        return [d async for d in cursor]

    # --- imports of partners' feeds ---------------------------------------------------
    async def open_refs(self, source: str, tx: Transaction | None = None) -> set[str]:
        cursor = self.openings.find(
            {"source": source, "status": "open"}, {"source_ref": 1}, session=session_of(tx)
        )
        return {d["source_ref"] async for d in cursor}

    async def add_import_batch(
        self,
        tx: Transaction,
        summary: Document,
        seen_refs: list[str],
        district_id: str | None = None,
    ) -> Document:
        counts = ("received", "created", "updated", "unchanged", "closed")
        doc = await self.imports.find_one_and_update(
            {"_id": summary["import_id"]},
            {
                "$setOnInsert": {
                    "source": summary["source"],
                    "format": summary["format"],
                    "started_at": datetime.now(UTC),
                    "completed": False,
                    "district_id": district_id,
                },
                "$set": {"updated_at": datetime.now(UTC), "full_feed": summary["full_feed"]},
                "$inc": {k: summary[k] for k in counts},
                "$push": {
                    "rejected": {"$each": summary["rejected"]},
                    "notices": {"$each": summary.get("notices", [])},
                },
                "$addToSet": {"seen_refs": {"$each": seen_refs}},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session_of(tx),
        )
        assert doc is not None
        return doc

    async def get_import(
        self, import_id: uuid.UUID, tx: Transaction | None = None
    ) -> Document | None:
        return await self.imports.find_one({"_id": import_id}, session=session_of(tx))

    async def complete_import(
        self, tx: Transaction, import_id: uuid.UUID, full_feed: bool, closed: int
    ) -> Document | None:
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
            session=session_of(tx),
        )


class OpeningIndex:
    """Every searchable opening's matching features in memory (an ``OpeningTable``),
    kept current by the openings collection's change stream.

    Several placement processes may write openings: each keeps its own table and
    follows the database's own record of commits, not its own writes. Before every
    search the stream is read until the database has nothing more (one getMore when
    nothing changed); each change carries the opening as it now is, which is put into
    the table or, closed, full or deleted, dropped from it. So the table holds
    everything committed before the search asked, whoever wrote it; an opening changed
    after that may be in it in a newer version than the search's transaction sees, and
    the search confirms the openings it keeps by reading them in its transaction. A
    stream that ends (the collection dropped, its history gone after a long pause, a
    lost connection) starts the table afresh from one read of the searchable openings;
    a database without change streams (a standalone server) gives no table, and the
    search walks rings as before."""

    FIELDS: Document = {"history": 0, "description": 0}  # noqa: RUF012
    # what changes no feature: the match marker, the kept versions
    BOOKKEEPING = ("match_pending", "history")

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection
        self.table = OpeningTable.empty()
        self.rows: dict[uuid.UUID, int] = {}
        self.free: list[int] = []
        self.stream: AsyncChangeStream[Document] | None = None
        self.unsupported = False
        self.lock = asyncio.Lock()

    async def current(self) -> OpeningTable | None:
        if self.unsupported:
            return None
        async with self.lock:
            try:
                if self.stream is None or not await self._catch_up():
                    await self._load()
            except OperationFailure as e:
                await self._close()
                if e.code in (40573, 136):  # not a replica set; change streams disabled
                    log.warning("no change streams (%s): the search walks rings", e)
                    self.unsupported = True
                    return None
                raise
            except PyMongoError:
                await self._close()
                raise
            return self.table

    async def _load(self) -> None:
        """Watch first, then read: a change committed in between is in both."""
        for _ in range(3):
            await self._close()
            self.stream = await self.collection.watch(
                full_document="updateLookup", max_await_time_ms=1
            )
            self.table, self.rows, self.free = OpeningTable.empty(), {}, []
            async for doc in self.collection.find({"cell": {"$exists": True}}, self.FIELDS):
                self._put(_opening(doc))
            if await self._catch_up():
                return
        raise RuntimeError("the openings collection kept being dropped while it was read")

    async def _catch_up(self) -> bool:
        """Apply what was committed since the last read; False if the table must be
        loaded afresh."""
        assert self.stream is not None
        while (change := await self.stream.try_next()) is not None:
            kind, key = change.get("operationType"), change.get("documentKey")
            if key is None:
                return False  # a drop, a rename, an invalidation
            if kind == "update" and self._bookkeeping(change.get("updateDescription") or {}):
                continue
            doc = change.get("fullDocument")  # as it is now (None: deleted since)
            if doc is not None and "cell" in doc:
                self._put(_opening(doc))
            elif (row := self.rows.pop(key["_id"], None)) is not None:
                self.table.drop(row)
                self.free.append(row)
        return True

    def _bookkeeping(self, update: Document) -> bool:
        fields = [*update.get("updatedFields", {}), *update.get("removedFields", [])]
        return bool(fields) and all(f.split(".")[0] in self.BOOKKEEPING for f in fields)

    def _put(self, opening: Opening) -> None:
        row = self.rows.get(opening.opening_id)
        if row is None:
            row = self.free.pop() if self.free else self.table.size
            self.rows[opening.opening_id] = row
        self.table.put(row, opening)

    async def _close(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            with contextlib.suppress(PyMongoError):
                await stream.close()


def _only_duplicates(error: BulkWriteError) -> bool:
    """insert_many reports a duplicate key as a bulk write error (code 11000)."""
    errors = error.details.get("writeErrors", [])
    return bool(errors) and all(e.get("code") == 11000 for e in errors)


def _level(value: str | None) -> CefrLevel | None:
    return CefrLevel(value) if value else None


def _case_doc(case: Case) -> Document:
    doc = to_document(case, "case_id", native=("person_id", "opening_id"))
    if case.closed:
        # when it was closed, as a date the retention sweep can compare
        doc["closed_at"] = case.history[-1].at if case.history else datetime.now(UTC)
    return doc


def _case(doc: Document) -> Case:
    return from_document(Case, doc, "case_id")


def _learnt_from_courses(person: Candidate) -> Document:
    return person.model_dump(mode="json", include={"course_level", "ongoing_courses"})


def _candidate_doc(person: Candidate) -> Document:
    doc = to_document(person, "person_id")
    if person.matching_consent and permitted_types(person):
        doc["reach_key"] = reach_key(max_reach_km(person), person.municipality)
    return doc


def _candidate(doc: Document) -> Candidate:
    return from_document(Candidate, doc, "person_id", drop=("reach_key", "match_pending"))


def _opening_doc(opening: Opening) -> Document:
    doc = to_document(opening, "opening_id", native=("published_at", "updated_at"))
    doc["seats_free"] = opening.seats_free  # derived: kept for readers of the collection
    if opening.status is OpeningStatus.OPEN and opening.seats_free > 0:
        # the grid cell and the German level asked for: both narrow the search's lookup
        doc["cell"] = f"{cell_of(opening.lat, opening.lon)}|{opening.required_rank}"
        if opening.other_locations:
            # several places: found from each of their cells (a multikey lookup)
            cells = {cell_of(s.lat, s.lon) for s in opening.sites}
            doc["cell"] = [f"{cell}|{opening.required_rank}" for cell in sorted(cells)]
    return doc


def _pending_doc(marker: MatchPending) -> Document:
    # ids as strings, as markers have always been stored
    return marker.model_dump(mode="json") | {"at": marker.at}


def _pending(doc: Document) -> MatchPending | None:
    found = doc.get("match_pending")
    return MatchPending.model_validate(found) if found else None


def _history_entry(opening: Opening) -> Document:
    return {k: v for k, v in _opening_doc(opening).items() if k not in ("_id", "history", "cell")}


def _reach_keys(opening: Opening) -> list[str]:
    """The reach keys of people who might reach any of the opening's places."""
    if not opening.other_locations:
        return reach_keys_around(opening.lat, opening.lon)
    keys = {k for s in opening.sites for k in reach_keys_around(s.lat, s.lon)}
    return sorted(keys)


def _opening(doc: Document) -> Opening:
    return from_document(Opening, doc, "opening_id", drop=("history", "cell"))
