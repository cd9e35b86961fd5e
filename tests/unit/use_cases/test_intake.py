"""intake's use cases against the in-memory unit of work: the rules each one keeps."""

from __future__ import annotations

import uuid

import pytest

from lotse_devstack.samples import CASEWORKER, MENTOR, person_body
from lotse_intake.domain.model import PersonDetails
from lotse_intake.handlers import IntakeHandlers
from lotse_shared.auth import Role
from lotse_shared.contracts.intake import PersonErased, PersonRegistered, PersonUpdated
from lotse_shared.errors import Conflict, Forbidden, NotFound
from tests.fakes.callers import who
from tests.fakes.intake import InMemoryPeople
from tests.fakes.unit_of_work import InMemoryUnitOfWork

CASEWORKER_P = who(Role.CASEWORKER)
COORDINATOR = who(Role.COORDINATOR, "c@landkreis-kassel.example")
ADMIN = who(Role.ADMIN, "a@landkreis-kassel.example")


@pytest.fixture
def uow() -> InMemoryUnitOfWork:
    return InMemoryUnitOfWork()


@pytest.fixture
def intake(uow: InMemoryUnitOfWork) -> IntakeHandlers:
    return IntakeHandlers(uow=uow, people=InMemoryPeople(uow))


def details(**changes: object) -> PersonDetails:
    return PersonDetails.model_validate(person_body(**changes))


async def test_register_keeps_the_person_and_announces_them(intake, uow) -> None:
    person = await intake.register(details(), CASEWORKER_P)
    assert {c.by for c in person.consent_history} == {CASEWORKER}
    (event,) = uow.published(PersonRegistered)
    assert event.payload.person_id == person.person_id
    assert event.payload.display_name == "Amal Haddad"
    assert await intake.get(person.person_id, CASEWORKER_P) == person


async def test_register_refuses_what_the_caller_may_not_keep_and_writes_nothing(
    intake, uow
) -> None:
    with pytest.raises(Forbidden, match="contacts"):
        await intake.register(details(), who(Role.CASEWORKER, "other@landkreis-kassel.example"))
    with pytest.raises(Forbidden, match="district_id"):
        await intake.register(details(), who(Role.COORDINATOR, district="fulda"))
    assert uow.outbox == []
    assert intake.people.people == {}


async def test_register_once_gives_the_first_person_for_a_repeated_key(intake, uow) -> None:
    first, made = await intake.register_once(details(), CASEWORKER_P, "key-1")
    again, made_again = await intake.register_once(details(), CASEWORKER_P, "key-1")
    other, _ = await intake.register_once(details(), CASEWORKER_P, "key-2")
    assert (made, made_again) == (True, False)
    assert again.person_id == first.person_id != other.person_id
    assert len(uow.published(PersonRegistered)) == 2
    # the key is the caller's: another caller's same key is another registration
    theirs, made = await intake.register_once(details(), COORDINATOR, "key-1")
    assert made
    assert theirs.person_id != first.person_id


async def test_someone_elses_person_answers_as_unknown(intake) -> None:
    person = await intake.register(details(), CASEWORKER_P)
    stranger = who(Role.CASEWORKER, "other@landkreis-kassel.example")
    with pytest.raises(NotFound):
        await intake.get(person.person_id, stranger)
    with pytest.raises(NotFound):
        await intake.get(person.person_id, who(Role.COORDINATOR, district="fulda"))
    with pytest.raises(NotFound):
        await intake.get(uuid.uuid4(), CASEWORKER_P)
    assert (await intake.get(person.person_id, COORDINATOR)).person_id == person.person_id


