"""The user's inbox: one page, its unread counts, each alert's openings or digest."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from lotse_portal.backend import NotYours, UserApi, is_uuid
from lotse_portal.i18n import KINDS

from .parts import Parts

BERLIN = ZoneInfo("Europe/Berlin")
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
