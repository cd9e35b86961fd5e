"""Who may see and keep which person in intake, in one place.

Caseworkers and mentors see the people they are contacts of; coordinators and admins
their whole district; another's person answers NotFound, as an unknown one does, so
ids cannot be probed. Only staff write, and only people of their own district; a
caseworker only people they stay responsible for.
"""

from __future__ import annotations

from lotse_shared.auth import STAFF, Principal
from lotse_shared.errors import Forbidden

from .domain.model import Person, PersonDetails


def check_may_keep(viewer: Principal | None, details: PersonDetails) -> None:
    """A caller writes people of their own district only, and a caseworker only people
    they are responsible for (else they would lose sight of them at once). A mentor
    reads and never writes (the routes refuse them already; this holds without them).
    ``viewer`` None: the service itself (no caller to check)."""
    if viewer is None:
        return
    if not viewer.has_any(STAFF):
        raise Forbidden("a mentor reads a person's record and does not change it")
    if details.district_id != viewer.district_id:
        raise Forbidden(f"district_id: you may only record people of district {viewer.district_id}")
    if not viewer.district_wide and viewer.identity not in {
        c.email.lower() for c in details.contacts
    }:
        raise Forbidden("contacts: a caseworker must be among the person's contacts")


def may_see(viewer: Principal | None, person: Person) -> bool:
    if viewer is None:
        return True
    return viewer.may_access_person(person.district_id, [c.email for c in person.contacts])


def list_scope(
    viewer: Principal, district_id: str | None, contact_email: str | None
) -> tuple[str, str | None] | None:
    """The district and contact a list of people is narrowed to for ``viewer``, or None
    when the viewer may see none of what was asked for."""
    if viewer.district_id is None or district_id not in (None, viewer.district_id):
        return None
    if not viewer.district_wide:
        if not viewer.sees_own_people:  # caseworkers and mentors: their own people
            return None
        if contact_email is not None and contact_email.lower() != viewer.identity:
            return None
        contact_email = viewer.identity
    return viewer.district_id, contact_email
