"""What each page shows, gathered from the services: the portal's use cases.

Every function takes the user's :class:`~.backend.UserApi` and returns plain data for
a template. A page makes a bounded number of calls whatever the caseload's size (the
services answer for a list of people at once). When one service does not answer, the
page still shows the other parts and names the missing one (``missing``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from lotse_shared.contracts.common import CefrLevel

from .backend import (
    SERVICE_LABELS,
    NotYours,
    Refused,
    ServiceError,
    SignedOut,
    Unavailable,
    UserApi,
    is_uuid,
)
from .i18n import KINDS
from .signin import User

T = TypeVar("T")
log = logging.getLogger(__name__)
STAGE_ORDER = [
    "proposed",
    "interview",
    "internship_started",
    "apprenticeship_started",
    "job_started",
    "employed_3_months",
    "employed_6_months",
]
CASELOAD_PAGE = 200
FLAGS = ("attendance_at_risk", "course_dropped", "permission_pending")
BERLIN = ZoneInfo("Europe/Berlin")


@dataclass
class Parts:
    """Collects which services did not answer while a page is put together, and why a
    service refused a part (no consent to matching, say): both are shown on the page."""

    missing: list[str] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)

    async def unless_refused(self, name: str, call: Awaitable[T], default: T) -> T:
        try:
            return await self.get(call, default)
        except Refused as e:
            self.refusals[name] = "; ".join(x.message for x in e.errors)
            return default

    async def get(self, call: Awaitable[T], default: T) -> T:
        try:
            return await call
        except (SignedOut, Refused):
            raise
        except ServiceError as e:
            if not isinstance(e, Unavailable):
                # a part the service refused (a version without the endpoint, say)
                log.warning("%s refused a part of the page: %s", e.service, type(e).__name__)
            label = SERVICE_LABELS.get(e.service, e.service)
            if label not in self.missing:
                self.missing.append(label)
            return default


def _level_rank(level: str | None) -> int:
    if level is None or level not in CefrLevel._value2member_map_:
        return -1
    return CefrLevel(level).rank


def best_level(*levels: str | None) -> str | None:
    known = [lv for lv in levels if lv]
    return max(known, key=_level_rank) if known else None


# --- caseload ------------------------------------------------------------------------
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
    rows = [r for r in rows if _matches(r, f)]
    rows.sort(key=_sort_key(f.sort))
    municipalities = sorted({p["municipality"] for p in people} | ({f.municipality} - {""}))
    return Caseload(rows, municipalities, len(people) == CASELOAD_PAGE, parts.missing)


def _matches(row: CaseloadRow, f: CaseloadFilter) -> bool:
    if f.level and _level_rank(row.level) < _level_rank(f.level):
        return False
    if f.stage == "none" and row.stage is not None:
        return False
    if f.stage and f.stage != "none" and row.stage != f.stage:
        return False
    return not (f.flag and f.flag not in row.flags)


def _sort_key(sort: str) -> Any:
    if sort == "level":
        return lambda r: (-_level_rank(r.level), r.name)
    if sort == "stage":
        return lambda r: (-(STAGE_ORDER.index(r.stage) if r.stage else -1), r.name)
    if sort == "unread":
        return lambda r: (-r.unread, r.name)
    if sort == "suggestions":
        return lambda r: (-r.open_suggestions, r.name)
    if sort == "attendance":
        return lambda r: (r.attendance_rate if r.attendance_rate is not None else 2.0, r.name)
    return lambda r: r.name.casefold()


# --- a person's file -----------------------------------------------------------------
@dataclass
class PersonFile:
    person: dict[str, Any]
    enrolments: list[dict[str, Any]]
    course_names: dict[str, str]
    suggestions: dict[str, Any]
    why_not: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    missing: list[str]
    refusals: dict[str, str]

    @property
    def open_cases(self) -> list[dict[str, Any]]:
        return [c for c in self.cases if not c["closed"]]


async def person_file(api: UserApi, person_id: str, suggestions_offset: int = 0) -> PersonFile:
    """Raises :class:`~.backend.NotYours` when intake says the person is not the user's."""
    parts = Parts()
    person = await api.get("intake", f"/people/{person_id}")
    enrolments, courses, suggestions, evaluation, cases, alerts = await asyncio.gather(
        parts.get(api.get("courses", "/enrolments", {"person_id": person_id}), []),
        parts.get(api.get("courses", "/courses", {"limit": 500}), []),
        parts.unless_refused(
            "suggestions",
            api.get(
                "placement",
                f"/people/{person_id}/suggestions/open",
                {"limit": 50, "offset": suggestions_offset},
            ),
            {"total": 0, "items": []},
        ),
        parts.unless_refused(
            "why_not",
            api.get("placement", f"/people/{person_id}/evaluation", {"limit": 40}),
            [],
        ),
        parts.get(api.get("placement", f"/people/{person_id}/cases"), []),
        parts.get(
            api.get("notifications", "/notifications", {"person_id": person_id, "limit": 20}),
            [],
        ),
    )
    suggested = {s["opening_id"] for s in suggestions["items"]}
    in_case = {c["opening_id"] for c in cases}
    why_not = [
        e for e in evaluation if not e["eligible"] and e["opening_id"] not in suggested | in_case
    ][:15]
    return PersonFile(
        person=person,
        enrolments=enrolments,
        course_names={c["course_id"]: c.get("title") or c.get("name") or "" for c in courses},
        suggestions=suggestions,
        why_not=why_not,
        cases=sorted(cases, key=lambda c: (c["closed"], c["stage_on"]), reverse=False),
        alerts=alerts,
        missing=parts.missing,
        refusals=parts.refusals,
    )


