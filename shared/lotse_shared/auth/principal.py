"""Who is calling, and what that lets them see. Pure: no I/O, no web framework.

The rules:
- caseworker: the people they are responsible for (they are among the person's
  contacts, by email), read and write;
- mentor (a Berufspate or an Integrationslotse): the people they accompany
  (among the person's contacts, by email, like a caseworker), read only, and their own
  inbox;
- coordinator: every person of their district;
- admin: every person of their district, and the audit log;
- partner: publishes its own events, reads no personal data;
- operator: health, dead letters, replay; no personal data.

A person of another district, or one a caseworker or mentor does not accompany, is
answered as if it did not exist (404), so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    CASEWORKER = "caseworker"
    COORDINATOR = "coordinator"
    MENTOR = "mentor"
    PARTNER = "partner"
    OPERATOR = "operator"
    ADMIN = "admin"


# Roles that may read and change personal data at all (each within its scope).
STAFF = (Role.CASEWORKER, Role.COORDINATOR, Role.ADMIN)
# Roles that may read personal data (each within its scope): staff, and mentors, who
# follow the people they accompany but change nothing. Writes stay with STAFF.
READERS = (*STAFF, Role.MENTOR)
# Roles that see every person of their district, not only their own cases.
DISTRICT_WIDE = frozenset({Role.COORDINATOR, Role.ADMIN})
# Roles that see only the people whose responsible contacts name them (by email).
ACCOMPANYING = frozenset({Role.CASEWORKER, Role.MENTOR})


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, as the verified token describes them."""

    user_id: str
    roles: frozenset[Role]
    district_id: str | None
    email: str | None = None
    partner_id: str | None = None
    claims: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def has_any(self, roles: Iterable[Role | str]) -> bool:
        return any(Role(r) in self.roles for r in roles)

    @property
    def role(self) -> Role:
        """The role that decides the scope, for logs and the audit trail."""
        for role in (
            Role.ADMIN,
            Role.COORDINATOR,
            Role.CASEWORKER,
            Role.MENTOR,
            Role.OPERATOR,
            Role.PARTNER,
        ):
            if role in self.roles:
                return role
        raise ValueError(f"{self.user_id} holds no Lotse role")

    @property
    def district_wide(self) -> bool:
        return bool(self.roles & DISTRICT_WIDE)

    @property
    def sees_own_people(self) -> bool:
        """Sees the people whose contacts name them (a caseworker, a mentor); combined
        with a district-wide role, the district-wide one decides."""
        return bool(self.roles & ACCOMPANYING)

    @property
    def identity(self) -> str:
        """What a person's contacts name a caseworker or mentor by: their email address."""
        return (self.email or self.user_id).lower()

    def may_access_person(self, district_id: str, contact_emails: Iterable[str]) -> bool:
        """May this caller see the personal data of a person of ``district_id`` whose
        responsible contacts are ``contact_emails``?"""
        if self.district_id is None or district_id != self.district_id:
            return False
        if self.district_wide:
            return True
        if self.sees_own_people:
            return self.identity in {e.lower() for e in contact_emails}
        return False

    def in_district(self, district_id: str) -> bool:
        """Records that are the district's but nobody's personal data (a course, say)."""
        return self.district_id is not None and district_id == self.district_id
