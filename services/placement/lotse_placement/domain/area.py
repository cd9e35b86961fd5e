"""Where to look: a grid over the map, so that "openings near this person" and "people
who can reach this opening" are index lookups on one field instead of scans.

Openings carry the grid cell they lie in; a search walks rings of cells outwards
from the person, nearest first, and can stop as soon as nothing farther away can
beat what it holds (see :func:`matching.score_ceiling`). People live in one of the
district's places, so "who can reach this point" is answered by keys of the form
``<reach class>|<place>``: one key per place and reach class within range.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from lotse_shared.places import Place, all_places, distance_km

CELL_DEG_LAT = 0.025  # about 2.8 km
CELL_DEG_LON = 0.0375  # about 2.6 km at Kassel's latitude
KM_PER_DEG_LAT = 111.2

# A person's reach is rounded up to one of these, so an opening is matched with a
# bounded number of keys; the exact distance rule runs after.
REACH_CLASSES = (5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 80, 100, 150, 200, 300)


def cell_of(lat: float, lon: float) -> str:
    return f"{math.floor(lat / CELL_DEG_LAT)}:{math.floor(lon / CELL_DEG_LON)}"


def reach_class(km: float) -> int:
    for limit in REACH_CLASSES:
        if km <= limit:
            return limit
    return REACH_CLASSES[-1]


def reach_key(reach_km: float, place: str) -> str:
    return f"{reach_class(reach_km)}|{place}"


def reach_keys_around(lat: float, lon: float, places: dict[str, Place] | None = None) -> list[str]:
    """Every key of a person who might reach (lat, lon): their place is within their
    reach class of it."""
    if places is None:
        return _reach_keys_in_arrays(lat, lon)
    keys: list[str] = []
    for place in places.values():
        km = round(distance_km(place.lat, place.lon, lat, lon), 1)  # as the reach rule rounds
        keys.extend(f"{limit}|{place.name}" for limit in REACH_CLASSES if km <= limit)
    return keys


@cache
def _places_in_arrays() -> tuple[list[Place], Any, Any, list[list[str]]]:
    places = list(all_places().values())
    lat = np.radians(np.array([p.lat for p in places]))
    keys = [[f"{limit}|{p.name}" for limit in REACH_CLASSES] for p in places]
    return places, lat, np.array([p.lon for p in places]), keys


def _reach_keys_in_arrays(lat: float, lon: float) -> list[str]:
    """:func:`reach_keys_around` over all places at once (an import batch asks this of
    every opening): the same keys, in the same order; a way within 1e-7 of a rounding
    edge is rounded as the rules round it."""
    places, p1, plon, keys = _places_in_arrays()
    p2 = math.radians(lat)
    dl = np.radians(lon - plon)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * math.cos(p2) * np.sin(dl / 2) ** 2
    tenths = 2 * 6371.0 * np.arcsin(np.sqrt(a)) * 10
    km = np.round(tenths) / 10
    for i in np.nonzero(np.abs(tenths - np.floor(tenths) - 0.5) < 1e-7)[0].tolist():
        km[i] = round(distance_km(places[i].lat, places[i].lon, lat, lon), 1)
    first = np.searchsorted(np.array(REACH_CLASSES, dtype=np.float64), km, side="left")
    return [key for i, start in enumerate(first.tolist()) for key in keys[i][start:]]


@dataclass(frozen=True)
class Ring:
    """Cells at Chebyshev distance ``first``..``last`` from the centre cell, and how
    near to the centre point anything outside them can be."""

    cells: list[str]
    beyond_km: float


def _cell_km(lat: float) -> float:
    """The shorter side of a cell near ``lat``, in km."""
    lon_km = CELL_DEG_LON * KM_PER_DEG_LAT * math.cos(math.radians(lat))
    return min(CELL_DEG_LAT * KM_PER_DEG_LAT, lon_km)


def _beyond_km(lat: float, lon: float, ci: int, cj: int, k: int) -> float:
    """How far (lat, lon) is from the edge of the square of cells within ring ``k``:
    nothing outside the square is nearer."""
    south, north = (ci - k) * CELL_DEG_LAT, (ci + k + 1) * CELL_DEG_LAT
    west, east = (cj - k) * CELL_DEG_LON, (cj + k + 1) * CELL_DEG_LON
    widest = max(abs(south), abs(north))  # degrees of longitude are shortest there
    lon_km = KM_PER_DEG_LAT * math.cos(math.radians(widest))
    edges = (
        (lat - south) * KM_PER_DEG_LAT,
        (north - lat) * KM_PER_DEG_LAT,
        (lon - west) * lon_km,
        (east - lon) * lon_km,
    )
    return max(0.0, min(edges) * 0.99)  # a hair short: the haversine is not a plane


def rings(lat: float, lon: float, max_km: float) -> Iterator[Ring]:
    """Rings of cells around a point, outwards, one ring at a time near the centre and
    a few at once farther out, until every cell within ``max_km`` has been given."""
    ci, cj = math.floor(lat / CELL_DEG_LAT), math.floor(lon / CELL_DEG_LON)
    deepest = math.ceil(max_km / (_cell_km(lat) * 0.95)) + 1
    first = 0
    while first <= deepest:
        last = min(first + max(first // 3, 0), deepest)
        cells = [
            f"{ci + di}:{cj + dj}"
            for k in range(first, last + 1)
            for di in range(-k, k + 1)
            for dj in range(-k, k + 1)
            if max(abs(di), abs(dj)) == k
        ]
        yield Ring(cells, beyond_km=_beyond_km(lat, lon, ci, cj, last))
        first = last + 1
