"""A person in the programme and the rules intake enforces. Pure: no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from lotse_shared.contracts.common import (
    CefrLevel,
    ContactRole,
    DistrictId,
    EducationLevel,
    KldbCode,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.contracts.intake import Consent, ResponsibleContact
from lotse_shared.places import find_place, place_names

__all__ = [
    "Consent",
    "ConsentChange",
    "ContactDetails",
    "Education",
    "Erasure",
    "ErasureRequest",
    "LanguageSkill",
    "Person",
    "PersonDetails",
    "ResponsibleContact",
    "WorkExperience",
]

# Titles that allow work by themselves; the others need the foreigners' office.
_TITLES_ALLOWING_WORK = {
    ResidenceStatus.AUFENTHALTSERLAUBNIS,
    ResidenceStatus.NIEDERLASSUNGSERLAUBNIS,
}


class ContactDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str | None = Field(default=None, max_length=40)
    email: EmailStr | None = None


class LanguageSkill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: str = Field(
        min_length=2, max_length=3, description="ISO 639 code, e.g. ar, fa, ti, uk"
    )
    level: CefrLevel | None = Field(default=None, description="None for a mother tongue.")
    mother_tongue: bool = False


class Education(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: EducationLevel = EducationLevel.NONE
    years_of_school: int | None = Field(default=None, ge=0, le=25)
    recognised_in_germany: bool = False
    notes: str = Field(default="", max_length=1000)


class WorkExperience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    occupation_code: KldbCode
    title: str = Field(min_length=1, max_length=200)
    years: float = Field(ge=0, le=60)
    country: str | None = Field(default=None, max_length=60)


class PersonDetails(BaseModel):
    """Everything a caseworker records about a person; the body of register/replace."""

    model_config = ConfigDict(extra="forbid")

    district_id: DistrictId = "kassel"
    given_name: str = Field(min_length=1, max_length=100)
    family_name: str = Field(min_length=1, max_length=100)
    birth_year: int = Field(ge=1940, le=2015)
    contact: ContactDetails = Field(default_factory=ContactDetails)
    municipality: str = Field(description="One of the district's towns or Kassel.")
    languages: list[LanguageSkill] = Field(default_factory=list, max_length=20)
    german_level: CefrLevel | None = Field(default=None, description="None: no German yet.")
    education: Education = Field(default_factory=Education)
    work_experience: list[WorkExperience] = Field(default_factory=list, max_length=30)
    sectors_of_interest: list[Sector] = Field(default_factory=list, max_length=11)
    residence_status: ResidenceStatus
    work_permission: WorkPermission
    driving_licence: bool = False
    max_commute_km: int = Field(default=20, ge=0, le=150)
    available_from: date | None = None
    consent: Consent = Field(default_factory=Consent)
    contacts: list[ResponsibleContact] = Field(min_length=1, max_length=10)

    @field_validator("municipality")
    @classmethod
    def _known_municipality(cls, value: str) -> str:
        place = find_place(value)
        if place is None:
            raise ValueError(f"unknown municipality; expected one of: {', '.join(place_names())}")
        return place.name

    @model_validator(mode="after")
    def _rules(self) -> PersonDetails:
        if not any(c.role is ContactRole.CASEWORKER for c in self.contacts):
            raise ValueError("contacts: at least one contact must have the role caseworker")
        if (
            self.residence_status in _TITLES_ALLOWING_WORK
            and self.work_permission is WorkPermission.NEEDS_APPROVAL
        ):
            raise ValueError(
                "work_permission: needs_approval does not fit residence_status "
                f"{self.residence_status.value}, which allows work by itself"
            )
        return self


class ConsentChange(BaseModel):
    """One purpose's consent given or withdrawn: the record GDPR Art. 7(1) asks for."""

    purpose: str = Field(description="matching, share_with_employers or email_notifications")
    given: bool
    at: datetime
    by: str | None = Field(default=None, description="Who recorded it (the caller's identity).")
    revision: int = Field(description="The person's revision that carried the change.")


def consent_changes(
    before: Consent | None, after: Consent, *, at: datetime, by: str | None, revision: int
) -> list[ConsentChange]:
    """The purposes whose consent differs between two revisions (all given ones at first)."""
    return [
        ConsentChange(purpose=purpose, given=given, at=at, by=by, revision=revision)
        for purpose, given in after.model_dump().items()
        if (getattr(before, purpose) if before is not None else False) != given
    ]


class Person(PersonDetails):
    person_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    revision: int = 1
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    consent_history: list[ConsentChange] = Field(
        default_factory=list, description="Every consent given or withdrawn, oldest first."
    )

    @classmethod
    def registered(cls, details: PersonDetails, by: str | None = None) -> Person:
        person = cls(**details.model_dump())
        person.consent_history = consent_changes(
            None, person.consent, at=person.created_at, by=by, revision=1
        )
        return person

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    def caseworkers(self) -> list[ResponsibleContact]:
        return [c for c in self.contacts if c.role is ContactRole.CASEWORKER]

    def revised(self, details: PersonDetails, by: str | None = None) -> Person:
        """The next revision of this person with new details; consent changes recorded."""
        now = datetime.now(UTC)
        changes = consent_changes(
            self.consent, details.consent, at=now, by=by, revision=self.revision + 1
        )
        return Person(
            **details.model_dump(),
            person_id=self.person_id,
            revision=self.revision + 1,
            created_at=self.created_at,
            updated_at=now,
            consent_history=[*self.consent_history, *changes],
        )


class ErasureRequest(BaseModel):
    """The body of an erasure: why (kept in the erasure record, never sent in events)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(
        min_length=3,
        max_length=500,
        description="Why the person is erased, e.g. 'Art. 17 DSGVO request of 2026-11-20'.",
    )

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if len(value.strip()) < 3:
            raise ValueError("give a reason of at least 3 characters")
        return value.strip()


class Erasure(BaseModel):
    """intake's erasure record: the one trace of an erased person that stays."""

    erasure_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    person_id: uuid.UUID
    district_id: DistrictId
    reason: str
    erased_by: str = Field(description="The admin who asked for it (user id).")
    erased_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
