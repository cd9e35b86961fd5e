"""A partner's view of what became of the messages it published (docs/partner-events.md).

``GET /partner/messages`` and ``GET /partner/messages/{event_id}`` on every service
that consumes events: a partner (API key or bearer token with role partner) reads the
outcomes recorded for it (see messaging.outcomes); a coordinator or admin reads any
partner's with ``?partner=``. Another partner's event answers 404, as an unknown one
does, so event ids cannot be probed. Caseworkers, mentors and operators are refused
(operators have the dead letters themselves, at /ops/dead-letters).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from lotse_shared.auth import Principal, Role
from lotse_shared.auth.http import Authenticator
from lotse_shared.errors import NotFound
from lotse_shared.messaging.outcomes import MAX_ID_LENGTH, PartnerMessage, PartnerMessages, Status
from lotse_shared.routes import api_router

# A service's links from a message to what it caused (placement: a feed's import).
Links = Callable[[PartnerMessage], dict[str, str]]


def no_links(_: PartnerMessage) -> dict[str, str]:
    return {}


class PartnerMessageOut(BaseModel):
    event_id: str
    routing_key: str
    producer: str
    status: Status = Field(
        description="applied; duplicate (applied before, this copy changed nothing); parked "
        "(waits, e.g. for the person's registration; later applied or dead_lettered); "
        "retrying (failed on Lotse's side, tried again at next_attempt_at); dead_lettered "
        "(will not be applied: see reason and fields); ignored (its person is not in Lotse)."
    )
    reason: str | None = Field(description="Why it is not (yet) applied; null when applied.")
    fields: list[str] = Field(
        description="The message's fields the reason is about, e.g. payload.level_reached."
    )
    attempts: int = Field(description="How often this service tried to apply it.")
    next_attempt_at: datetime | None = Field(
        description="When it is tried next (parked, retrying); null otherwise."
    )
    first_seen_at: datetime
    updated_at: datetime = Field(description="When the status was last set.")
    links: dict[str, str] = Field(
        description="What the message caused here, e.g. {'import': '/imports/<id>'} for an "
        "opening feed (its import id is the event id)."
    )


class PartnerMessagesQuery:
    """The use case behind the routes: whose outcomes a caller may read."""

    def __init__(self, store: PartnerMessages) -> None:
        self.store = store

    @staticmethod
    def producer_for(viewer: Principal, requested: str | None) -> str | None:
        """The partner whose messages ``viewer`` reads: a partner always its own (None:
        nothing to show), staff the one they name (None: every partner's)."""
        if viewer.district_wide:
            return requested
        own = viewer.partner_id
        if own is None or (requested is not None and requested != own):
            return None
        return own

    async def messages(
        self, viewer: Principal, *, partner: str | None, status: Status | None, limit: int
    ) -> list[PartnerMessage]:
        producer = self.producer_for(viewer, partner)
        if producer is None and not viewer.district_wide:
            return []
        return await self.store.newest(producer, status=status, limit=limit)

    async def message(
        self, viewer: Principal, event_id: str, *, partner: str | None
    ) -> PartnerMessage:
        producer = self.producer_for(viewer, partner)
        found = None
        if producer is not None:
            found = await self.store.get(producer, event_id)
        elif viewer.district_wide:  # staff without ?partner=: whoever sent it
            found = next(iter(await self.store.with_event_id(event_id)), None)
        if found is None:
            raise NotFound(f"no message {event_id} of yours")
        return found


def make_partner_messages_router(
    store: PartnerMessages, auth: Authenticator, links: Links = no_links
) -> APIRouter:
    router = api_router(prefix="/partner", tags=["partner feedback"])
    readers = auth.require(Role.PARTNER, Role.COORDINATOR, Role.ADMIN)
    query = PartnerMessagesQuery(store)

    def out(m: PartnerMessage) -> PartnerMessageOut:
        return PartnerMessageOut(
            event_id=m.event_id,
            routing_key=m.routing_key,
            producer=m.producer,
            status=m.status,
            reason=m.reason,
            fields=m.fields,
            attempts=m.attempts,
            next_attempt_at=m.next_attempt_at,
            first_seen_at=m.first_seen_at,
            updated_at=m.updated_at,
            links=links(m),
        )

    partner_param = Query(
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Coordinators and admins: whose messages. A partner reads its own.",
    )

    @router.get(
        "/messages",
        summary="What became of the partner's messages to this service, latest outcome first",
    )
    async def messages(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        status: Status | None = None,
        partner: str | None = partner_param,
        viewer: Principal = readers,
    ) -> list[PartnerMessageOut]:
        found = await query.messages(viewer, partner=partner, status=status, limit=limit)
        return [out(m) for m in found]

    @router.get("/messages/{event_id}", summary="What became of one message, by its event id")
    async def message(
        event_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)],
        partner: str | None = partner_param,
        viewer: Principal = readers,
    ) -> PartnerMessageOut:
        return out(await query.message(viewer, event_id, partner=partner))

    return router
