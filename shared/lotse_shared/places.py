"""The district's towns and municipalities (and the city of Kassel) with coordinates.

Reference data, read from ``data/places.json`` on first use (never at import).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Place:
    name: str
    kind: str
    in_district: bool
    postcode: str
    lat: float
    lon: float
    rail: bool


@cache
def all_places() -> dict[str, Place]:
    raw = json.loads(resources.files("lotse_shared.data").joinpath("places.json").read_text())
    return {p["name"]: Place(**p) for p in raw["places"]}


@cache
def _by_folded_name() -> dict[str, Place]:
    return {place.name.casefold(): place for place in all_places().values()}


def find_place(name: str) -> Place | None:
    """Look a place up by name, ignoring case and surrounding blanks."""
    return _by_folded_name().get(name.strip().casefold())


def place_names() -> list[str]:
    return sorted(all_places())


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))