def next_stages(case: dict[str, Any]) -> list[str]:
    """The stages a case can move on to (the service checks the order again)."""
    if case["closed"]:
        return []
    at = STAGE_ORDER.index(case["stage"]) if case["stage"] in STAGE_ORDER else 0
    starts = {"internship_started", "apprenticeship_started", "job_started"}
    if case["stage"] in ("proposed",):
        return ["interview", *sorted(starts)]
    if case["stage"] == "interview":
        return sorted(starts)
    if case["stage"] in starts:
        return ["employed_3_months", "employed_6_months"]
    return STAGE_ORDER[at + 1 :]


# --- openings ------------------------------------------------------------------------
@dataclass
class OpeningsFilter:
    opening_type: str = ""
    sector: str = ""
    municipality: str = ""
    german_level: str = ""
    starts_by: str = ""
    q: str = ""
    offset: int = 0

    def params(self) -> dict[str, Any]:
        given = {k: v for k, v in vars(self).items() if v not in ("", None) and k != "offset"}
        return {**given, "status": "open", "limit": 50, "offset": self.offset}


async def openings(api: UserApi, f: OpeningsFilter) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await api.get("placement", "/openings", f.params())
    return result


@dataclass
class OpeningPage:
    opening: dict[str, Any]
    candidates: list[dict[str, Any]]
    names: dict[str, str]
    missing: list[str]


async def opening_page(api: UserApi, opening_id: str) -> OpeningPage:
    parts = Parts()
    opening, candidates = await asyncio.gather(
        api.get("placement", f"/openings/{opening_id}"),
        parts.get(api.get("placement", f"/openings/{opening_id}/candidates", {"limit": 20}), []),
    )
    names: dict[str, str] = {}
    if candidates:
        # names come from intake, which shows only the user's own people
        listing = await parts.get(api.get("intake", "/people", {"limit": 500}), {"items": []})
        names = {p["person_id"]: f"{p['given_name']} {p['family_name']}" for p in listing["items"]}
    return OpeningPage(opening, candidates, names, parts.missing)


# --- district figures ----------------------------------------------------------------
async def figures(api: UserApi) -> dict[str, Any]:
    report: dict[str, Any] = await api.get("placement", "/reports/placement")
    return report


def bars(values: dict[str, int]) -> list[tuple[str, int, float]]:
    """Label, value and the bar's share of the largest (for the SVG charts)."""
    top = max(values.values(), default=0) or 1
    return [(k, v, v / top) for k, v in values.items()]


# --- inbox ---------------------------------------------------------------------------
INBOX_PAGE = 25


@dataclass
class InboxFilter:
    """What the inbox page shows; every link and form on it keeps this."""

    archived: bool = False
    unread_only: bool = False
    kind: str = ""  # one of i18n.KINDS, or "" for all
    person_id: str = ""
    offset: int = 0

    @classmethod
    def of(
        cls, archived: bool, unread_only: bool, kind: str, person_id: str, offset: int
    ) -> InboxFilter:
        """Unknown kinds and malformed ids are dropped, not sent on (the page stays a page)."""
        return cls(
            archived=archived,
            unread_only=unread_only and not archived,
            kind=kind if kind in KINDS else "",
            person_id=person_id if is_uuid(person_id) else "",
            offset=max(offset, 0),
        )

    @property
    def filtered(self) -> bool:
        return bool(self.kind or self.person_id or self.unread_only)

    def params(self) -> dict[str, Any]:
        """The filter as notifications' query parameters (``GET /notifications``)."""
        given: dict[str, Any] = {"archived": self.archived, "unread_only": self.unread_only}
        if self.kind:
            given["kind"] = self.kind
        if self.person_id:
            given["person_id"] = self.person_id
        return given

    def link(self, **changes: Any) -> str:
        """``/inbox`` with this filter, ``changes`` applied; a new filter starts at the
        first page unless ``offset`` is given. Defaults stay out of the link."""
        values = {**vars(self), "offset": 0, **changes}
        shown = {
            k: "true" if v is True else str(v)
            for k, v in values.items()
            if v not in (None, False, 0, "")
        }
        return "/inbox" + ("?" + urlencode(shown) if shown else "")


