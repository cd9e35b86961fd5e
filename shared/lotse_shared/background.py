"""A background loop: runs its work every few seconds, or at once when kicked.

Used by the outbox relay, the parking sweep, e-mail delivery and placement's
matching sweep. Work that returns True has more to do and runs again at once.
Stopping cancels the loop; every user of it keeps its state in MongoDB, so an
interrupted round is simply done again later.

Stopping does not rely on the cancellation alone: a driver may turn the
CancelledError it receives mid-request into an ordinary error (which the loop
logs and survives), so the loop also checks a stop flag before every round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("lotse.background")


class Periodic:
    def __init__(self, name: str, every_s: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.every_s = every_s
        self.work = work
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def kick(self, *_: object) -> None:
        """Run the work now instead of at the next tick."""
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.every_s)
            self._wake.clear()
            try:
                while not self._stopping and await self.work() is True:
                    pass
            except Exception:
                if self._stopping:
                    return
                log.exception("%s failed; trying again in %.1fs", self.name, self.every_s)
