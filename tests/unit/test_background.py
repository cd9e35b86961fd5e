"""The background loop stops even when its work swallows the cancellation."""

from __future__ import annotations

import asyncio

from lotse_shared.background import Periodic


async def test_stop_returns_when_work_turns_cancellation_into_an_error() -> None:
    started = asyncio.Event()
    rounds = 0

    async def work() -> bool:
        # what a driver does when cancelled mid-request: raise its own error instead
        nonlocal rounds
        rounds += 1
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ConnectionError("connection closed") from None
        return False

    loop = Periodic("test", every_s=0.01, work=work)
    await loop.start()
    loop.kick()
    await asyncio.wait_for(started.wait(), timeout=2)
    await asyncio.wait_for(loop.stop(), timeout=2)
    assert rounds == 1


async def test_kick_runs_work_at_once_and_true_runs_it_again() -> None:
    calls: list[int] = []
    done = asyncio.Event()

    async def work() -> bool:
        calls.append(len(calls))
        if len(calls) == 3:
            done.set()
        return len(calls) < 3

    loop = Periodic("test", every_s=60, work=work)
    await loop.start()
    loop.kick()
    await asyncio.wait_for(done.wait(), timeout=2)
    await loop.stop()
    assert calls == [0, 1, 2]
