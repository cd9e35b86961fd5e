"""Events intake publishes: a person's matching facts and responsible contacts.

They carry what consumers need (placement: matching facts; notifications: who to
tell and how to address them), not the whole profile: no phone, no address, no
languages other than German.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import AwareDatetime, EmailStr, Field

from .common import (
    CefrLevel,
    ContactRole,
    DistrictId,
    EducationLevel,
    KldbCode,
    Language,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from .envelope import Event, Payload


class ResponsibleContact(Payload):
    role: ContactRole
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    language: Language = Language.DE


class Consent(Payload):
    """Consent per purpose; absent means not given."""

    matching: bool = False
    share_with_employers: bool = False
    email_notifications: bool = False


class PersonSnapshotV1(Payload):
    """The facts of a person other services keep, at one revision.

    ``revision`` grows with every change, so a consumer applies a snapshot only if
    it is newer than the one it holds (events may arrive out of order).
    """

    person_id: uuid.UUID
    district_id: DistrictId
    # bounded: 2**63 passed validation and crashed every consumer's MongoDB write;
    # a person is not edited two billion times
    revision: int = Field(ge=1, le=2_147_483_647)
    display_name: str = Field(min_length=1, max_length=200)
    birth_year: int = Field(ge=1900, le=2100)
    municipality: str
    german_level: CefrLevel | None = None
    residence_status: ResidenceStatus
    work_permission: WorkPermission
    driving_licence: bool = False
    max_commute_km: int = Field(ge=0, le=300)
    sectors_of_interest: list[Sector] = Field(default_factory=list)
    experience_occupations: list[KldbCode] = Field(default_factory=list)
    education_level: EducationLevel = EducationLevel.NONE
    available_from: date | None = None
    consent: Consent = Field(default_factory=Consent)
    contacts: list[ResponsibleContact] = Field(default_factory=list)


class PersonRegistered(Event):
    DESCRIPTION = "A person was registered with intake, with their responsible contacts."
    event_type: Literal["intake.person.registered"]
    event_version: Literal[1]
    payload: PersonSnapshotV1


class PersonUpdated(Event):
    DESCRIPTION = "A person's facts or contacts changed; carries the full new snapshot."
    event_type: Literal["intake.person.updated"]
    event_version: Literal[1]
    payload: PersonSnapshotV1


class PersonErasedV1(Payload):
    """An admin erased a person. Deliberately no name, contacts or
    reason: the event says only whom to forget, so it may travel everywhere."""

    person_id: uuid.UUID
    district_id: DistrictId
    erasure_id: uuid.UUID = Field(description="intake's erasure record; the only trace kept.")
    erased_at: AwareDatetime


class PersonErased(Event):
    DESCRIPTION = (
        "A person was erased on request: every service deletes or anonymises what it holds "
        "about them and keeps only a tombstone, so late events about them are ignored."
    )
    event_type: Literal["intake.person.erased"]
    event_version: Literal[1]
    payload: PersonErasedV1
