"""courses' use cases against the in-memory unit of work: the rules each one keeps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lotse_courses.domain.model import Course, CourseDetails, EnrolmentStatus
from lotse_courses.handlers import CoursesHandlers
from lotse_devstack.samples import CASEWORKER, COURSE_REF, MENTOR, TODAY, course_details, snapshot
from lotse_shared.auth import Principal, Role
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import CefrLevel, ContactRole
from lotse_shared.contracts.courses import (
    AttendanceRecorded,
    CourseCompleted,
    CourseDropped,
    Enrolled,
    ExamResultRecorded,
)
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import (
    PersonErased,
    PersonErasedV1,
    PersonRegistered,
    PersonUpdated,
    ResponsibleContact,
)
from lotse_shared.errors import (
    AboutErasedPerson,
    AlreadyApplied,
    Conflict,
    NotFound,
    NotYetApplicable,
    PersonNotYetKnown,
    RuleViolation,
)
from lotse_shared.persistence.mongo import subject_of
from tests.fakes.callers import who
from tests.fakes.courses import InMemoryCourses
from tests.fakes.parking import RecordedReplays
from tests.fakes.unit_of_work import InMemoryUnitOfWork

CASEWORKER_P = who(Role.CASEWORKER)
MENTOR_P = who(Role.MENTOR, MENTOR)
COORDINATOR = who(Role.COORDINATOR, "c@landkreis-kassel.example")
COLLEAGUE = "jonas@landkreis-kassel.example"
OTHER_CASEWORKER = who(Role.CASEWORKER, COLLEAGUE)
FULDA = who(Role.COORDINATOR, "c@landkreis-fulda.example", district="fulda")
NO_DISTRICT = Principal(user_id="ops", roles=frozenset({Role.OPERATOR}), district_id=None)
SCHOOL = "vhs-region-kassel"


@pytest.fixture
def uow() -> InMemoryUnitOfWork:
    return InMemoryUnitOfWork()


@pytest.fixture
def store(uow: InMemoryUnitOfWork) -> InMemoryCourses:
    return InMemoryCourses(uow)


@pytest.fixture
def replays() -> RecordedReplays:
    return RecordedReplays()


@pytest.fixture
def courses(store: InMemoryCourses, uow: InMemoryUnitOfWork, replays: RecordedReplays):
    return CoursesHandlers(uow=uow, repo=store, parking=replays)


def details(**changes: Any) -> CourseDetails:
    return CourseDetails.model_validate({**course_details().model_dump(), **changes})


async def known(courses: CoursesHandlers, **changes: Any) -> uuid.UUID:
    """A person courses has heard of from intake; by default the sample caseworker's."""
    event = PersonRegistered.create(snapshot(**changes), producer="intake")
    await courses.person_changed(event)
    return event.payload.person_id


def colleagues_contacts() -> list[ResponsibleContact]:
    return [ResponsibleContact(role=ContactRole.CASEWORKER, name="Jonas Weber", email=COLLEAGUE)]


async def enrolled(courses: CoursesHandlers, **course: Any) -> tuple[uuid.UUID, uuid.UUID]:
    """A known person enrolled in a new course: (person id, enrolment id)."""
    pid = await known(courses)
    made = await courses.create_course(details(**course))
    return pid, (await courses.enrol(made.course_id, pid)).enrolment_id


# partner reports, as a school sends them
def enrolment_report(pid: uuid.UUID, **course: Any) -> p.EnrolmentReported:
    payload = p.EnrolmentReportedV1(person_id=pid, course=course_details(**course))
    return p.EnrolmentReported.create(payload, producer=SCHOOL)


def attendance_report(pid: uuid.UUID, present: bool = True, **ref: Any) -> p.AttendanceReported:
    payload = p.AttendanceReportedV1(
        person_id=pid,
        course=COURSE_REF.model_copy(update=ref),
        session_date=TODAY,
        present=present,
    )
    return p.AttendanceReported.create(payload, producer=SCHOOL)


