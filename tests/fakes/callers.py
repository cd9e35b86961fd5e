"""Callers as the use cases receive them, after sign-in."""

from __future__ import annotations

from lotse_devstack.samples import CASEWORKER
from lotse_shared.auth import Principal, Role


def who(
    role: Role, email: str = CASEWORKER, district: str = "kassel", partner_id: str | None = None
) -> Principal:
    return Principal(
        user_id=email,
        roles=frozenset({role}),
        district_id=district,
        email=email,
        partner_id=partner_id,
    )
