"""Tells open inbox streams (``GET /notifications/events``) that something changed.

A change in this process wakes every waiting stream at once; each stream also
looks at the database every ``poll_s``, so changes made by another replica
reach it too, only a little later.
"""

from __future__ import annotations

import asyncio
import contextlib


class InboxChanges:
    def __init__(self, poll_s: float = 2.0, stream_s: float = 15.0) -> None:
        self.poll_s = poll_s
        # A stream ends after this long and the browser reconnects (EventSource does so by
        # itself): uvicorn waits for open responses when it stops, at most 20 s.
        self.stream_s = stream_s
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self) -> None:
        """Until the next change here, or ``poll_s``, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=self.poll_s)
