"""My caseload: the people the user may see, with what each service knows of them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from lotse_portal.backend import UserApi
from lotse_portal.signin import User

from .parts import STAGE_ORDER, Parts, best_level, level_rank

CASELOAD_PAGE = 200
FLAGS = ("attendance_at_risk", "course_dropped", "permission_pending")


@dataclass
class CaseloadFilter:
    q: str = ""
    municipality: str = ""
    level: str = ""  # at least this German level reached
    stage: str = ""  # furthest stage, or "none"
    flag: str = ""
    sort: str = "name"
    offset: int = 0


@dataclass
class CaseloadRow:
    person_id: str
    name: str
    municipality: str
    level: str | None
    forecast: str | None
    course: str | None
    attendance_rate: float | None
    open_suggestions: int
    best_score: float | None
    stage: str | None
    unread: int
    flags: list[str]


@dataclass
class Caseload:
    rows: list[CaseloadRow]
    municipalities: list[str]
    more: bool
    missing: list[str]


async def caseload(api: UserApi, user: User, f: CaseloadFilter) -> Caseload:
    """The people the user may see (intake decides), with one bulk call per service."""
    parts = Parts()
    params: dict[str, Any] = {"limit": CASELOAD_PAGE, "offset": f.offset}
    if f.q:
        params["q"] = f.q
    if f.municipality:
        params["municipality"] = f.municipality
    listing = await api.get("intake", "/people", params)  # without people there is no page
    people = listing["items"]
    ids = [p["person_id"] for p in people]
    enrolments: list[dict[str, Any]] = []
    overviews: list[dict[str, Any]] = []
    unread: dict[str, int] = {}
    courses: list[dict[str, Any]] = []
    if ids:
        enrolments, overviews, unread, courses = await asyncio.gather(
            parts.get(api.post("courses", "/enrolments/query", {"person_ids": ids}), []),
            parts.get(api.post("placement", "/people/overview", {"person_ids": ids}), []),
            parts.get(api.get("notifications", "/notifications/unread-by-person"), {}),
            parts.get(api.get("courses", "/courses", {"limit": 500}), []),
        )
    course_names = {c["course_id"]: c.get("title") or c.get("name") or "" for c in courses}
    by_person: dict[str, list[dict[str, Any]]] = {}
    for e in enrolments:
        by_person.setdefault(e["person_id"], []).append(e)
    overview = {o["person_id"]: o for o in overviews}
    rows = []
    for p in people:
        pid = p["person_id"]
        own = by_person.get(pid, [])
        active = [e for e in own if e["status"] == "active"]
        o = overview.get(pid, {})
        flags = []
        if any(e.get("attendance_at_risk") for e in active):
            flags.append("attendance_at_risk")
        if any(e["status"] == "dropped" for e in own):
            flags.append("course_dropped")
        if p.get("work_permission") == "needs_approval":
            flags.append("permission_pending")
        reached = [e.get("level_reached") for e in own]
        rows.append(
            CaseloadRow(
                person_id=pid,
                name=f"{p['given_name']} {p['family_name']}",
                municipality=p["municipality"],
                level=best_level(p.get("german_level"), o.get("course_level"), *reached),
                forecast=active[0]["target_level"] if active else None,
                course=course_names.get(active[0]["course_id"], active[0]["course_type"])
                if active
                else None,
                attendance_rate=active[0]["attendance_rate"] if active else None,
                open_suggestions=int(o.get("open_suggestions", 0)),
                best_score=o.get("best_score"),
                stage=o.get("furthest_stage"),
                unread=int(unread.get(pid, 0)),
                flags=flags,
            )
        )
    rows = [r for r in rows if matches(r, f)]
    rows.sort(key=sort_key(f.sort))
    municipalities = sorted({p["municipality"] for p in people} | ({f.municipality} - {""}))
    return Caseload(rows, municipalities, len(people) == CASELOAD_PAGE, parts.missing)


def matches(row: CaseloadRow, f: CaseloadFilter) -> bool:
    if f.level and level_rank(row.level) < level_rank(f.level):
        return False
    if f.stage == "none" and row.stage is not None:
        return False
    if f.stage and f.stage != "none" and row.stage != f.stage:
        return False
    return not (f.flag and f.flag not in row.flags)


def sort_key(sort: str) -> Any:
    if sort == "level":
        return lambda r: (-level_rank(r.level), r.name)
    if sort == "stage":
        return lambda r: (-(STAGE_ORDER.index(r.stage) if r.stage else -1), r.name)
    if sort == "unread":
        return lambda r: (-r.unread, r.name)
    if sort == "suggestions":
        return lambda r: (-r.open_suggestions, r.name)
    if sort == "attendance":
        return lambda r: (r.attendance_rate if r.attendance_rate is not None else 2.0, r.name)
    return lambda r: r.name.casefold()
