"""Who may read which alerts, in one place.

Everyone reads their own inbox (the one addressed to the email of their token); an
admin may open another's of their district by naming it. A notification addressed to
someone else answers NotFound, as an unknown one does.
"""

from __future__ import annotations

from lotse_shared.auth import Principal, Role
from lotse_shared.errors import Forbidden

from .domain.model import Notification


def addressed_to(n: Notification, viewer: Principal) -> bool:
    if n.recipient_email.lower() == viewer.identity:
        return True
    return Role.ADMIN in viewer.roles and viewer.in_district(n.district_id)


def of_viewers_district(viewer: Principal, district_id: str) -> bool:
    return viewer.in_district(district_id)


def of_district(viewer: Principal, items: list[Notification]) -> list[Notification]:
    """An admin looking into someone else's inbox sees only their own district's items."""
    return [
        n
        for n in items
        if n.recipient_email.lower() == viewer.identity
        or of_viewers_district(viewer, n.district_id)
    ]


def whose_inbox(viewer: Principal, recipient: str | None) -> str:
    """The caller's own inbox; naming someone else's is for admins only."""
    if recipient is None or recipient.lower() == viewer.identity:
        return viewer.identity
    if Role.ADMIN in viewer.roles:
        return recipient.lower()
    raise Forbidden("recipient: you may only open your own inbox")
