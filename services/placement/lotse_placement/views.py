"""What placement's read-only pages show, read for the routes (which never reach into
the repository themselves). Who may see it is decided before, in access.py."""

from __future__ import annotations

import uuid
from typing import Any

from .domain.model import Opening, OpeningVersion, earlier_versions
from .domain.pipeline import Case
from .repository import PlacementRepository


class PlacementViews:
    def __init__(self, repo: PlacementRepository) -> None:
        self.repo = repo

    async def opening_history(self, opening: Opening) -> list[OpeningVersion]:
        """The opening's earlier versions, oldest first, each with what differed."""
        return earlier_versions(opening, await self.repo.opening_history(opening.opening_id))

    async def suggestion_sets(
        self, person_id: uuid.UUID
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The person's suggestion sets, newest first, and the decisions taken so far
        (opening id -> accepted | dismissed)."""
        return await self.repo.sets_of(person_id), await self.repo.decisions_of(person_id)

    async def cases_of(self, person_id: uuid.UUID) -> list[Case]:
        return await self.repo.cases_of(person_id)