def exam_report(pid: uuid.UUID, result: str = "B1") -> p.ExamResultReported:
    payload = p.ExamResultReportedV1(
        person_id=pid, course=COURSE_REF, exam="dtz", result=result, taken_on=TODAY
    )
    return p.ExamResultReported.create(payload, producer=SCHOOL)


def completion_report(pid: uuid.UUID, level: CefrLevel | None = None) -> p.CompletionReported:
    payload = p.CompletionReportedV1(
        person_id=pid, course=COURSE_REF, completed_on=TODAY, level_reached=level
    )
    return p.CompletionReported.create(payload, producer=SCHOOL)


def dropout_report(pid: uuid.UUID, reason: str = "") -> p.DropoutReported:
    payload = p.DropoutReportedV1(person_id=pid, course=COURSE_REF, dropped_on=TODAY, reason=reason)
    return p.DropoutReported.create(payload, producer=SCHOOL)


async def deliver(courses: CoursesHandlers, report: Event) -> None:
    """Hand a partner report to its use case, as the subscription table does."""
    use_case = report.event_type.removeprefix("partner.course.")  # e.g. attendance_reported
    await getattr(courses, use_case)(report)


def caused_by(event: Event, cause: Event) -> bool:
    return (event.causation_id, event.correlation_id) == (cause.event_id, cause.correlation_id)


# --- people (read model) ----------------------------------------------------------------


async def test_person_changed_keeps_the_newest_revision_and_replays_what_waits_for_them(
    courses, store, replays
) -> None:
    first = PersonRegistered.create(snapshot(), producer="intake")
    pid = first.payload.person_id
    await courses.person_changed(first)
    assert await store.person_scope(pid) == ("kassel", sorted([CASEWORKER, MENTOR]))
    newer = snapshot(person_id=pid, revision=3, contacts=colleagues_contacts())
    older = snapshot(person_id=pid, revision=2)
    await courses.person_changed(PersonUpdated.create(newer, producer="intake"))
    await courses.person_changed(PersonUpdated.create(older, producer="intake"))  # overtaken
    assert await store.person_scope(pid) == ("kassel", [COLLEAGUE])
    assert store.people[pid].revision == 3
    assert replays.asked_for == [str(pid)] * 3


async def test_a_person_event_is_applied_once(courses, store, replays) -> None:
    event = PersonRegistered.create(snapshot(), producer="intake")
    await courses.person_changed(event)
    with pytest.raises(AlreadyApplied):
        await courses.person_changed(event)
    assert replays.asked_for == [str(event.payload.person_id)]


async def test_person_erased_forgets_them_their_enrolments_and_their_events(
    courses, store, uow
) -> None:
    pid, _ = await enrolled(courses)
    kept, _ = await enrolled(courses, course_ref="IK-2")
    assert any(subject_of(e) == pid for e in uow.outbox)
    erasure = PersonErasedV1(
        person_id=pid, district_id="kassel", erasure_id=uuid.uuid4(), erased_at=datetime.now(UTC)
    )
    await courses.person_erased(PersonErased.create(erasure, producer="intake"))
    assert pid not in store.people
    assert {e.person_id for e in store.enrolments.values()} == {kept}
    assert uow.erased == {pid: erasure.erasure_id}
    assert not any(subject_of(e) == pid for e in uow.outbox)  # the Enrolled row went too
    # a late event about them brings nothing back
    late = PersonUpdated.create(snapshot(person_id=pid, revision=2), producer="intake")
    with pytest.raises(AboutErasedPerson):
        await courses.person_changed(late)
    assert pid not in store.people


# --- courses --------------------------------------------------------------------------------


async def test_a_course_reference_is_the_providers_once(courses, store, uow) -> None:
    course = await courses.create_course(details())
    assert store.courses == {course.course_id: course}
    with pytest.raises(Conflict, match="VHS Region Kassel/IK-1 exists already"):
        await courses.create_course(details(title="Another"))
    other = await courses.create_course(details(course_ref="IK-2"))
    assert set(store.courses) == {course.course_id, other.course_id}
    assert uow.committed == []  # a course is no event