@dataclass
class Opening:
    """One opening under an alert, or in a digest's group."""

    title: str
    employer: str
    municipality: str
    opening_type: str
    score: float | None
    reasons: list[str]
    forecast: bool
    unavailable: bool
    confirmed_note: str

    @classmethod
    def of(cls, raw: Any) -> Opening:
        e = raw if isinstance(raw, dict) else {}
        score = e.get("score")
        reasons = e.get("reasons")
        return cls(
            title=str(e.get("title") or "–"),
            employer=str(e.get("employer") or ""),
            municipality=str(e.get("municipality") or ""),
            opening_type=str(e.get("opening_type") or ""),
            score=float(score) if isinstance(score, int | float) else None,
            reasons=[str(r) for r in reasons if r] if isinstance(reasons, list) else [],
            forecast=bool(e.get("forecast")),
            unavailable=bool(e.get("unavailable")),
            confirmed_note=str(e.get("confirmed_note") or ""),
        )


@dataclass
class DigestGroup:
    person: str
    person_id: str  # "" when the digest names no id (the link is left out)
    openings: list[Opening]


@dataclass
class InboxItem:
    """A notification as the page shows it: the service's fields and its structured
    parts, read with defaults (facts change shape over time; an item never breaks the
    page)."""

    n: dict[str, Any]
    openings: list[Opening] = field(default_factory=list)  # an alert's suggestions
    groups: list[DigestGroup] = field(default_factory=list)  # a digest's, best first
    bundled: list[str] = field(default_factory=list)  # a digest's other items' subjects

    @property
    def entries(self) -> int:
        return sum(len(g.openings) for g in self.groups)

    @property
    def when(self) -> str:
        """When it arrived, on the district's clock."""
        raw = str(self.n.get("created_at") or "")
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            return raw[:16].replace("T", " ")
        return f"{at.astimezone(BERLIN):%d.%m.%Y %H:%M}" if at.tzinfo else f"{at:%d.%m.%Y %H:%M}"

    @classmethod
    def of(cls, n: dict[str, Any]) -> InboxItem:
        raw_facts = n.get("facts")
        facts: dict[str, Any] = raw_facts if isinstance(raw_facts, dict) else {}
        item = cls(n)
        if n.get("kind") == "digest":
            for raw in _dicts(facts.get("groups")):
                openings = sorted(
                    (Opening.of(e) for e in _dicts(raw.get("entries"))),
                    key=lambda o: o.score or 0.0,
                    reverse=True,
                )
                pid = str(raw.get("person_id") or "")
                item.groups.append(
                    DigestGroup(
                        str(raw.get("person") or "–"), pid if is_uuid(pid) else "", openings
                    )
                )
            item.groups.sort(key=lambda g: max((o.score or 0.0 for o in g.openings), default=0))
            item.groups.reverse()
            item.bundled = [str(i.get("subject") or "") for i in _dicts(facts.get("items"))]
        else:
            item.openings = [Opening.of(e) for e in _dicts(facts.get("suggestions"))]
        return item


@dataclass
class Inbox:
    items: list[InboxItem]
    counts: dict[str, Any]  # {"total": n, "by_kind": {kind: n}}
    more: bool
    person: str | None  # the name behind the person filter, where the user may see it
    missing: list[str]

    def unread_of(self, kind: str = "") -> int:
        by_kind = self.counts.get("by_kind") or {}
        return int(by_kind.get(kind, 0) if kind else self.counts.get("total", 0))

    @property
    def unread_kinds(self) -> list[tuple[str, int]]:
        by_kind = self.counts.get("by_kind") or {}
        return [(k, int(by_kind[k])) for k in KINDS if by_kind.get(k)]


async def inbox(api: UserApi, f: InboxFilter) -> Inbox:
    """One page of the user's inbox, its unread counts, and the filtered person's name:
    three calls at once, whatever the inbox's size."""
    parts = Parts()

    async def person_name() -> str | None:
        if not f.person_id:
            return None
        try:
            p = await api.get("intake", f"/people/{f.person_id}")
        except NotYours:
            return ""  # not the user's to name: the page says "a person"
        return f"{p['given_name']} {p['family_name']}"

    params = {**f.params(), "limit": INBOX_PAGE + 1, "offset": f.offset}
    items, counts, person = await asyncio.gather(
        api.get("notifications", "/notifications", params),
        parts.get(
            api.get("notifications", "/notifications/unread-counts"), {"total": 0, "by_kind": {}}
        ),
        parts.get(person_name(), ""),
    )
    return Inbox(
        items=[InboxItem.of(n) for n in items[:INBOX_PAGE]],
        counts=counts,
        more=len(items) > INBOX_PAGE,
        person=person,
        missing=parts.missing,
    )


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def today() -> date:
    return date.today()
