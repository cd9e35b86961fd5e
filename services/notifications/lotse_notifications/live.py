"""Tells open browser inboxes that something changed.

A change in this process wakes every waiting stream at once; each stream also
looks at the database every ``poll_s``, so changes made by another replica
reach it too, only a little later.
"""

from __future__ import annotations

import asyncio
import contextlib


class InboxChanges:
    def __init__(self, poll_s: float = 2.0) -> None:
        self.poll_s = poll_s
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self) -> None:
        """Until the next change here, or ``poll_s``, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=self.poll_s)
