"""A person's file: profile, courses, open suggestions, why not, cases, alerts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from lotse_portal.backend import UserApi

from .parts import STAGE_ORDER, Parts


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