async def test_lists_hold_only_the_callers_people(intake) -> None:
    mine = await intake.register(details(given_name="Amal"), CASEWORKER_P)
    theirs = await intake.register(
        details(
            given_name="Yonas",
            contacts=[{"role": "caseworker", "name": "O", "email": "o@landkreis-kassel.example"}],
        ),
        COORDINATOR,
    )

    async def listed(viewer, **kw) -> set[uuid.UUID]:
        args = {"municipality": None, "contact_email": None, "district_id": None}
        people = await intake.list_visible(viewer, limit=50, offset=0, **(args | kw))
        return {p.person_id for p in people}

    assert await listed(CASEWORKER_P) == {mine.person_id}
    assert await listed(CASEWORKER_P, name_contains="yon") == set()
    assert await listed(COORDINATOR) == {mine.person_id, theirs.person_id}
    assert await listed(COORDINATOR, name_contains="YON") == {theirs.person_id}
    assert await listed(COORDINATOR, district_id="fulda") == set()
    assert await listed(who(Role.PARTNER)) == set()


async def test_replace_checks_the_revision_and_announces_the_change(intake, uow) -> None:
    person = await intake.register(details(), CASEWORKER_P)
    with pytest.raises(Conflict, match="revision 1, not 7"):
        await intake.replace(person.person_id, details(), if_revision=7, viewer=CASEWORKER_P)
    updated = await intake.replace(
        person.person_id, details(german_level="B1"), if_revision=1, viewer=CASEWORKER_P
    )
    assert (updated.revision, updated.german_level) == (2, "B1")
    (event,) = uow.published(PersonUpdated)
    assert (event.payload.revision, event.payload.german_level) == (2, "B1")


async def test_a_change_made_meanwhile_is_not_overwritten(intake, uow) -> None:
    person = await intake.register(details(), CASEWORKER_P)
    real_get = intake.people.get

    async def stale_get(person_id, tx=None):
        found = await real_get(person_id, tx)
        await intake.people.replace(None, found.revised(details()), expected_revision=1)
        return found  # what the caller read, one revision old by now

    intake.people.get = stale_get
    with pytest.raises(Conflict, match="changed meanwhile"):
        await intake.replace(person.person_id, details(german_level="C1"), viewer=CASEWORKER_P)
    assert uow.published(PersonUpdated) == []


async def test_a_caseworker_cannot_hand_a_person_away(intake) -> None:
    person = await intake.register(details(), CASEWORKER_P)
    other = [{"role": "caseworker", "name": "O", "email": "o@landkreis-kassel.example"}]
    with pytest.raises(Forbidden, match="contacts"):
        await intake.patch(person.person_id, {"contacts": other}, CASEWORKER_P)
    with pytest.raises(Forbidden, match="mentor"):
        await intake.patch(person.person_id, {"german_level": "B2"}, who(Role.MENTOR, MENTOR))


async def test_patch_changes_only_what_it_names(intake) -> None:
    person = await intake.register(details(german_level="A2"), CASEWORKER_P)
    patched = await intake.patch(person.person_id, {"german_level": "B2"}, CASEWORKER_P)
    assert (patched.german_level, patched.municipality, patched.revision) == ("B2", "Baunatal", 2)


async def test_erase_forgets_the_person_and_tells_every_service(intake, uow) -> None:
    person = await intake.register(details(), CASEWORKER_P)
    erasure, made = await intake.erase(person.person_id, "Art. 17 request", ADMIN)
    assert made
    assert (erasure.district_id, erasure.erased_by) == ("kassel", ADMIN.user_id)
    with pytest.raises(NotFound):
        await intake.get(person.person_id, ADMIN)
    # the registration's outbox row goes with the person; the erasure's is all there is
    (event,) = uow.outbox
    assert isinstance(event, PersonErased)
    assert event.payload.erasure_id == erasure.erasure_id


async def test_erase_asked_again_announces_the_same_erasure_again(intake, uow) -> None:
    person = await intake.register(details(), CASEWORKER_P)
    first, _ = await intake.erase(person.person_id, "request", ADMIN)
    again, made = await intake.erase(person.person_id, "request", ADMIN)
    assert (made, again.erasure_id) == (False, first.erasure_id)
    assert [e.payload.erasure_id for e in uow.published(PersonErased)] == [first.erasure_id] * 2
    with pytest.raises(NotFound):  # another district's admin learns nothing
        await intake.erase(person.person_id, "request", who(Role.ADMIN, district="fulda"))
    with pytest.raises(NotFound):
        await intake.erase(uuid.uuid4(), "request", ADMIN)