async def test_a_course_is_seen_in_its_district_only(courses) -> None:
    course = await courses.create_course(details())
    assert await courses.get_course(course.course_id, MENTOR_P) == course
    assert await courses.get_course(course.course_id) == course  # the service itself
    with pytest.raises(NotFound):
        await courses.get_course(course.course_id, FULDA)
    with pytest.raises(NotFound):
        await courses.get_course(uuid.uuid4(), COORDINATOR)


async def test_courses_are_listed_for_the_callers_district_latest_first(courses) -> None:
    starts = [TODAY - timedelta(days=d) for d in (300, 10, 100)]
    made = [
        await courses.create_course(details(course_ref=f"IK-{n}", starts_on=s))
        for n, s in enumerate(starts)
    ]
    fulda = await courses.create_course(details(course_ref="F-1", district_id="fulda"))

    async def listed(viewer: Principal, limit: int = 50, offset: int = 0) -> list[Course]:
        return await courses.list_courses(viewer, limit, offset)

    assert await listed(CASEWORKER_P) == [made[1], made[2], made[0]]
    assert await listed(CASEWORKER_P, limit=1, offset=1) == [made[2]]
    assert await listed(FULDA) == [fulda]
    assert await listed(NO_DISTRICT) == []


# --- enrolments --------------------------------------------------------------------------


async def test_enrol_announces_the_enrolment_with_the_courses_facts(courses, store, uow) -> None:
    pid = await known(courses)
    course = await courses.create_course(details(target_level="B2", course_type="berufssprachkurs"))
    enrolment = await courses.enrol(course.course_id, pid)
    assert store.enrolments == {enrolment.enrolment_id: enrolment}
    assert (enrolment.status, enrolment.district_id) == (EnrolmentStatus.ACTIVE, "kassel")
    (event,) = uow.published(Enrolled)
    assert event.payload.enrolment_id == enrolment.enrolment_id
    assert (event.payload.person_id, event.payload.course_id) == (pid, course.course_id)
    assert (event.payload.course_type, event.payload.target_level) == ("berufssprachkurs", "B2")
    assert (event.payload.starts_on, event.payload.ends_on) == (course.starts_on, course.ends_on)
    assert event.causation_id is None


async def test_enrol_needs_a_known_course_and_person_and_writes_nothing_otherwise(
    courses, store, uow
) -> None:
    pid = await known(courses)
    course = await courses.create_course(details())
    with pytest.raises(RuleViolation) as refused:
        await courses.enrol(uuid.uuid4(), pid)
    assert refused.value.field == "course_id"
    with pytest.raises(RuleViolation) as refused:
        await courses.enrol(course.course_id, uuid.uuid4())
    assert refused.value.field == "person_id"
    assert store.enrolments == {}
    assert uow.committed == []


async def test_a_caller_cannot_enrol_someone_twice(courses, uow) -> None:
    pid, _ = await enrolled(courses)
    (course_id,) = {e.payload.course_id for e in uow.published(Enrolled)}
    with pytest.raises(Conflict, match="already enrolled"):
        await courses.enrol(course_id, pid)
    assert len(uow.published(Enrolled)) == 1


async def test_enrol_as_enrols_only_the_callers_person_in_a_course_of_their_district(
    courses, store
) -> None:
    mine = await known(courses)
    theirs = await known(courses, contacts=colleagues_contacts())
    course = await courses.create_course(details())
    elsewhere = await courses.create_course(details(course_ref="F-1", district_id="fulda"))
    with pytest.raises(NotFound, match="person"):
        await courses.enrol_as(CASEWORKER_P, course.course_id, theirs)
    with pytest.raises(NotFound, match="person"):
        await courses.enrol_as(CASEWORKER_P, course.course_id, uuid.uuid4())
    with pytest.raises(NotFound, match="course"):
        await courses.enrol_as(CASEWORKER_P, elsewhere.course_id, mine)
    assert store.enrolments == {}
    enrolment = await courses.enrol_as(CASEWORKER_P, course.course_id, mine)
    assert (await courses.enrol_as(COORDINATOR, course.course_id, theirs)).person_id == theirs
    assert enrolment.enrolment_id in store.enrolments
    assert len(store.enrolments) == 2


