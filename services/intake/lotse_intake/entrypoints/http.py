"""intake's HTTP routes: translate requests into handler calls, nothing more."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response, status
from pydantic import BaseModel

from lotse_intake.domain.model import Erasure, ErasureRequest, Person, PersonDetails
from lotse_intake.handlers import IntakeHandlers
from lotse_shared.auth import READERS, STAFF, Principal, Role
from lotse_shared.auth.audit import concerning, redact
from lotse_shared.auth.http import Authenticator
from lotse_shared.erasure import erased_marker
from lotse_shared.http import MAX_OFFSET
from lotse_shared.routes import api_router


class PersonOut(Person):
    """A person as stored, with revision and timestamps."""


class ErasureOut(Erasure):
    """intake's erasure record. The other services apply it when they receive
    ``intake.person.erased.v1`` (moments later)."""


class PersonList(BaseModel):
    items: list[PersonOut]
    limit: int
    offset: int


def make_router(handlers: IntakeHandlers, auth: Authenticator) -> APIRouter:
    """Caseworkers see the people they are responsible for, mentors (read only) the
    people they accompany, coordinators and admins everyone of their district; anyone
    else's person answers 404. Only staff write."""
    router = api_router(prefix="/people", tags=["people"])
    staff = auth.require(*STAFF)
    readers = auth.require(*READERS)
    admin = auth.require(Role.ADMIN)

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        summary="Register a person",
        description="With `Idempotency-Key` (any string the client makes up per form, up to "
        "100 characters) a repeated request registers no second person: it answers 200 "
        "with the one the first request registered.",
        responses={200: {"model": PersonOut, "description": "Registered by an earlier request"}},
    )
    async def register(
        details: PersonDetails,
        request: Request,
        response: Response,
        viewer: Principal = staff,
        idempotency_key: Annotated[
            str | None, Header(min_length=1, max_length=100, description="Names this request")
        ] = None,
    ) -> PersonOut:
        if idempotency_key is None:
            person = await handlers.register(details, viewer)
        else:
            person, new = await handlers.register_once(details, viewer, idempotency_key)
            if not new:
                response.status_code = status.HTTP_200_OK
        concerning(request, person_id=person.person_id)
        return PersonOut.model_validate(person.model_dump())

    @router.get("/{person_id}", summary="Read one person")
    async def read(person_id: uuid.UUID, viewer: Principal = readers) -> PersonOut:
        return PersonOut.model_validate((await handlers.get(person_id, viewer)).model_dump())

    @router.get("", summary="List the people the caller may see, filtered")
    async def list_people(
        viewer: Principal = readers,
        municipality: str | None = None,
        contact_email: Annotated[str | None, Query(description="A responsible contact")] = None,
        district_id: str | None = None,
        q: Annotated[
            str | None,
            Query(
                max_length=100,
                description="Part of the given or family name, any case (a plain substring)",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> PersonList:
        people = await handlers.list_visible(
            viewer,
            district_id=district_id,
            municipality=municipality,
            contact_email=contact_email,
            name_contains=q,
            limit=limit,
            offset=offset,
        )
        return PersonList(
            items=[PersonOut.model_validate(p.model_dump()) for p in people],
            limit=limit,
            offset=offset,
        )

    @router.put("/{person_id}", summary="Replace a person's details")
    async def replace(
        person_id: uuid.UUID,
        details: PersonDetails,
        viewer: Principal = staff,
        if_match: Annotated[
            int | None, Header(description="Expected revision; 409 if it moved on")
        ] = None,
    ) -> PersonOut:
        person = await handlers.replace(person_id, details, if_revision=if_match, viewer=viewer)
        return PersonOut.model_validate(person.model_dump())

    @router.patch("/{person_id}", summary="Change some of a person's details")
    async def patch(
        person_id: uuid.UUID,
        changes: Annotated[
            dict[str, Any],
            Body(examples=[{"german_level": "B1", "municipality": "Vellmar"}]),
        ],
        viewer: Principal = staff,
    ) -> PersonOut:
        person = await handlers.patch(person_id, changes, viewer)
        return PersonOut.model_validate(person.model_dump())

    @router.post(
        "/{person_id}/erasure",
        status_code=status.HTTP_202_ACCEPTED,
        summary="Erase a person on request (admins; their district only)",
        description="Deletes the person and keeps only an erasure record (who, when, why); "
        "every service forgets the person when it receives intake.person.erased.v1. "
        "202 with the new record; 200 with the existing one if the person was erased "
        "before (the event is then published again, so every service re-applies it); "
        "404 for an unknown person or another district's.",
        responses={200: {"model": ErasureOut, "description": "Erased before"}},
    )
    async def erase(
        person_id: uuid.UUID,
        body: ErasureRequest,
        request: Request,
        response: Response,
        viewer: Principal = admin,
    ) -> ErasureOut:
        erasure, new = await handlers.erase(person_id, body.reason, viewer)
        # the audit entry of this call names the erasure, not the person
        redact(request, str(person_id), erased_marker(erasure.erasure_id))
        concerning(request, erasure_id=erasure.erasure_id)
        if not new:
            response.status_code = status.HTTP_200_OK
        return ErasureOut.model_validate(erasure.model_dump())

    return router
