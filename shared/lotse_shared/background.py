"""A task that runs a coroutine every few seconds until stopped."""

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
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.work()
            except Exception:
                log.exception("%s failed; trying again in %.0fs", self.name, self.every_s)