async def test_a_persons_enrolments_are_seen_by_whom_the_person_is_seen(courses) -> None:
    pid = await known(courses)
    first = await courses.create_course(details())
    second = await courses.create_course(details(course_ref="IK-2"))
    a = await courses.enrol(second.course_id, pid)
    b = await courses.enrol(first.course_id, pid)
    for viewer in (CASEWORKER_P, MENTOR_P, COORDINATOR):
        assert await courses.enrolments_of(pid, viewer) == [a, b]  # oldest first
    for viewer in (OTHER_CASEWORKER, FULDA, who(Role.PARTNER, partner_id="vhs")):
        with pytest.raises(NotFound):
            await courses.enrolments_of(pid, viewer)
    with pytest.raises(NotFound):
        await courses.enrolments_of(uuid.uuid4(), COORDINATOR)


async def test_enrolments_of_many_leave_out_whom_the_caller_may_not_see(courses) -> None:
    mine = [await known(courses) for _ in range(3)]
    theirs = await known(courses, contacts=colleagues_contacts())
    fulda = await known(courses, district_id="fulda")
    course = await courses.create_course(details())
    by_person = {
        pid: await courses.enrol(course.course_id, pid) for pid in (*mine[:2], theirs, fulda)
    }
    asked = [*mine, theirs, fulda, uuid.uuid4(), mine[0]]

    async def seen(viewer: Principal) -> list[uuid.UUID]:
        return [e.person_id for e in await courses.enrolments_of_many(asked, viewer)]

    assert sorted(await seen(CASEWORKER_P)) == sorted(mine[:2])  # the third has none
    assert sorted(await seen(COORDINATOR)) == sorted([*mine[:2], theirs])
    assert await seen(FULDA) == [fulda]
    assert await seen(who(Role.PARTNER, partner_id="vhs")) == []
    assert await courses.enrolments_of_many([mine[0]], MENTOR_P) == [by_person[mine[0]]]


async def test_enrolments_of_many_are_read_in_one_batch_whatever_their_number(
    courses, store
) -> None:
    people = [await known(courses) for _ in range(5)]
    course = await courses.create_course(details())
    for pid in people:
        await courses.enrol(course.course_id, pid)
    asked: list[str] = []
    for name in ("scopes_of", "person_scope", "enrolments_of_people", "enrolments_of_person"):
        real = getattr(store, name)

        async def counted(*args: Any, real: Any = real, name: str = name) -> Any:
            asked.append(name)
            return await real(*args)

        setattr(store, name, counted)
    assert len(await courses.enrolments_of_many(people, CASEWORKER_P)) == 5
    assert asked == ["scopes_of", "enrolments_of_people"]


async def test_an_enrolment_is_seen_by_whom_its_person_is_seen(courses) -> None:
    _, eid = await enrolled(courses)
    assert (await courses.get_enrolment(eid, CASEWORKER_P)).enrolment_id == eid
    assert (await courses.get_enrolment(eid)).enrolment_id == eid  # the service itself
    for viewer in (OTHER_CASEWORKER, FULDA):
        with pytest.raises(NotFound):
            await courses.get_enrolment(eid, viewer)
    with pytest.raises(NotFound):
        await courses.get_enrolment(uuid.uuid4(), COORDINATOR)


# --- attendance, exams, completion, drop-out ------------------------------------------------


