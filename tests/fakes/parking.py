"""The parking lot as the use cases see it: which people's waiting events were asked for."""

from __future__ import annotations

from collections.abc import Iterable


class RecordedReplays:
    def __init__(self) -> None:
        self.asked_for: list[str] = []

    async def replay_for(self, person_ids: Iterable[str]) -> int:
        self.asked_for.extend(person_ids)
        return 0
