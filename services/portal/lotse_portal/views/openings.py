"""The open openings, and one opening with the user's people it suits best."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from lotse_portal.backend import UserApi

from .parts import Parts


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