async def test_attendance_is_recorded_per_session_with_the_rate_so_far(courses, store, uow) -> None:
    _, eid = await enrolled(courses)
    await courses.record_attendance(eid, TODAY, True)
    await courses.record_attendance(eid, TODAY + timedelta(days=1), False)
    again = await courses.record_attendance(eid, TODAY, False)  # a correction
    assert [s.present for s in store.enrolments[eid].sessions] == [False, False]
    assert again.attendance_rate == 0.0
    events = uow.published(AttendanceRecorded)
    assert [(e.payload.present, e.payload.attendance_rate) for e in events] == [
        (True, 1.0),
        (False, 0.5),
        (False, 0.0),
    ]
    assert events[0].payload.enrolment_id == eid
    with pytest.raises(NotFound):
        await courses.record_attendance(uuid.uuid4(), TODAY, True)


async def test_a_dropped_enrolment_takes_no_attendance_and_nothing_is_written(
    courses, store, uow
) -> None:
    _, eid = await enrolled(courses)
    await courses.drop(eid, TODAY, "moved away")
    with pytest.raises(Conflict, match="dropped"):
        await courses.record_attendance(eid, TODAY, True)
    with pytest.raises(Conflict, match="dropped"):
        await courses.record_exam(eid, "dtz", None, "B1", TODAY)
    assert (store.enrolments[eid].sessions, store.enrolments[eid].exams) == ([], [])
    assert uow.published(AttendanceRecorded) == uow.published(ExamResultRecorded) == []


async def test_an_exam_is_recorded_with_the_level_it_reached(courses, store, uow) -> None:
    _, eid = await enrolled(courses)
    await courses.record_exam(eid, "dtb", CefrLevel.B2, "passed", TODAY)
    await courses.record_exam(eid, "dtz", None, "below_A2", TODAY)
    assert [e.level_reached for e in store.enrolments[eid].exams] == [CefrLevel.B2, None]
    events = uow.published(ExamResultRecorded)
    assert [(e.payload.exam, e.payload.level_tested, e.payload.level_reached) for e in events] == [
        ("dtb", CefrLevel.B2, CefrLevel.B2),
        ("dtz", None, None),
    ]
    with pytest.raises(NotFound):
        await courses.record_exam(uuid.uuid4(), "dtz", None, "B1", TODAY)


async def test_an_exam_breaking_its_rules_is_refused_and_nothing_is_written(
    courses, store, uow
) -> None:
    _, eid = await enrolled(courses)
    with pytest.raises(RuleViolation) as refused:
        await courses.record_exam(eid, "dtz", None, "passed", TODAY)
    assert refused.value.field == "result"
    assert store.enrolments[eid].exams == []
    assert uow.published(ExamResultRecorded) == []


async def test_completion_takes_the_best_passed_exam_when_no_level_is_named(
    courses, store, uow
) -> None:
    _, eid = await enrolled(courses)
    await courses.record_exam(eid, "dtz", None, "A2", TODAY)
    await courses.record_exam(eid, "dtb", CefrLevel.B1, "passed", TODAY)
    await courses.record_exam(eid, "dtb", CefrLevel.B2, "failed", TODAY)
    done = await courses.complete(eid, TODAY, None)
    assert (done.status, done.level_reached) == (EnrolmentStatus.COMPLETED, CefrLevel.B1)
    assert store.enrolments[eid].status is EnrolmentStatus.COMPLETED
    (event,) = uow.published(CourseCompleted)
    assert (event.payload.level_reached, event.payload.completed_on) == (CefrLevel.B1, TODAY)
    assert event.payload.enrolment_id == eid


async def test_completion_without_a_level_or_a_passed_exam(courses, store, uow) -> None:
    pid, eid = await enrolled(courses)
    with pytest.raises(RuleViolation) as refused:  # a caller: name the level
        await courses.complete(eid, TODAY, None)
    assert refused.value.field == "level_reached"
    report = completion_report(pid)
    with pytest.raises(NotYetApplicable) as waiting:  # a school: its exam result may follow
        await courses.complete(eid, TODAY, None, cause=report)
    assert waiting.value.person_id == str(pid)
    assert str(report.event_id) not in uow.inbox  # so it can be applied later
    assert store.enrolments[eid].status is EnrolmentStatus.ACTIVE
    assert uow.published(CourseCompleted) == []
    with pytest.raises(NotFound):
        await courses.complete(uuid.uuid4(), TODAY, CefrLevel.B1)


