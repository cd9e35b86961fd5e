"""placement's store in memory, behaving as ``PlacementRepository`` does on MongoDB."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from lotse_placement.domain.area import cell_of, reach_key, reach_keys_around
from lotse_placement.domain.caseload import OpenSuggestion
from lotse_placement.domain.matching import max_reach_km, permitted_types
from lotse_placement.domain.model import (
    Candidate,
    MatchPending,
    Opening,
    OpeningFilter,
    OpeningStatus,
)
from lotse_placement.domain.pipeline import Case
from lotse_placement.domain.reporting import PersonFigures
from lotse_placement.domain.vectorised import OpeningTable
from lotse_placement.repository import AlreadyTold, CaseExists, PlacementStore
from lotse_shared.persistence.unit import Transaction

from .unit_of_work import InMemoryUnitOfWork, MemoryStore

Document = dict[str, Any]
COUNTS = ("received", "created", "updated", "unchanged", "closed")


class InMemoryPlacement(MemoryStore, PlacementStore):
    people: dict[uuid.UUID, Candidate]
    openings: dict[uuid.UUID, Opening]  # in the order first stored
    history: dict[uuid.UUID, list[Document]]
    markers: dict[tuple[str, uuid.UUID], MatchPending]  # (kind, id) -> match pending
    sets: list[Document]
    suggested: dict[str, Document]  # "person:opening" -> told-marker (and decision)
    cases: dict[uuid.UUID, Case]
    imports: dict[uuid.UUID, Document]

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        super().__init__(uow)
        self.people, self.openings, self.history, self.markers = {}, {}, {}, {}
        self.sets, self.suggested, self.cases, self.imports = [], {}, {}, {}

    # --- people read model ------------------------------------------------------------
    async def candidate(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> Candidate | None:
        found = self.people.get(person_id)
        return found.model_copy(deep=True) if found else None

    async def save_candidate(self, tx: Transaction, person: Candidate) -> bool:
        held = self.people.get(person.person_id)
        if held is not None and held.revision >= person.revision:
            return False
        self.people[person.person_id] = person.model_copy(deep=True)
        self.markers.pop(("person", person.person_id), None)  # the document is replaced
        return True

    async def save_courses(self, tx: Transaction, person: Candidate) -> None:
        self._learn(person)

    def _learn(self, person: Candidate) -> None:
        held = self.people.get(person.person_id)
        if held is not None:
            held.course_level = person.course_level
            held.ongoing_courses = [c.model_copy() for c in person.ongoing_courses]

    async def candidates_among(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Candidate]:
        return [p.model_copy(deep=True) for p in self.people.values() if p.person_id in person_ids]

    async def candidates_for(
        self, opening: Opening, tx: Transaction | None = None
    ) -> list[Candidate]:
        keys = set(_reach_keys(opening))
        return [
            p.model_copy(deep=True)
            for p in self.people.values()
            if _reach_key(p) in keys and p.district_id == opening.district_id
        ]

    async def candidates_for_each(
        self, openings: list[Opening], tx: Transaction | None = None
    ) -> dict[uuid.UUID, list[Candidate]]:
        return {
            o.opening_id: [
                p for p in await self.candidates_for(o) if p.reachable_rank >= o.required_rank
            ]
            for o in openings
        }

    async def people_figures(
        self, district_id: str, tx: Transaction | None = None
    ) -> list[PersonFigures]:
        return [
            PersonFigures(
                person_id=p.person_id,
                municipality=p.municipality,
                german_level=p.german_level,
                course_level=p.course_level,
                in_course=bool(p.ongoing_courses),
            )
            for p in self.people.values()
            if p.district_id == district_id
        ]

    # --- matching still to do ---------------------------------------------------------
    async def mark_pending(
        self,
        tx: Transaction,
        kind: str,
        doc_id: uuid.UUID,
        marker: MatchPending,
        *,
        person_changes: Candidate | None = None,
    ) -> None:
        if doc_id not in (self.people if kind == "person" else self.openings):
            return  # an update of nothing
        self.markers[(kind, doc_id)] = marker
        if person_changes is not None:
            self._learn(person_changes)

    async def pending_person(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> tuple[MatchPending | None, Candidate | None]:
        person = await self.candidate(person_id)
        return (self.markers.get(("person", person_id)) if person else None), person

    async def pending_opening(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> tuple[MatchPending | None, Opening | None]:
        opening = await self.get_opening(opening_id)
        return (self.markers.get(("opening", opening_id)) if opening else None), opening

    async def clear_pending(
        self, tx: Transaction, kind: str, doc_id: uuid.UUID, marker: MatchPending
    ) -> None:
        held = self.markers.get((kind, doc_id))
        if held is not None and held.at == marker.at:
            del self.markers[(kind, doc_id)]

    async def pending(
        self, kind: str, older_than: datetime, tx: Transaction | None = None
    ) -> list[uuid.UUID]:
        return [i for (k, i), m in self.markers.items() if k == kind and m.at < older_than]

    # --- openings -----------------------------------------------------------------------
    async def opening_by_ref(
        self, source: str, source_ref: str, tx: Transaction | None = None
    ) -> Opening | None:
        found = [
            o for o in self.openings.values() if (o.source, o.source_ref) == (source, source_ref)
        ]
        return found[0].model_copy(deep=True) if found else None

    async def get_opening(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Opening | None:
        found = self.openings.get(opening_id)
        return found.model_copy(deep=True) if found else None

    async def get_openings(
        self, opening_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Opening]:
        return [
            o.model_copy(deep=True) for o in self.openings.values() if o.opening_id in opening_ids
        ]

    async def save_opening(
        self, tx: Transaction, opening: Opening, previous: Opening | None
    ) -> None:
        if previous is None:
            if await self.opening_by_ref(opening.source, opening.source_ref) or (
                opening.opening_id in self.openings
            ):
                raise RuntimeError("duplicate key: the MongoDB adapter's insert fails here")
            self.history[opening.opening_id] = []
        else:
            self.history[opening.opening_id].append(_history_entry(previous))
        self.openings[opening.opening_id] = opening.model_copy(deep=True)

    async def opening_history(
        self, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> list[Document]:
        return [dict(e) for e in self.history.get(opening_id, [])]

    async def keep_in_history(
        self, tx: Transaction, opening_id: uuid.UUID, version: Opening, why: str
    ) -> None:
        if opening_id in self.history:
            self.history[opening_id].append(_history_entry(version) | {"not_applied": why})

    async def openings_stored(self, tx: Transaction | None = None) -> int:
        return len(self.openings)

    async def openings_searchable(
        self, tx: Transaction | None = None, *, district_id: str | None = None
    ) -> list[Opening]:
        return [
            o.model_copy(deep=True)
            for o in self.openings.values()
            if _cells(o) and district_id in (None, o.district_id)
        ]

    async def opening_table(self) -> OpeningTable | None:
        return OpeningTable.of(o for o in self.openings.values() if _cells(o))

    async def openings_by_id(
        self, opening_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Opening]:
        return [
            self.openings[i].model_copy(deep=True)
            for i in opening_ids
            if i in self.openings and _cells(self.openings[i])
        ]

    async def openings_in(
        self, cells: list[str], max_rank: int = 6, tx: Transaction | None = None
    ) -> list[Opening]:
        return [
            o.model_copy(deep=True)
            for o in self.openings.values()
            if {c.split("|")[0] for c in _cells(o)} & set(cells) and o.required_rank <= max_rank
        ]

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
        levels = which.levels_within()
        text = (which.text or "").lower()
        found = [
            o
            for o in self.openings.values()
            if o.district_id == district_id
            and (not which.status or o.status is which.status)
            and (not source or o.source == source)
            and (not which.opening_type or o.opening_type is which.opening_type)
            and (not which.sector or o.sector is which.sector)
            and (not which.municipality or o.municipality == which.municipality)
            and (levels is None or o.required_german_level in (None, *levels))
            and (not which.starts_by or o.start_date is None or o.start_date <= which.starts_by)
            and (not text or text in o.title.lower() or text in o.employer.lower())
        ]
        found.sort(key=lambda o: str(o.opening_id))
        found.sort(key=lambda o: o.published_at, reverse=True)
        return [o.model_copy(deep=True) for o in found[offset : offset + limit]]

    # --- suggestions --------------------------------------------------------------------
    async def already_suggested(
        self, person_id: uuid.UUID, tx: Transaction | None = None
    ) -> dict[str, bool]:
        return {
            str(d["opening_id"]): bool(d.get("forecast")) and not d.get("decision")
            for d in self.suggested.values()
            if d["person_id"] == person_id
        }

    async def record_set(
        self, tx: Transaction, suggestion_set: Document, confirmed: set[str]
    ) -> None:
        person_id, set_id = suggestion_set["person_id"], suggestion_set["_id"]
        self.sets.append(dict(suggestion_set))
        now = datetime.now(UTC)
        for s in suggestion_set["suggestions"]:
            key = f"{person_id}:{s['opening_id']}"
            told = {"suggestion_set_id": set_id, "score": s["score"], "at": now}
            if str(s["opening_id"]) in confirmed:
                if key in self.suggested:
                    self.suggested[key] |= told | {"forecast": False}
                continue
            if key in self.suggested:
                raise AlreadyTold(str(person_id))
            self.suggested[key] = told | {
                "person_id": person_id,
                "opening_id": s["opening_id"],
                "forecast": s["forecast"],
            }

    async def suggestion_entry(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Document | None:
        found = self.suggested.get(f"{person_id}:{opening_id}")
        return dict(found) if found else None

    async def decide_suggestion(
        self, tx: Transaction, person_id: uuid.UUID, opening_id: uuid.UUID, decision: Document
    ) -> None:
        if (key := f"{person_id}:{opening_id}") in self.suggested:
            self.suggested[key] |= decision

    async def withdraw_suggestions(self, tx: Transaction, person_id: uuid.UUID, why: str) -> None:
        withdrawn = {"decision": "withdrawn", "reason": why, "decided_at": datetime.now(UTC)}
        for d in self.suggested.values():
            if d["person_id"] == person_id and d.get("decision") is None:
                d |= withdrawn

    async def forget_withdrawn(self, tx: Transaction, person_id: uuid.UUID) -> None:
        self.suggested = {
            k: d
            for k, d in self.suggested.items()
            if not (d["person_id"] == person_id and d.get("decision") == "withdrawn")
        }

    def _undecided_open(self, person_ids: list[uuid.UUID]) -> list[tuple[Document, Opening]]:
        return [
            (d, opening)
            for d in self.suggested.values()
            if d["person_id"] in person_ids
            and d.get("decision") is None
            and (opening := self.openings.get(d["opening_id"])) is not None
            and opening.status is OpeningStatus.OPEN
        ]

    async def open_scores_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, dict[uuid.UUID, float | None]]:
        found: dict[uuid.UUID, dict[uuid.UUID, float | None]] = defaultdict(dict)
        for entry, opening in self._undecided_open(person_ids):
            found[entry["person_id"]][opening.opening_id] = entry.get("score")
        return found

    async def open_suggestions_of(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> dict[uuid.UUID, list[OpenSuggestion]]:
        sets = {s["_id"]: s for s in self.sets}
        found: dict[uuid.UUID, list[OpenSuggestion]] = defaultdict(list)
        for entry, o in self._undecided_open(person_ids):
            told = sets.get(entry["suggestion_set_id"])
            item = next(
                (s for s in (told or {}).get("suggestions", []) if s["opening_id"] == o.opening_id),
                None,
            )
            if told is None or item is None:
                continue
            found[entry["person_id"]].append(OpenSuggestion.as_told(o, told, item))
        return found

    async def suggested_to(
        self, opening_id: uuid.UUID, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> set[str]:
        return {str(p) for p in person_ids if f"{p}:{opening_id}" in self.suggested}

    async def people_suggested_in(
        self, district_id: str, tx: Transaction | None = None
    ) -> set[uuid.UUID]:
        return {s["person_id"] for s in self.sets if s["district_id"] == district_id}

    # --- placement cases ----------------------------------------------------------------
    async def insert_case(self, tx: Transaction, case: Case) -> None:
        if await self.case_for(case.person_id, case.opening_id) is not None:
            raise CaseExists(f"{case.person_id}:{case.opening_id}")
        self.cases[case.case_id] = case.model_copy(deep=True)

    async def case(self, case_id: uuid.UUID, tx: Transaction | None = None) -> Case | None:
        found = self.cases.get(case_id)
        return found.model_copy(deep=True) if found else None

    async def case_for(
        self, person_id: uuid.UUID, opening_id: uuid.UUID, tx: Transaction | None = None
    ) -> Case | None:
        for c in self.cases.values():
            if (c.person_id, c.opening_id) == (person_id, opening_id):
                return c.model_copy(deep=True)
        return None

    async def save_case(self, tx: Transaction, case: Case) -> bool:
        held = self.cases.get(case.case_id)
        if held is None or held.version != case.version - 1:
            return False
        self.cases[case.case_id] = case.model_copy(deep=True)
        return True

    async def delete_closed_cases(self, closed_before: datetime) -> int:
        gone = [
            c.case_id
            for c in self.cases.values()
            if c.closed and c.history and c.history[-1].at < closed_before
        ]
        for case_id in gone:
            del self.cases[case_id]
        return len(gone)

    async def cases_in(self, district_id: str, tx: Transaction | None = None) -> list[Case]:
        return [
            c.model_copy(deep=True) for c in self.cases.values() if c.district_id == district_id
        ]

    async def cases_among(
        self, person_ids: list[uuid.UUID], tx: Transaction | None = None
    ) -> list[Case]:
        return [c.model_copy(deep=True) for c in self.cases.values() if c.person_id in person_ids]

    async def erase_person(self, tx: Transaction, person_id: uuid.UUID) -> dict[str, int]:
        counts = {"people": int(self.people.pop(person_id, None) is not None)}
        self.markers.pop(("person", person_id), None)
        sets = [s for s in self.sets if s["person_id"] != person_id]
        counts["suggestion_sets"] = len(self.sets) - len(sets)
        told = {k: d for k, d in self.suggested.items() if d["person_id"] != person_id}
        counts["suggested"] = len(self.suggested) - len(told)
        cases = {k: c for k, c in self.cases.items() if c.person_id != person_id}
        counts["cases"] = len(self.cases) - len(cases)
        self.sets, self.suggested, self.cases = sets, told, cases
        return counts

    # --- imports --------------------------------------------------------------------------
    async def open_refs(self, source: str, tx: Transaction | None = None) -> set[str]:
        return {
            o.source_ref
            for o in self.openings.values()
            if o.source == source and o.status is OpeningStatus.OPEN
        }

    async def add_import_batch(
        self,
        tx: Transaction,
        summary: Document,
        seen_refs: list[str],
        district_id: str | None = None,
    ) -> Document:
        now = datetime.now(UTC)
        doc = self.imports.setdefault(
            summary["import_id"],
            {
                "_id": summary["import_id"],
                "source": summary["source"],
                "format": summary["format"],
                "started_at": now,
                "completed": False,
                "district_id": district_id,
                "rejected": [],
                "notices": [],
                "seen_refs": [],
            }
            | dict.fromkeys(COUNTS, 0),
        )
        doc |= {"updated_at": now, "full_feed": summary["full_feed"]}
        for k in COUNTS:
            doc[k] += summary[k]
        doc["rejected"] += summary["rejected"]
        doc["notices"] += summary.get("notices", [])
        doc["seen_refs"] += [r for r in dict.fromkeys(seen_refs) if r not in doc["seen_refs"]]
        return dict(doc)

    async def get_import(
        self, import_id: uuid.UUID, tx: Transaction | None = None
    ) -> Document | None:
        found = self.imports.get(import_id)
        return dict(found) if found else None

    async def complete_import(
        self, tx: Transaction, import_id: uuid.UUID, full_feed: bool, closed: int
    ) -> Document | None:
        doc = self.imports.get(import_id)
        if doc is None or doc["completed"]:
            return None
        doc |= {"completed": True, "full_feed": full_feed, "completed_at": datetime.now(UTC)}
        doc["closed"] += closed
        return dict(doc)


def _reach_key(person: Candidate) -> str | None:
    """Only people who consent to matching and may work have one."""
    if not (person.matching_consent and permitted_types(person)):
        return None
    return reach_key(max_reach_km(person), person.municipality)


def _reach_keys(opening: Opening) -> list[str]:
    return [k for s in opening.sites for k in reach_keys_around(s.lat, s.lon)]


def _cells(opening: Opening) -> list[str]:
    """The search's keys of an open opening with a free seat; none otherwise."""
    if opening.status is not OpeningStatus.OPEN or opening.seats_free <= 0:
        return []
    return [f"{cell_of(s.lat, s.lon)}|{opening.required_rank}" for s in opening.sites]


def _history_entry(opening: Opening) -> Document:
    entry = opening.model_dump(mode="json", exclude={"opening_id"})
    entry |= {"published_at": opening.published_at, "updated_at": opening.updated_at}
    return entry | {"seats_free": opening.seats_free}
