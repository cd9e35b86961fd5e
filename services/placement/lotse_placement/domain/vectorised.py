"""Matching in arrays: the hard rules' verdict, the way and the score of many pairs at
once, over features taken once from each person and each opening.

The rule-by-rule functions of :mod:`matching` stay the reference: they give the
reasons and answer "why not?". This module only chooses, and it must choose exactly
what they choose, ties included. It computes the very same float operations in the
same order; where numpy's sine or arc sine could differ from the C library's by an
ulp and a value sits on a rounding edge (a distance or a score ending in ...5 at the
second decimal, within 1e-7), the value is taken from the rule-by-rule function
instead. A property test compares both on random people and openings.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from lotse_shared.contracts.common import CourseType, OpeningType, Sector, cefr_rank
from lotse_shared.places import distance_km, find_place

from .matching import (
    _SKILLED_EDUCATION,
    ADULT_AGE,
    DISTANCE_POINTS,
    MIN_WORKING_AGE,
    NO_CAR_RAIL_REACH_KM,
    NO_CAR_REACH_KM,
    permitted_types,
)
from .model import Candidate, Opening, OpeningStatus

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

TYPES = list(OpeningType)
TYPE_INDEX = {t: i for i, t in enumerate(TYPES)}
SECTOR_BIT = {s: 1 << i for i, s in enumerate(Sector)}
PRAKTIKUM = TYPE_INDEX[OpeningType.PRAKTIKUM]
BESCHAEFTIGUNG = TYPE_INDEX[OpeningType.BESCHAEFTIGUNG]
NO_DATE = -1  # an ordinal no date has
NEVER = 1 << 40  # an ordinal after every date
EARTH_DIAMETER_KM = 2 * 6371.0  # as distance_km computes it: 2 * r first
DEG = math.pi / 180.0  # what math.radians multiplies by
EDGE = 1e-7  # closer than this to a rounding edge: ask the rule-by-rule function


def _rail(municipality: str | None) -> bool:
    place = find_place(municipality) if municipality else None
    return bool(place and place.rail)


def _code(code: str | None, digits: int) -> int:
    return int(code[:digits]) if code else -1


@dataclass(frozen=True)
class PeopleTable:
    """The matching features of a list of people, one row each."""

    people: npt.NDArray[np.object_]  # the Candidates, by row
    types: Ints  # bit per permitted opening type
    german: Ints
    course_end: Ints  # (P, K) ordinal, NEVER when fewer courses
    course_rank: Ints  # (P, K) target rank, -1 when fewer courses
    intea_end: Ints  # latest end of an InteA class, NO_DATE if none
    birth_year: Ints
    lat: Floats
    lon: Floats
    car: Bools
    commute: Floats
    rail: Bools
    sectors: Ints  # bit per sector of interest
    exp3: Ints  # (P, E) KldB group of each experience, -1 when fewer
    exp2: Ints  # (P, E) KldB area
    unskilled: Bools
    available: Ints  # ordinal of available_from, NO_DATE if none
    order: Ints  # rank of str(person_id) among the table's people (ties break by it)

    @classmethod
    def of(cls, people: Sequence[Candidate]) -> PeopleTable:
        n = len(people)
        k = max((len(p.ongoing_courses) for p in people), default=0)
        e = max((len(p.experience_occupations) for p in people), default=0)
        course_end = np.full((n, k), NEVER, dtype=np.int64)
        course_rank = np.full((n, k), -1, dtype=np.int64)
        exp3 = np.full((n, e), -1, dtype=np.int64)
        exp2 = np.full((n, e), -1, dtype=np.int64)
        rows: list[tuple[Any, ...]] = []
        for i, p in enumerate(people):
            for j, c in enumerate(p.ongoing_courses):
                course_end[i, j] = c.ends_on.toordinal()
                course_rank[i, j] = c.target_level.rank
            for j, code in enumerate(p.experience_occupations):
                exp3[i, j] = _code(code, 3)
                exp2[i, j] = _code(code, 2)
            intea = [
                c.ends_on.toordinal()
                for c in p.ongoing_courses
                if c.course_type is CourseType.INTEA
            ]
            rows.append(
                (
                    sum(1 << TYPE_INDEX[t] for t in permitted_types(p)),
                    p.german_rank,
                    max(intea, default=NO_DATE),
                    p.birth_year,
                    p.lat,
                    p.lon,
                    p.driving_licence,
                    float(p.max_commute_km),
                    _rail(p.municipality),
                    sum(SECTOR_BIT[s] for s in set(p.sectors_of_interest)),
                    p.education_level not in _SKILLED_EDUCATION,
                    p.available_from.toordinal() if p.available_from else NO_DATE,
                )
            )
        cols = list(zip(*rows, strict=True)) if rows else [()] * 12
        order = np.empty(n, dtype=np.int64)
        order[sorted(range(n), key=lambda i: str(people[i].person_id))] = np.arange(n)
        objects = np.empty(n, dtype=object)
        objects[:] = list(people)
        return cls(
            people=objects,
            types=np.array(cols[0], dtype=np.int64),
            german=np.array(cols[1], dtype=np.int64),
            course_end=course_end,
            course_rank=course_rank,
            intea_end=np.array(cols[2], dtype=np.int64),
            birth_year=np.array(cols[3], dtype=np.int64),
            lat=np.array(cols[4], dtype=np.float64),
            lon=np.array(cols[5], dtype=np.float64),
            car=np.array(cols[6], dtype=np.bool_),
            commute=np.array(cols[7], dtype=np.float64),
            rail=np.array(cols[8], dtype=np.bool_),
            sectors=np.array(cols[9], dtype=np.int64),
            exp3=exp3,
            exp2=exp2,
            unskilled=np.array(cols[10], dtype=np.bool_),
            available=np.array(cols[11], dtype=np.int64),
            order=order,
        )

    def take(self, rows: Ints) -> PeopleTable:
        """The rows ``rows`` (their tie-break order kept)."""
        return PeopleTable(
            **{name: getattr(self, name)[rows] for name in self.__dataclass_fields__}
        )


class Crowd(list[Candidate]):
    """People with their features computed once (an import batch's lookup): each
    opening of the batch takes its rows of one table instead of recomputing them."""

    def __init__(self, table: PeopleTable, rows: Ints) -> None:
        super().__init__(table.people[rows].tolist())
        self.table = table
        self.rows = rows

    def features(self) -> PeopleTable:
        if len(self.rows) != len(self):  # changed in place since: compute afresh
            return PeopleTable.of(self)
        return self.table.take(self.rows)


@dataclass
class OpeningTable:
    """The matching features of openings, one row each (their main place), and one
    row per further place of an opening with several. Rows can be replaced and
    dropped in place (``alive``), so that a table kept in memory follows changes."""

    ids: list[uuid.UUID | None]
    titles: list[str]
    alive: Bools
    district: Ints  # code from ``districts``
    type: Ints
    sector: Ints  # the sector's bit
    code3: Ints
    code2: Ints
    skilled: Bools  # a job (Beschäftigung) for skilled workers or more
    required: Ints
    asks_level: Bools
    start: Ints  # ordinal, NO_DATE if none
    start_year: Ints
    lat: Floats
    lon: Floats
    rail: Bools
    districts: dict[str, int]
    # further places: the opening's row, the place's position (1, 2, ...), where it is
    extra: dict[int, list[tuple[float, float, bool]]]
    size: int = 0

    @classmethod
    def empty(cls, capacity: int = 64) -> OpeningTable:
        def ints() -> Ints:
            return np.zeros(capacity, dtype=np.int64)

        def floats() -> Floats:
            return np.zeros(capacity, dtype=np.float64)

        def bools() -> Bools:
            return np.zeros(capacity, dtype=np.bool_)

        return cls(
            ids=[None] * capacity,
            titles=[""] * capacity,
            alive=bools(),
            district=ints(),
            type=ints(),
            sector=ints(),
            code3=ints(),
            code2=ints(),
            skilled=bools(),
            required=ints(),
            asks_level=bools(),
            start=ints(),
            start_year=ints(),
            lat=floats(),
            lon=floats(),
            rail=bools(),
            districts={},
            extra={},
        )

    @classmethod
    def of(cls, openings: Iterable[Opening]) -> OpeningTable:
        openings = list(openings)
        table = cls.empty(max(len(openings), 1))
        for opening in openings:
            table.put(table.size, opening)
        return table

    _ARRAYS = (
        "alive",
        "district",
        "type",
        "sector",
        "code3",
        "code2",
        "skilled",
        "required",
        "asks_level",
        "start",
        "start_year",
        "lat",
        "lon",
        "rail",
    )

    def grow(self) -> None:
        capacity = max(2 * len(self.alive), 64)
        for name in self._ARRAYS:
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self.ids.extend([None] * (capacity - len(self.ids)))
        self.titles.extend([""] * (capacity - len(self.titles)))

    def put(self, row: int, opening: Opening) -> None:
        """Write the opening's features into ``row`` (the next free one or its own)."""
        while row >= len(self.alive):
            self.grow()
        self.size = max(self.size, row + 1)
        code = opening.occupation_code
        self.ids[row] = opening.opening_id
        self.titles[row] = opening.title
        self.alive[row] = True
        self.district[row] = self.districts.setdefault(opening.district_id, len(self.districts))
        self.type[row] = TYPE_INDEX[opening.opening_type]
        self.sector[row] = SECTOR_BIT[opening.sector]
        self.code3[row] = _code(code, 3)
        self.code2[row] = _code(code, 2)
        self.skilled[row] = (
            opening.opening_type is OpeningType.BESCHAEFTIGUNG
            and opening.skill_level is not None
            and opening.skill_level >= 2
        )
        self.required[row] = cefr_rank(opening.required_german_level)
        self.asks_level[row] = opening.required_german_level is not None
        start = opening.start_date
        self.start[row] = start.toordinal() if start else NO_DATE
        self.start_year[row] = start.year if start else 0
        self.lat[row] = opening.lat
        self.lon[row] = opening.lon
        self.rail[row] = _rail(opening.municipality)
        self.extra.pop(row, None)
        if opening.other_locations:
            self.extra[row] = [
                (s.lat, s.lon, _rail(s.municipality)) for s in opening.other_locations
            ]

    def drop(self, row: int) -> None:
        self.alive[row] = False
        self.ids[row] = None
        self.extra.pop(row, None)


# --- the rules and the score, over a (people x openings) grid --------------------------


@dataclass(frozen=True)
class Grid:
    """Each pair's verdict of the hard rules, way (km, as ``work_site`` rounds it) and
    score (as ``score`` rounds it; meaningful where eligible)."""

    eligible: Bools
    km: Floats
    score: Floats


def _haversine(plat: Floats, plon: Floats, olat: Floats, olon: Floats) -> Floats:
    """``distance_km`` term by term (person first, as ``work_site`` calls it)."""
    p1, p2 = plat * DEG, olat * DEG
    dp, dl = p2 - p1, (olon - plon) * DEG
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    result: Floats = EARTH_DIAMETER_KM * np.arcsin(np.sqrt(a))
    return result


def _round1(values: Floats, exact: Any, where: Bools | None = None) -> Floats:
    """``round(v, 1)`` of each value; those within EDGE of a rounding edge (of them,
    those ``where`` says matter) come from ``exact(index)``, the rule-by-rule value."""
    rounded: Floats = np.round(values, 1)
    tenths = values * 10
    edge = np.abs(tenths - np.floor(tenths) - 0.5) < EDGE
    if where is not None:
        edge &= where
    if edge.any():
        for index in zip(*np.nonzero(edge), strict=True):
            rounded[index] = exact(tuple(int(i) for i in index))
    return rounded


def _round1_exactly(values: Floats) -> Floats:
    """``round(v, 1)`` as Python rounds: by the exact binary value, and a value exactly
    on the midpoint (k + 1/2) / 10 (such as 40.75) to the even tenth. Integer
    arithmetic decides the side: v = M * 2**E exactly, and v > (2k + 1) / 20  <=>
    20 * M > (2k + 1) * 2**-E (both within 64 bits for |v| < 2**10)."""
    size = np.abs(values)
    mantissa, exponent = np.frexp(size)
    m = (mantissa * 2.0**53).astype(np.int64)
    shift = (53 - exponent).astype(np.int64)  # -E, >= 0 below 2**53
    k = np.floor(size * 10)
    lhs, rhs = 20 * m, np.left_shift((2 * k + 1).astype(np.int64), shift)
    up = (lhs > rhs) | ((lhs == rhs) & (k % 2 == 1))
    rounded: Floats = np.copysign((k + up) / 10, values)
    # nearer 0 than any midpoint (and too small for the shift): no edge to decide
    return np.where(size < 0.04, np.round(values, 1), rounded)


def _reach(p: PeopleTable, there_rail: Bools) -> Floats:
    """``_reach_to``: the person's limit, less without a car (by rail if both places
    are on the railway)."""
    car, commute = p.car[:, None], p.commute[:, None]
    by_rail = p.rail[:, None] & there_rail
    walking = np.minimum(commute, np.where(by_rail, NO_CAR_RAIL_REACH_KM, NO_CAR_REACH_KM))
    reach: Floats = np.where(car, commute, walking)
    return reach


def grid(
    p: PeopleTable,
    o: OpeningTable,
    today: date,
    rows: Ints | None = None,
) -> Grid:
    """Every pair of ``p`` x ``o`` (the rows ``rows`` of ``o``, or all its ``size``)."""
    if rows is None:
        rows = np.arange(o.size)
    today_ord = today.toordinal()
    kind = o.type[rows][None, :]
    required = o.required[rows][None, :]
    start = o.start[rows][None, :]
    german = p.german[:, None]

    ok: Bools = ((p.types[:, None] >> kind) & 1).astype(np.bool_)
    # German: reached, or forecast by a course that ends before a start still to come
    lacking = german < required
    if lacking.any():
        future = start > today_ord
        forecast = np.full(lacking.shape, -1, dtype=np.int64)
        for k in range(p.course_end.shape[1]):
            ends = p.course_end[:, k][:, None]
            aims = p.course_rank[:, k][:, None]
            forecast = np.maximum(forecast, np.where(ends <= start, aims, -1))
        ok &= ~lacking | (future & (forecast >= required))
    # age at the start, InteA, minors
    later = start > today_ord
    begin = np.where(later, start, today_ord)
    begin_year = np.where(later, o.start_year[rows][None, :], today.year)
    age = begin_year - p.birth_year[:, None]
    ok &= age >= MIN_WORKING_AGE
    ok &= ~((p.intea_end[:, None] > begin) & (kind != PRAKTIKUM))
    ok &= ~((age < ADULT_AGE) & (kind == BESCHAEFTIGUNG))

    # the way: the main place, then each further place as ``work_site`` prefers it
    plat, plon = p.lat[:, None], p.lon[:, None]

    def exact_km(lat: Floats, lon: Floats) -> Any:
        def one(index: tuple[int, int]) -> float:
            i, j = index
            return round(distance_km(float(p.lat[i]), float(p.lon[i]), lat[j], lon[j]), 1)

        return one

    olat, olon = o.lat[rows], o.lon[rows]
    km = _round1(_haversine(plat, plon, olat[None, :], olon[None, :]), exact_km(olat, olon))
    limit = _reach(p, o.rail[rows][None, :])
    if o.extra:
        position = {int(r): j for j, r in enumerate(rows.tolist()) if int(r) in o.extra}
        depth = max((len(o.extra[r]) for r in position), default=0)
        for n in range(depth):
            cols = [(j, o.extra[r][n]) for r, j in position.items() if len(o.extra[r]) > n]
            if not cols:
                continue
            at = np.array([j for j, _ in cols], dtype=np.int64)
            slat = np.array([s[0] for _, s in cols], dtype=np.float64)
            slon = np.array([s[1] for _, s in cols], dtype=np.float64)
            srail = np.array([s[2] for _, s in cols], dtype=np.bool_)
            site_km = _round1(
                _haversine(plat, plon, slat[None, :], slon[None, :]), exact_km(slat, slon)
            )
            site_limit = _reach(p, srail[None, :])
            held_km, held_limit = km[:, at], limit[:, at]
            out, held_out = site_km > site_limit, held_km > held_limit
            better = (~out & held_out) | ((out == held_out) & (site_km < held_km))
            km[:, at] = np.where(better, site_km, held_km)
            limit[:, at] = np.where(better, site_limit, held_limit)
    ok &= km <= limit

    # the score: the same additions in the same order as ``score``
    sector_hit = (p.sectors[:, None] & o.sector[rows][None, :]) != 0
    points = np.where(sector_hit, 30.0, 0.0)
    code3, code2 = o.code3[rows][None, :], o.code2[rows][None, :]
    if p.exp3.shape[1]:
        group = np.zeros(ok.shape, dtype=np.bool_)
        area = np.zeros(ok.shape, dtype=np.bool_)
        for k in range(p.exp3.shape[1]):
            group |= (p.exp3[:, k][:, None] == code3) & (code3 >= 0)
            area |= (p.exp2[:, k][:, None] == code2) & (code2 >= 0)
        points = points + np.where(group, 25.0, np.where(area, 12.0, 0.0))
    points = points + DISTANCE_POINTS * np.maximum(0.0, 1 - km / np.maximum(limit, 1.0))
    ready = np.maximum(today_ord, np.where(p.available >= 0, p.available, today_ord))[:, None]
    wait = start - ready
    dated = start != NO_DATE
    bonus = np.where(
        (wait >= 0) & (wait <= 90),
        15.0,
        np.where((wait > 90) & (wait <= 240), 8.0, np.where(wait < 0, 10.0, 0.0)),
    )
    points = points + np.where(dated, bonus, 0.0)
    above = (german > required) & o.asks_level[rows][None, :]
    points = points + np.where(above, 5.0, 0.0)
    penalty = o.skilled[rows][None, :] & p.unskilled[:, None]
    points = points - np.where(penalty, 15.0, 0.0)
    # ``points`` are bit for bit the rules' points, so their rounding edges (common: a
    # way of 12.3 km of 40 gives 6.15 points) are decided exactly, in integers
    score = np.round(points, 1)
    tenths = points * 10
    edge = (np.abs(tenths - np.floor(tenths) - 0.5) < EDGE) & ok
    if edge.any():
        score[edge] = _round1_exactly(points[edge])
    return Grid(eligible=ok, km=km, score=score)


# --- choosing -------------------------------------------------------------------------


def best_people(
    opening: Opening, people: Iterable[Candidate], today: date, *, limit: int
) -> list[Candidate]:
    """:func:`matching.best_people_by_rules` in arrays: the same people, in the same
    order (score, then distance, then person id)."""
    if opening.status is not OpeningStatus.OPEN or opening.seats_free <= 0:
        return []
    table = people.features() if isinstance(people, Crowd) else PeopleTable.of(list(people))
    if not len(table.people):
        return []
    found = grid(table, OpeningTable.of([opening]), today)
    chosen = np.nonzero(found.eligible[:, 0])[0]
    if not len(chosen):
        return []
    keys = (table.order[chosen], found.km[chosen, 0], -found.score[chosen, 0])
    best = chosen[np.lexsort(keys)[:limit]]
    chosen_people: list[Candidate] = table.people[best].tolist()
    return chosen_people


@dataclass(frozen=True)
class Pick:
    opening_id: uuid.UUID
    title: str
    score: float
    km: float


def best_openings(
    person: Candidate,
    table: OpeningTable,
    today: date,
    *,
    limit: int,
    told: Mapping[str, bool] | None = None,
) -> list[Pick]:
    """The openings of the person's district that :func:`matching.rank` would keep,
    best first (score, way, title), with what it would say of them. ``told`` as
    ``rank`` takes it."""
    if not permitted_types(person) or table.size == 0:
        return []
    district = table.districts.get(person.district_id)
    if district is None:
        return []
    rows = np.nonzero(table.alive[: table.size] & (table.district[: table.size] == district))[0]
    if not len(rows):
        return []
    found = grid(PeopleTable.of([person]), table, today, rows)
    ok = found.eligible[0]
    told = told or {}
    if told:
        where = {table.ids[r]: j for j, r in enumerate(rows.tolist())}
        german = person.german_rank
        for key, forecast_only in told.items():
            j = where.get(uuid.UUID(key))
            if j is None:
                continue
            # told: out, unless told on a forecast level that is now reached
            if not forecast_only or german < table.required[rows[j]]:
                ok[j] = False
    kept = np.nonzero(ok)[0]
    if not len(kept):
        return []
    score, km = found.score[0, kept], found.km[0, kept]
    order = np.lexsort((km, -score))
    # the first ``limit`` and whatever ties with the last of them (titles decide)
    if len(order) > limit:
        last = order[limit - 1]
        tie = (score[order] == score[last]) & (km[order] == km[last])
        tie[:limit] = True
        order = order[tie]
    picks = [
        Pick(
            opening_id=_id(table.ids[int(rows[kept[i]])]),
            title=table.titles[int(rows[kept[i]])],
            score=float(score[i]),
            km=float(km[i]),
        )
        for i in order.tolist()
    ]
    picks.sort(key=lambda pick: (-pick.score, pick.km, pick.title))
    return picks[:limit]


def _id(value: uuid.UUID | None) -> uuid.UUID:
    assert value is not None
    return value


__all__ = [
    "Crowd",
    "OpeningTable",
    "PeopleTable",
    "Pick",
    "best_openings",
    "best_people",
    "grid",
]
