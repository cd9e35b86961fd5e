"""Who may see what in placement, in one place.

- Staff (caseworker, coordinator, admin) and mentors see the people they may see: a
  caseworker or mentor their own, coordinators and admins their district. Anyone
  else's person, case or opening answers NotFound, as an unknown one does, so ids
  cannot be probed.
- Partners see and change only their own openings and imports, of their district,
  and read no personal data.

The routes ask here before they read or change anything.
"""

from __future__ import annotations

import uuid

from lotse_shared.auth import STAFF, Principal, Role
from lotse_shared.errors import NotFound, RuleViolation

from .domain.model import Candidate, Opening
from .domain.pipeline import Case
from .repository import PlacementRepository


def is_partner(viewer: Principal) -> bool:
    return not viewer.has_any(STAFF) and Role.PARTNER in viewer.roles


def may_see_person(viewer: Principal, person: Candidate) -> bool:
    return viewer.may_access_person(person.district_id, person.contact_emails)


def may_see_opening(viewer: Principal, opening: Opening) -> bool:
    if opening.district_id != viewer.district_id:
        return False
    return not is_partner(viewer) or opening.source == viewer.partner_id


def source_for(viewer: Principal, requested: str | None, default: str | None = "caseworker") -> str:
    """Who an opening is from: a partner always publishes as itself; staff name the
    source (the partner whose file they import) or enter it themselves ("caseworker")."""
    if is_partner(viewer):
        if not viewer.partner_id:
            raise RuleViolation("token.partner_id", "a partner token must name its partner")
        if requested not in (None, viewer.partner_id):
            raise RuleViolation("source", f"you publish as {viewer.partner_id} only")
        return viewer.partner_id
    chosen = requested or default
    if chosen:
        return chosen
    raise RuleViolation("source", "name the partner whose list this is, e.g. ihk-kassel")


class PlacementAccess:
    def __init__(self, repo: PlacementRepository) -> None:
        self.repo = repo

    async def person(self, viewer: Principal, person_id: uuid.UUID) -> Candidate:
        person = await self.repo.candidate(person_id)
        if person is None or not may_see_person(viewer, person):
            raise NotFound(f"person {person_id} not found")
        return person

    async def case(self, viewer: Principal, case_id: uuid.UUID) -> Case:
        case = await self.repo.case(case_id)
        if case is not None:
            person = await self.repo.candidate(case.person_id)
            if person is not None and may_see_person(viewer, person):
                return case
        raise NotFound(f"case {case_id} not found")

    async def opening(self, viewer: Principal, opening_id: uuid.UUID) -> Opening:
        opening = await self.repo.get_opening(opening_id)
        if opening is None or not may_see_opening(viewer, opening):
            raise NotFound(f"opening {opening_id} not found")
        return opening

    async def import_record(
        self, viewer: Principal, import_id: uuid.UUID, *, missing_ok: bool = False
    ) -> None:
        """A partner sees its own imports only; staff those sent from their district."""
        known = await self.repo.get_import(import_id)
        if known is None:
            if missing_ok:
                return  # the first batch of a new import
            raise NotFound(f"no import {import_id}")
        if is_partner(viewer):
            visible = known["source"] == viewer.partner_id
        else:
            visible = known.get("district_id") == viewer.district_id
        if not visible:
            raise NotFound(f"no import {import_id}")
