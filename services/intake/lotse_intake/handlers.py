"""intake's use cases. Each writes its change and the event it causes in one transaction."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from lotse_shared.auth import Principal
from lotse_shared.contracts.intake import (
    PersonRegistered,
    PersonUpdated,
)
from lotse_shared.errors import Conflict, NotFound
from lotse_shared.persistence.unit import UnitOfWork

from .access import check_may_keep, list_scope, may_see
from .domain.model import Erasure, Person, PersonDetails
from .mapping import PRODUCER, erased_event, snapshot
from .repository import AlreadyRegistered, People

# Registrations sent with an idempotency key get an id derived from it (and the caller),
# so a repeated request (a double click, a client's retry) finds the first one
REGISTRATION_KEYS = uuid.UUID("6f0d3c1e-3b5f-4d0e-9a8e-2f1c7b9d4a10")
log = logging.getLogger("lotse.intake")


@dataclass
class IntakeHandlers:
    uow: UnitOfWork
    people: People
    # one re-announcement at a time in this process: each deletes and writes the outbox
    # rows about the person, so ten at once lost their write conflicts to each other
    # until one ran out of retries (a 503 for a double click)
    _announcing: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def register(self, details: PersonDetails, viewer: Principal | None = None) -> Person:
        check_may_keep(viewer, details)
        person = Person.registered(details, by=viewer.identity if viewer else None)
        async with self.uow.transaction() as tx:
            await self.people.add(tx, person)
            tx.publish(PersonRegistered.create(snapshot(person), producer=PRODUCER))
        return person

    async def register_once(
        self, details: PersonDetails, viewer: Principal, key: str
    ) -> tuple[Person, bool]:
        """Register unless this caller's request ``key`` registered someone already: then
        that person and False. The id comes from the key, so two requests racing each
        other meet at the database's unique id and only one person is registered."""
        check_may_keep(viewer, details)
        person = Person.registered(details, by=viewer.identity)
        person.person_id = uuid.uuid5(REGISTRATION_KEYS, f"{viewer.identity}\n{key}")
        try:
            async with self.uow.transaction() as tx:
                if await self.people.get(person.person_id, tx) is None:
                    await self.people.add(tx, person)
                    tx.publish(PersonRegistered.create(snapshot(person), producer=PRODUCER))
                    return person, True
        except AlreadyRegistered:
            pass
        return await self.get(person.person_id, viewer), False

    async def get(self, person_id: uuid.UUID, viewer: Principal | None = None) -> Person:
        """``viewer``: the caller, who sees only their scope; anyone else's person is
        answered exactly like one that does not exist."""
        person = await self.people.get(person_id)
        if person is None or not may_see(viewer, person):
            raise NotFound(f"person {person_id} not found")
        return person

    async def list_visible(
        self,
        viewer: Principal,
        *,
        municipality: str | None,
        contact_email: str | None,
        district_id: str | None,
        limit: int,
        offset: int,
        name_contains: str | None = None,
    ) -> list[Person]:
        """``name_contains``: a case-insensitive part of the given or family name."""
        scope = list_scope(viewer, district_id, contact_email)
        if scope is None:
            return []
        district, contact = scope
        return await self.people.list(
            district_id=district,
            municipality=municipality,
            contact_email=contact,
            name_contains=name_contains,
            limit=limit,
            offset=offset,
        )

    async def replace(
        self,
        person_id: uuid.UUID,
        details: PersonDetails,
        *,
        if_revision: int | None = None,
        viewer: Principal | None = None,
    ) -> Person:
        current = await self.get(person_id, viewer)
        check_may_keep(viewer, details)
        if if_revision is not None and if_revision != current.revision:
            raise Conflict(
                f"person {person_id} is at revision {current.revision}, not {if_revision}"
            )
        updated = current.revised(details, by=viewer.identity if viewer else None)
        async with self.uow.transaction() as tx:
            if not await self.people.replace(tx, updated, expected_revision=current.revision):
                raise Conflict(f"person {person_id} was changed meanwhile; reload and retry")
            tx.publish(PersonUpdated.create(snapshot(updated), producer=PRODUCER))
        return updated

    async def patch(
        self, person_id: uuid.UUID, changes: dict[str, object], viewer: Principal | None = None
    ) -> Person:
        current = await self.get(person_id, viewer)
        merged = {**current.model_dump(include=set(PersonDetails.model_fields)), **changes}
        return await self.replace(
            person_id,
            PersonDetails.model_validate(merged),
            if_revision=current.revision,
            viewer=viewer,
        )

    async def erase(
        self, person_id: uuid.UUID, reason: str, viewer: Principal
    ) -> tuple[Erasure, bool]:
        """Erase a person on request (an admin's call): delete them, keep the erasure
        record, and tell every service (``intake.person.erased.v1``) in one transaction.
        Their outbox rows (a pending update, too), parked events and audit references go
        with it. Returns the record and whether this call made it: asking again for an
        erased person of the caller's district gives the existing record and announces
        the erasure again; anyone else's person or an unknown id answers 404."""
        existing = await self.people.erasure_of(person_id)
        if existing is None:
            try:
                return await self._erase_now(person_id, reason, viewer), True
            except NotFound:
                # a concurrent request may have erased them meanwhile: then this one
                # is "asked again", not a 404
                existing = await self.people.erasure_of(person_id)
                if existing is None:
                    raise
        if existing.district_id != viewer.district_id:
            raise NotFound(f"person {person_id} not found")
        await self._announce(existing)
        return existing, False

    async def _erase_now(self, person_id: uuid.UUID, reason: str, viewer: Principal) -> Erasure:
        person = await self.get(person_id, viewer)
        erasure = Erasure(
            person_id=person.person_id,
            district_id=person.district_id,
            reason=reason,
            erased_by=viewer.user_id,
        )
        async with self.uow.transaction() as tx:
            if not await self.people.erase(tx, erasure):
                raise NotFound(f"person {person_id} not found")
            counts = await tx.erase_plumbing(person.person_id, erasure.erasure_id)
            tx.publish(erased_event(erasure))
        # an operator-grade fact: logged without name or person id (the record has both)
        log.warning(
            "erasure %s: a person of district %s erased by %s; people=1, %s",
            erasure.erasure_id,
            erasure.district_id,
            viewer.user_id,
            ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        )
        return erasure

    async def _announce(self, erasure: Erasure) -> None:
        """Asked again: publish the erasure again, so every service applies it once more
        (harmless if done; the way to re-apply it after a service's database was
        restored from a backup). intake's own leftovers are swept again too."""
        async with self._announcing, self.uow.transaction() as tx:
            await tx.erase_plumbing(erasure.person_id, erasure.erasure_id)
            tx.publish(erased_event(erasure))
        log.warning("erasure %s announced again", erasure.erasure_id)
