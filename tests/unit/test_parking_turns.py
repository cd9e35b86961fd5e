"""Who may touch the parking lot at once, in one process: replays side by side (one
person's one at a time), the sweep alone (so it never dead-letters an event that a
replay is applying)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from lotse_shared.messaging.parking import ParkingLot


def lot() -> ParkingLot:
    return ParkingLot(cast(Any, None), cast(Any, None), max_age_s=60)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_replays_run_side_by_side_and_the_sweep_waits_for_them() -> None:
    parking, seen = lot(), []
    holds = {p: asyncio.Event() for p in "ab"}

    async def replay(person: str, hold: asyncio.Event | None = None) -> None:
        async with parking._replaying([person]):
            seen.append(f"start {person}")
            if hold is not None:
                await hold.wait()
            seen.append(f"end {person}")

    async def sweep() -> None:
        async with parking._exclusive():
            seen.append("sweep")

    running = [asyncio.create_task(replay(p, holds[p])) for p in "ab"]
    await settle()
    assert seen == ["start a", "start b"]  # two people's replays at once
    running.append(asyncio.create_task(sweep()))
    await settle()
    running.append(asyncio.create_task(replay("c")))  # comes after the waiting sweep
    await settle()
    assert seen == ["start a", "start b"]
    holds["a"].set()
    holds["b"].set()
    await asyncio.gather(*running)
    assert seen[2:] == ["end a", "end b", "sweep", "start c", "end c"]


async def test_one_persons_replays_take_turns() -> None:
    parking, seen = lot(), []
    hold = asyncio.Event()

    async def replay(n: int) -> None:
        async with parking._replaying(["a"]):
            seen.append(f"start {n}")
            if n == 1:
                await hold.wait()
            seen.append(f"end {n}")

    running = [asyncio.create_task(replay(n)) for n in (1, 2)]
    await settle()
    assert seen == ["start 1"]
    hold.set()
    await asyncio.gather(*running)
    assert seen == ["start 1", "end 1", "start 2", "end 2"]
