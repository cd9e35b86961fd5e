"""Where a service's "now" comes from: the system clock, or a simulated one.

A benchmark that plays a district's week in minutes (``make bench-alerts``) cannot
wait for 16:00 to see a digest go out. ``LOTSE_CLOCK_FILE`` names a file holding one
ISO 8601 timestamp; a service started with it reads "now" from that file, and the
benchmark moves time by rewriting it. The file is read again only when it changed,
so asking the time stays cheap. Production never sets it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class FileClock:
    """Simulated time: "now" is the timestamp in ``path`` (timezone-aware, UTC if naive)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._now = system_clock()

    def __call__(self) -> datetime:
        stat = os.stat(self.path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            text = self.path.read_text().strip()
            if text:  # a writer replacing the file may leave it empty for a moment
                parsed = datetime.fromisoformat(text)
                self._now = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
                self._stamp = stamp
        return self._now

    @staticmethod
    def write(path: Path, now: datetime) -> None:
        """Move simulated time (atomically: readers never see half a timestamp)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(now.isoformat())
        os.replace(tmp, path)


def clock_from(path: Path | None) -> Clock:
    return FileClock(path) if path is not None else system_clock