async def test_completing_again_alike_announces_nothing_and_otherwise_conflicts(
    courses, uow
) -> None:
    _, eid = await enrolled(courses)
    await courses.complete(eid, TODAY, CefrLevel.B1)
    again = await courses.complete(eid, TODAY, CefrLevel.B1)
    assert again.level_reached == CefrLevel.B1
    with pytest.raises(Conflict, match="completed"):
        await courses.complete(eid, TODAY, CefrLevel.B2)
    with pytest.raises(Conflict, match="completed"):
        await courses.drop(eid, TODAY, "late")
    assert len(uow.published(CourseCompleted)) == 1
    assert uow.published(CourseDropped) == []


async def test_drop_announces_the_drop_out_once(courses, store, uow) -> None:
    _, eid = await enrolled(courses)
    dropped = await courses.drop(eid, TODAY, "moved away")
    assert (dropped.status, dropped.drop_reason) == (EnrolmentStatus.DROPPED, "moved away")
    assert store.enrolments[eid].dropped_on == TODAY
    await courses.drop(eid, TODAY, "moved away")
    (event,) = uow.published(CourseDropped)
    assert (event.payload.reason, event.payload.dropped_on) == ("moved away", TODAY)
    with pytest.raises(Conflict):
        await courses.complete(eid, TODAY, CefrLevel.B1)
    with pytest.raises(NotFound):
        await courses.drop(uuid.uuid4(), TODAY, "x")


# --- partner reports ---------------------------------------------------------------------


async def test_an_enrolment_report_adds_the_course_and_enrols_in_the_reports_flow(
    courses, store, uow, replays
) -> None:
    pid = await known(courses)
    report = enrolment_report(pid)
    await courses.enrolment_reported(report)
    (course,) = store.courses.values()
    assert (course.provider, course.course_ref, course.district_id) == (
        "VHS Region Kassel",
        "IK-1",
        "kassel",
    )
    (event,) = uow.published(Enrolled)
    assert (event.payload.person_id, event.payload.course_id) == (pid, course.course_id)
    assert caused_by(event, report)
    assert replays.asked_for == [str(pid)] * 2  # once when they became known
    # a second person of the same course: the course is reused
    other = await known(courses)
    await courses.enrolment_reported(enrolment_report(other, title="renamed"))
    assert list(store.courses.values()) == [course]
    assert len(store.enrolments) == 2


async def test_a_report_is_applied_once_and_a_repeated_enrolment_changes_nothing(
    courses, store, uow
) -> None:
    pid = await known(courses)
    report = enrolment_report(pid)
    await courses.enrolment_reported(report)
    with pytest.raises(AlreadyApplied):
        await courses.enrolment_reported(report)
    again = enrolment_report(pid)  # the school sent it again, as a new message
    await courses.enrolment_reported(again)
    assert str(again.event_id) in uow.inbox
    assert len(store.enrolments) == 1
    assert len(uow.published(Enrolled)) == 1


@pytest.mark.parametrize(
    ("report", "announced"),
    [
        (attendance_report, AttendanceRecorded),
        (exam_report, ExamResultRecorded),
        (lambda pid: completion_report(pid, CefrLevel.B1), CourseCompleted),
        (dropout_report, CourseDropped),
    ],
)
async def test_each_report_is_applied_once(courses, uow, report, announced) -> None:
    pid = await known(courses)
    await courses.enrolment_reported(enrolment_report(pid))
    event = report(pid)
    await deliver(courses, event)
    with pytest.raises(AlreadyApplied):
        await deliver(courses, event)
    (published,) = uow.published(announced)
    assert caused_by(published, event)


