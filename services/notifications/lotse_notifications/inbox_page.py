"""What the inbox page shows, prepared for its template: labels, links, and the
structured parts of an item (a digest's entries, an alert's suggestions).

Facts are written by the use cases and change shape over time, so everything read
from them here is read with a default: an item never breaks the page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from lotse_shared.contracts.common import Language

from .domain.model import Kind, Notification
from .inbox import InboxCounts, InboxFilter, InboxPage
from .templates import TYPE_LABELS

PAGE_SIZE = 50

KIND_LABELS = {
    Kind.SUGGESTIONS_READY.value: "Neue Vorschläge",
    Kind.COURSE_COMPLETED.value: "Kurs abgeschlossen",
    Kind.COURSE_DROPPED.value: "Kurs abgebrochen",
    Kind.ENROLLED.value: "Kursanmeldung",
    Kind.ATTENDANCE_AT_RISK.value: "Anwesenheit gefährdet",
    Kind.ESCALATION.value: "Eskalation",
    Kind.DIGEST.value: "Tagesübersicht",
}
# the query parameters a page link carries (the forms on the page keep them too)
PAGE_PARAMS = ("recipient", "archived", "kind", "person_id", "unread_only", "offset")


def page_link(f: InboxFilter, offset: int = 0, **changes: Any) -> str:
    """``/inbox`` with this filter (``changes`` replaced) at ``offset``."""
    params: dict[str, Any] = {
        "recipient": f.recipient,
        "archived": f.archived,
        "kind": f.kind.value if f.kind else None,
        "person_id": f.person_id,
        "unread_only": f.unread_only,
        "offset": offset,
        **changes,
    }
    shown = {
        k: "true" if v is True else str(v)
        for k, v in params.items()
        if v not in (None, False, 0, "")  # defaults stay out of the link
    }
    return f"/inbox?{urlencode(shown, safe='@')}"


def back_to_page(query: dict[str, str], recipient: str) -> str:
    """Where a form on the page returns to: the page it was sent from (its query
    parameters, as posted along), in the recipient's inbox."""
    kept = {k: v for k, v in query.items() if k in PAGE_PARAMS and k != "recipient"}
    return f"/inbox?{urlencode({'recipient': recipient, **kept}, safe='@')}"


def number(n: int) -> str:
    return f"{n:,}".replace(",", ".")


@dataclass
class Entry:
    """One opening as shown: in a digest's group, or under an alert."""

    title: str
    employer: str
    municipality: str
    type_label: str
    distance_km: float | None
    score: float | None
    reasons: list[str]
    forecast: bool
    unavailable: bool
    confirmed_note: str | None

    @classmethod
    def of(cls, raw: Any) -> Entry:
        e = raw if isinstance(raw, dict) else {}
        opening_type = str(e.get("opening_type") or "")
        reasons = e.get("reasons")
        return cls(
            title=str(e.get("title") or "Stelle"),
            employer=str(e.get("employer") or ""),
            municipality=str(e.get("municipality") or ""),
            type_label=TYPE_LABELS[Language.DE].get(opening_type, opening_type),
            distance_km=_number(e.get("distance_km")),
            score=_number(e.get("score")),
            reasons=[str(r) for r in reasons if r] if isinstance(reasons, list) else [],
            forecast=bool(e.get("forecast")),
            unavailable=bool(e.get("unavailable")),
            confirmed_note=str(e["confirmed_note"]) if e.get("confirmed_note") else None,
        )


@dataclass
class Group:
    person: str
    entries: list[Entry]
    person_link: str | None = None  # this person's items only

    @property
    def best(self) -> float:
        return max((e.score or 0.0 for e in self.entries), default=0.0)


@dataclass
class Shown:
    """One item of the page: the notification and its structured parts."""

    n: Notification
    kind_label: str
    suggestions: list[Entry] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)  # a digest's, best first
    bundled: list[str] = field(default_factory=list)  # a digest's other items' subjects
    person_link: str | None = None

    @property
    def entries(self) -> int:
        return sum(len(g.entries) for g in self.groups)


def shown(n: Notification, f: InboxFilter) -> Shown:
    facts = n.facts if isinstance(n.facts, dict) else {}
    item = Shown(n, KIND_LABELS.get(n.kind.value, n.kind.value))
    if n.kind is Kind.DIGEST:
        for raw in _dicts(facts.get("groups")):
            entries = sorted(
                (Entry.of(e) for e in _dicts(raw.get("entries"))),
                key=lambda e: e.score or 0.0,
                reverse=True,
            )
            person_id = _uuid(raw.get("person_id"))
            item.groups.append(
                Group(
                    str(raw.get("person") or "Ohne Namen"),
                    entries,
                    page_link(f, person_id=person_id) if person_id and not f.person_id else None,
                )
            )
        item.groups.sort(key=lambda g: g.best, reverse=True)
        item.bundled = [str(i.get("subject") or "") for i in _dicts(facts.get("items"))]
    elif n.kind in (Kind.COURSE_COMPLETED, Kind.SUGGESTIONS_READY):
        item.suggestions = [Entry.of(e) for e in _dicts(facts.get("suggestions"))]
    if n.person_id is not None and f.person_id is None:
        item.person_link = page_link(f, person_id=n.person_id)
    return item


def page_context(
    f: InboxFilter,
    page: InboxPage,
    items: list[Notification],
    offset: int,
    person: str | None,
    state: str,
) -> dict[str, Any]:
    """What inbox.html needs besides the fixed parts (labels, time zone)."""
    counts: InboxCounts = page.counts
    shown_to = offset + len(items)
    unread_kinds = [
        (KIND_LABELS[k], number(n), page_link(InboxFilter(f.recipient), kind=k, unread_only=True))
        for k, n in counts.unread_by_kind().items()
        if n
    ]
    return {
        "recipient": f.recipient,
        "filter": f,
        "items": [shown(n, f) for n in items],
        "archived": f.archived,
        "unread": counts.unread,
        "unread_kinds": unread_kinds,
        "kinds": list(KIND_LABELS.items()),
        "person": person,
        "without_person": page_link(f, person_id=None) if f.person_id else None,
        "without_filter": page_link(InboxFilter(f.recipient, archived=f.archived)),
        "filtered": bool(f.kind or f.person_id or f.unread_only),
        "range": (
            f"{number(offset + 1)}–{number(shown_to)} von {number(page.total)}" if items else ""
        ),
        "newer": page_link(f, max(0, offset - PAGE_SIZE)) if offset > 0 else None,
        "older": page_link(f, shown_to) if shown_to < page.total else None,
        "read_all": (
            "/inbox/read-all?" + page_link(f).partition("?")[2]
            if page.unread and not f.archived
            else None
        ),
        "archive_link": page_link(InboxFilter(f.recipient, archived=not f.archived)),
        "here": page_link(f, offset).partition("?")[2],
        "state": state,
    }


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
