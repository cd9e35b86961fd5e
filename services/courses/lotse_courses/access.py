"""Who may see which courses and enrolments, in one place.

Courses are the district's: anyone of the district reads them. A person's enrolments
follow the person: a caseworker or mentor sees their own people's, coordinators and
admins their district's (from the read model fed by intake's events). Anyone else's
answers NotFound, as an unknown one does, so ids cannot be probed.
"""

from __future__ import annotations

import uuid

from lotse_shared.auth import Principal
from lotse_shared.errors import Forbidden

from .domain.model import Course
from .repository import Courses


def may_see_course(viewer: Principal | None, course: Course) -> bool:
    return viewer is None or viewer.in_district(course.district_id)


def check_may_add_course(viewer: Principal, district_id: str) -> None:
    if not viewer.in_district(district_id):
        raise Forbidden(f"district_id: you may only add courses of {viewer.district_id}")


class CoursesAccess:
    def __init__(self, repo: Courses) -> None:
        self.repo = repo

    async def may_see_person(self, person_id: uuid.UUID, viewer: Principal | None) -> bool:
        """``viewer`` None: the service itself (no caller to check)."""
        if viewer is None:
            return True
        scope = await self.repo.person_scope(person_id)
        return scope is not None and viewer.may_access_person(*scope)

    async def visible_people(
        self, person_ids: list[uuid.UUID], viewer: Principal
    ) -> list[uuid.UUID]:
        """Those of ``person_ids`` the viewer may see, in one query whatever their number."""
        scopes = await self.repo.scopes_of(list(dict.fromkeys(person_ids)))
        return [pid for pid, scope in scopes.items() if viewer.may_access_person(*scope)]
