"""Placement: how suggestion search and re-matching grow with the data.

Runs placement's own repository and search (no broker: this measures the matching,
not the messaging) against a MongoDB-wire server started for the run. Each figure is
taken for the matching in arrays (what the service runs) and, unless
``BENCH_PLACEMENT_OLD=0``, for the rule-by-rule path it replaced, in the same run.

- ``suggest_ms``: median milliseconds to compute one person's suggestions against
  1,000, 10,000 and 100,000 open openings spread over North Hesse; 60 people per size.
  In arrays: the in-memory feature table of the searchable openings (kept current by
  the collection's change stream), scored with numpy, the kept openings read and
  rated by the rules; ``table_fill_ms`` is the first search after the openings were
  stored, which reads them into the table (once per process, and after a large
  change). Rule by rule (``suggest_rules_ms``): the ring search over the grid-cell
  index. ``suggest_same_as_rules``: both gave every person the same suggestions.
- ``growth_ratio``: suggest_ms at 100k / at 1k (a scan would be about 100).
- ``rematch_s``: seconds to find, for each of 5,000 newly imported openings, the
  people it suits best among 4,000 (as the service does: per import batch of 500
  openings one reach-key index lookup, then each opening's own keys, the hard rules
  and the score in arrays; ``LOTSE_PEOPLE_PER_OPENING`` people per opening);
  ``rematch_rules_s``: the same lookup, rule by rule;
- ``naive_rematch_s``: rule by rule over all 5,000 x 4,000 pairs (people loaded once,
  in memory: the naive side gets no database cost at all); ``rematch_speedup``: naive
  / rematch;
- ``rematch_same_people_as_naive``: both chose the same people for every opening,
  or the index missed someone (``rematch_rules_same_people_as_naive`` for the old).

Re-match figures are compute only: suggestion sets are not written. Writes
bench/results/placement.json and prints it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lotse_devstack.ports import free_port
from lotse_devstack.secantus import mongo_url, start_secantus, stop_secantus
from lotse_placement.domain.matching import best_people_by_rules
from lotse_placement.domain.model import Candidate, Opening
from lotse_placement.domain.vectorised import best_people
from lotse_placement.handlers import PlacementHandlers
from lotse_placement.repository import PlacementRepository, _candidate_doc, _opening_doc
from lotse_placement.settings import PlacementSettings
from lotse_shared.contracts.common import (
    CefrLevel,
    EducationLevel,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.persistence.mongo import make_client
from lotse_shared.places import all_places

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,10000,100000").split(",")]
PEOPLE_PER_SIZE = int(os.environ.get("BENCH_SEARCH_PEOPLE", "60"))
REMATCH_OPENINGS = int(os.environ.get("BENCH_REMATCH_OPENINGS", "5000"))
REMATCH_PEOPLE = int(os.environ.get("BENCH_REMATCH_PEOPLE", "4000"))
OLD = os.environ.get("BENCH_PLACEMENT_OLD", "1") != "0"  # also the rule-by-rule path
IMPORT_BATCH = 500  # openings matched together, as an import batch is
RESULTS = Path(__file__).parent / "results" / "placement.json"
TODAY = date(2026, 11, 24)
LEVELS = [None, CefrLevel.A1, CefrLevel.A2, CefrLevel.B1, CefrLevel.B2]
# KldB codes by sector, so that experience and occupation families can match
OCCUPATIONS = {
    Sector.LOGISTIK: ["51312", "51311", "51322", "52122"],
    Sector.HANDWERK: ["22342", "24412", "34212", "32122"],
    Sector.GASTRONOMIE: ["29301", "63302", "29302"],
    Sector.BAU: ["32112", "32202", "33102"],
    Sector.PFLEGE: ["81302", "82101"],
    Sector.REINIGUNG: ["54101"],
    Sector.HANDEL: ["62102", "62112"],
}


def _place(rng: random.Random) -> tuple[str, float, float]:
    place = rng.choice(list(all_places().values()))
    return place.name, place.lat, place.lon


def make_opening(rng: random.Random, n: int, source: str) -> Opening:
    sector = rng.choice(list(OCCUPATIONS))
    name, lat, lon = _place(rng)
    now = datetime.now(UTC)
    return Opening(
        source=source,
        source_ref=f"{source}-{n}",
        opening_type=rng.choice(list(OpeningType)),
        title=f"Stelle {n}",
        employer=f"Betrieb {n % 997}",
        occupation_code=rng.choice(OCCUPATIONS[sector]),
        sector=sector,
        required_german_level=rng.choice(LEVELS),
        municipality=name,
        lat=lat + rng.uniform(-0.06, 0.06),  # employers spread around the town centres
        lon=lon + rng.uniform(-0.09, 0.09),
        start_date=TODAY + timedelta(days=rng.randint(-30, 300)),
        seats=rng.randint(1, 3),
        published_at=now,
        updated_at=now,
    )


def make_person(rng: random.Random) -> Candidate:
    name, lat, lon = _place(rng)
    car = rng.random() < 0.3
    sectors = rng.sample(list(OCCUPATIONS), k=rng.randint(1, 2))
    return Candidate(
        person_id=uuid.uuid4(),
        district_id="kassel",
        revision=1,
        birth_year=rng.randint(1970, 2009),
        municipality=name,
        lat=lat,
        lon=lon,
        german_level=rng.choice(LEVELS),
        residence_status=rng.choice(
            [ResidenceStatus.AUFENTHALTSERLAUBNIS] * 4 + [ResidenceStatus.DULDUNG]
        ),
        work_permission=rng.choice([WorkPermission.ALLOWED] * 4 + [WorkPermission.APPROVED]),
        driving_licence=car,
        max_commute_km=rng.choice([40, 60]) if car else rng.choice([15, 25, 35]),
        sectors_of_interest=sectors,
        experience_occupations=[rng.choice(OCCUPATIONS[sectors[0]])] if rng.random() < 0.5 else [],
        education_level=rng.choice(list(EducationLevel)),
        matching_consent=True,
    )


async def insert(collection: Any, docs: list[dict[str, Any]]) -> None:
    for i in range(0, len(docs), 2000):
        await collection.insert_many(docs[i : i + 2000], ordered=False)


async def suggest_ms(repo: PlacementRepository, handlers: PlacementHandlers) -> dict[str, Any]:
    rng = random.Random(1)
    people = [make_person(rng) for _ in range(PEOPLE_PER_SIZE)]
    out: dict[str, Any] = {}
    held = 0
    for size in sorted(SIZES):
        started = time.monotonic()
        docs = [_opening_doc(make_opening(rng, n, "size")) for n in range(held, size)]
        await insert(repo.openings, docs)
        held = size
        print(f"  {size:>7} openings stored ({time.monotonic() - started:.0f} s)", flush=True)
        t0 = time.perf_counter()
        await handlers.search(make_person(rng), {})  # reads what was stored into the table
        fill_ms = (time.perf_counter() - t0) * 1000
        figures = {"table_fill_ms": round(fill_ms, 1)}
        chosen: dict[bool, list[list[tuple[Any, ...]]]] = {}
        for arrays in (True, False) if OLD else (True,):
            handlers.match_in_arrays = arrays
            times, found, picks = [], 0, []
            for person in people:
                t0 = time.perf_counter()
                best = await handlers.search(person, {})
                times.append((time.perf_counter() - t0) * 1000)
                found += len(best)
                picks.append([(s.opening.opening_id, s.score, s.reasons) for s in best])
            chosen[arrays] = picks
            name = "" if arrays else "rules_"
            figures |= {
                f"{name}median_ms": round(statistics.median(times), 1),
                f"{name}p90_ms": round(statistics.quantiles(times, n=10)[-1], 1),
                f"{name}suggestions_per_person": round(found / len(people), 2),
            }
        handlers.match_in_arrays = True
        if OLD:
            figures["same_as_rules"] = chosen[True] == chosen[False]
        out[str(size)] = figures
        print(f"  {size:>7}: {figures}", flush=True)
    return out


async def rematch(repo: PlacementRepository) -> dict[str, Any]:
    rng = random.Random(2)
    await repo.people.delete_many({})
    people = [make_person(rng) for _ in range(REMATCH_PEOPLE)]
    await insert(repo.people, [_candidate_doc(p) for p in people])
    openings = [make_opening(rng, n, "import") for n in range(REMATCH_OPENINGS)]

    limit = PlacementSettings().people_per_opening
    chosen: dict[str, dict[uuid.UUID, list[uuid.UUID]]] = {}
    seconds: dict[str, float] = {}
    looked_at = 0
    for way, choose in (("arrays", best_people), ("rules", best_people_by_rules)):
        if way == "rules" and not OLD:
            continue
        started = time.perf_counter()
        chosen[way], looked_at = {}, 0
        for i in range(0, len(openings), IMPORT_BATCH):
            batch = openings[i : i + IMPORT_BATCH]
            found = await repo.candidates_for_each(batch)
            for opening in batch:
                candidates = found[opening.opening_id]
                looked_at += len(candidates)
                best = choose(opening, candidates, TODAY, limit=limit)
                chosen[way][opening.opening_id] = [p.person_id for p in best]
        seconds[way] = time.perf_counter() - started
        print(f"  indexed re-match, {way}: {seconds[way]:.1f} s", flush=True)

    started = time.perf_counter()
    everyone = [p async for p in (await _all_people(repo))]
    naive = {
        o.opening_id: [p.person_id for p in best_people_by_rules(o, everyone, TODAY, limit=limit)]
        for o in openings
    }
    naive_s = time.perf_counter() - started
    print(f"  naive all pairs, rule by rule: {naive_s:.1f} s", flush=True)
    result: dict[str, Any] = {
        "rematch_s": round(seconds["arrays"], 2),
        "naive_rematch_s": round(naive_s, 2),
        "rematch_speedup": round(naive_s / seconds["arrays"], 1),
        "rematch_same_people_as_naive": chosen["arrays"] == naive,
    }
    if OLD:
        result |= {
            "rematch_rules_s": round(seconds["rules"], 2),
            "rematch_rules_speedup": round(naive_s / seconds["rules"], 2),
            "rematch_rules_same_people_as_naive": chosen["rules"] == naive,
        }
    return result | {
        "rematch_people_told_per_opening": round(
            sum(len(v) for v in chosen["arrays"].values()) / len(openings), 1
        ),
        "rematch_people_looked_at_per_opening": round(looked_at / len(openings), 1),
    }


async def _all_people(repo: PlacementRepository) -> Any:
    from lotse_placement.repository import _candidate

    async def gen() -> Any:
        async for doc in repo.people.find({}):
            yield _candidate(doc)

    return gen()


async def run(url: str) -> dict[str, Any]:
    client = make_client(url)
    db = client[f"bench_placement_{uuid.uuid4().hex[:6]}"]
    repo = PlacementRepository(db)
    await repo.ensure_indexes()
    handlers = PlacementHandlers(uow=None, repo=repo, parking=None)  # type: ignore[arg-type]
    handlers.today = lambda: TODAY
    try:
        print("suggestions for one person:", flush=True)
        sizes = await suggest_ms(repo, handlers)
        print("re-matching new openings:", flush=True)
        again = await rematch(repo)
    finally:  # the database server and its files go when the run ends
        await client.close()
    small, large = sizes[str(min(SIZES))], sizes[str(max(SIZES))]
    return {
        "suggest_ms": {k: v["median_ms"] for k, v in sizes.items()},
        "suggest_p90_ms": {k: v["p90_ms"] for k, v in sizes.items()},
        **(
            {
                "suggest_rules_ms": {k: v["rules_median_ms"] for k, v in sizes.items()},
                "suggest_rules_p90_ms": {k: v["rules_p90_ms"] for k, v in sizes.items()},
                "suggest_same_as_rules": all(v["same_as_rules"] for v in sizes.values()),
            }
            if OLD
            else {}
        ),
        "suggest_detail": sizes,
        "growth_ratio": round(large["median_ms"] / max(small["median_ms"], 0.001), 2),
        **again,
        "database": "SecantusDB (Python MongoDB-wire server), one process",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lotse-bench-placement-"))
    port = free_port()
    proc = start_secantus(port, workdir / "db", workdir / "secantusdb.log")
    try:
        result = asyncio.run(run(mongo_url(port)))
    finally:
        stop_secantus(proc)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