async def test_a_report_about_an_unknown_person_waits_for_them(courses, store, uow) -> None:
    pid = uuid.uuid4()
    report = enrolment_report(pid)
    with pytest.raises(PersonNotYetKnown):
        await courses.enrolment_reported(report)
    assert store.enrolments == {}
    assert str(report.event_id) not in uow.inbox
    for later in (attendance_report, exam_report, completion_report, dropout_report):
        with pytest.raises(PersonNotYetKnown):
            await deliver(courses, later(pid))
    # when they arrive, the parked report applies
    await courses.person_changed(
        PersonRegistered.create(snapshot(person_id=pid), producer="intake")
    )
    await courses.enrolment_reported(report)
    assert [e.person_id for e in store.enrolments.values()] == [pid]


async def test_a_course_reported_by_two_messages_at_once_is_added_once(courses, store) -> None:
    first, second = await known(courses), await known(courses)
    await courses.enrolment_reported(enrolment_report(first))
    real_by_ref = store.course_by_ref
    lookups = 0

    async def not_yet_seen(provider: str, course_ref: str, tx: Any = None) -> Course | None:
        nonlocal lookups
        lookups += 1
        return None if lookups == 1 else await real_by_ref(provider, course_ref, tx)

    store.course_by_ref = not_yet_seen  # the other message added it after this one looked
    await courses.enrolment_reported(enrolment_report(second))
    assert len(store.courses) == 1
    assert {e.course_id for e in store.enrolments.values()} == set(store.courses)


async def test_reports_name_a_known_course_and_enrolment(courses, store) -> None:
    pid = await known(courses)
    with pytest.raises(NotFound, match="report the enrolment first"):
        await courses.attendance_reported(attendance_report(pid))
    await courses.create_course(details())
    with pytest.raises(NotFound, match="not enrolled"):
        await courses.attendance_reported(attendance_report(pid))
    await courses.enrolment_reported(enrolment_report(pid))
    with pytest.raises(NotFound, match="unknown"):
        await courses.attendance_reported(attendance_report(pid, course_ref="IK-9"))
    (enrolment,) = store.enrolments.values()
    assert enrolment.sessions == []


async def test_attendance_and_exam_reports_record_and_replay_what_waits(
    courses, store, replays
) -> None:
    pid = await known(courses)
    await courses.enrolment_reported(enrolment_report(pid))
    await courses.attendance_reported(attendance_report(pid, present=False))
    await courses.exam_result_reported(exam_report(pid, "A2"))
    (enrolment,) = store.enrolments.values()
    assert [s.present for s in enrolment.sessions] == [False]
    assert [e.level_reached for e in enrolment.exams] == [CefrLevel.A2]
    assert replays.asked_for == [str(pid)] * 4


async def test_a_completion_overtaking_its_exam_result_waits_for_it(courses, uow) -> None:
    pid = await known(courses)
    await courses.enrolment_reported(enrolment_report(pid))
    completion = completion_report(pid)
    with pytest.raises(NotYetApplicable):
        await courses.completion_reported(completion)
    assert uow.published(CourseCompleted) == []
    await courses.exam_result_reported(exam_report(pid, "B1"))
    await courses.completion_reported(completion)  # the replay
    (event,) = uow.published(CourseCompleted)
    assert event.payload.level_reached == CefrLevel.B1
    assert caused_by(event, completion)


async def test_a_completion_naming_its_level_needs_no_exam(courses, uow) -> None:
    pid = await known(courses)
    await courses.enrolment_reported(enrolment_report(pid))
    await courses.completion_reported(completion_report(pid, CefrLevel.A2))
    (event,) = uow.published(CourseCompleted)
    assert event.payload.level_reached == CefrLevel.A2


async def test_a_dropout_report_without_a_reason_says_the_school_reported_it(courses, uow) -> None:
    first, second = await known(courses), await known(courses)
    for pid in (first, second):
        await courses.enrolment_reported(enrolment_report(pid))
    await courses.dropout_reported(dropout_report(first))
    await courses.dropout_reported(dropout_report(second, "found work"))
    reasons = {e.payload.person_id: e.payload.reason for e in uow.published(CourseDropped)}
    assert reasons == {first: "reported by school", second: "found work"}
