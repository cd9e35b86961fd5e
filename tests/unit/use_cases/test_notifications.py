"""notifications' use cases against the in-memory unit of work and store: who is told
what, over which channel and when; the digest, escalation, the inbox and the delivery
loops. The clock is the test's: Tuesday 24 November 2026, 10:00 in Berlin, unless a
test moves it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from lotse_devstack.samples import (
    CASEWORKER,
    MENTOR,
    TODAY,
    enrolment_facts,
    opening_published,
    snapshot,
    suggested,
    suggestion,
)
from lotse_notifications.delivery import ChannelDelivery, EmailGate
from lotse_notifications.domain.model import (
    BERLIN,
    AlertDefaults,
    AlertPolicy,
    Cadence,
    Channel,
    DeliveryStatus,
    Kind,
    Notification,
    Preferences,
    Priority,
)
from lotse_notifications.handlers import NotificationsHandlers
from lotse_notifications.inbox import READ_BEFORE_SENT, InboxFilter
from lotse_notifications.templates import Templates
from lotse_shared.auth import Role
from lotse_shared.contracts.common import CefrLevel, ContactRole, Language
from lotse_shared.contracts.courses import (
    AttendanceRecorded,
    AttendanceRecordedV1,
    CourseCompleted,
    CourseCompletedV1,
    CourseDropped,
    CourseDroppedV1,
    Enrolled,
    EnrolledV1,
)
from lotse_shared.contracts.intake import (
    Consent,
    PersonErased,
    PersonErasedV1,
    PersonRegistered,
    PersonSnapshotV1,
    PersonUpdated,
    ResponsibleContact,
)
from lotse_shared.contracts.notifications import NotificationDelivered, NotificationFailed
from lotse_shared.contracts.placement import (
    OpeningClosed,
    OpeningClosedV1,
)
from lotse_shared.errors import (
    AboutErasedPerson,
    AlreadyApplied,
    NotFound,
    NotYetApplicable,
    PersonNotYetKnown,
)
from tests.fakes.callers import who
from tests.fakes.notifications import InMemoryNotifications, RecordedSends
from tests.fakes.parking import RecordedReplays
from tests.fakes.unit_of_work import InMemoryUnitOfWork

GUIDE = "lina@lotsen.example"
COORDINATOR = "bea.koordination@landkreis-kassel.example"
INBOX_URL = "https://lotse.example/inbox"
# new openings at once and no daily cap: the channels' rules, not the alert policy's
AT_ONCE = AlertPolicy(
    defaults=AlertDefaults(cadence={Kind.ENROLLED: Cadence.DAILY}, daily_email_cap=0)
)


class Clock:
    def __init__(self, now: datetime = datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Service:
    """The handlers and delivery loops over one in-memory store, as bootstrap wires them."""

    def __init__(self, policy: AlertPolicy = AT_ONCE, **options: Any) -> None:
        self.uow = InMemoryUnitOfWork()
        self.repo = InMemoryNotifications(self.uow)
        self.parking = RecordedReplays()
        self.clock = Clock(options.pop("now", datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN)))
        self.changes = 0
        self.h = NotificationsHandlers(
            uow=self.uow,
            repo=self.repo,
            parking=self.parking,
            templates=Templates(),
            inbox_url=INBOX_URL,
            policy=policy,
            clock=self.clock,
            on_change=self._changed,
            **options,
        )
        self.emails = RecordedSends()
        self.observed: list[tuple[str, str]] = []  # what the metrics would count
        self.email = ChannelDelivery(
            Channel.EMAIL,
            self.uow,
            self.repo,
            self.emails,
            max_attempts=3,
            office_hours=self.h.timing.office_hours,
            gate=EmailGate(self.repo, policy, self.h.timing),
            clock=self.clock,
            observe=lambda channel, result: self.observed.append((channel, result)),
        )
        self.hooks = RecordedSends()
        self.webhook = ChannelDelivery(
            Channel.WEBHOOK, self.uow, self.repo, self.hooks, max_attempts=3, clock=self.clock
        )

    def _changed(self) -> None:
        self.changes += 1

    async def knows(self, snap: PersonSnapshotV1 | None = None) -> PersonSnapshotV1:
        snap = snap or snapshot()
        await self.h.person_changed(PersonRegistered.create(snap, producer="intake"))
        return snap

    def all(self, recipient: str = CASEWORKER) -> list[Notification]:
        """Every notification of a recipient, in the order they were created."""
        return [n for n in self.repo.notifications.values() if n.recipient_email == recipient]

    def one(self, recipient: str = CASEWORKER) -> Notification:
        [n] = self.all(recipient)
        return n


@pytest.fixture
def s() -> Service:
    return Service()


def team(**changes: Any) -> PersonSnapshotV1:
    """A person with caseworker, integration guide and education coordinator."""
    return snapshot(
        contacts=[
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra Schmidt", email=CASEWORKER),
            ResponsibleContact(role=ContactRole.INTEGRATION_GUIDE, name="Lina Lotsin", email=GUIDE),
            ResponsibleContact(
                role=ContactRole.EDUCATION_COORDINATOR, name="Bea Koordination", email=COORDINATOR
            ),
        ],
        **changes,
    )


def completed(person_id: uuid.UUID) -> CourseCompleted:
    return CourseCompleted.create(
        CourseCompletedV1(
            **enrolment_facts(person_id), level_reached=CefrLevel.B1, completed_on=TODAY
        ),
        producer="courses",
    )


def dropped(person_id: uuid.UUID, reason: str = "Umzug nach Bayern") -> CourseDropped:
    return CourseDropped.create(
        CourseDroppedV1(**enrolment_facts(person_id), dropped_on=TODAY, reason=reason),
        producer="courses",
    )


def enrolled(person_id: uuid.UUID) -> Enrolled:
    return Enrolled.create(
        EnrolledV1(
            **enrolment_facts(person_id), starts_on=TODAY, ends_on=TODAY + timedelta(days=180)
        ),
        producer="courses",
    )


def attendance(person_id: uuid.UUID, enrolment: uuid.UUID, rate: float) -> AttendanceRecorded:
    facts = {**enrolment_facts(person_id), "enrolment_id": enrolment}
    return AttendanceRecorded.create(
        AttendanceRecordedV1(
            **facts, session_date=TODAY, present=rate >= 0.8, attendance_rate=rate
        ),
        producer="courses",
    )


def closed(opening_id: uuid.UUID) -> OpeningClosed:
    return OpeningClosed.create(
        OpeningClosedV1(
            opening_id=opening_id,
            district_id="kassel",
            source="ba-jobsuche",
            source_ref="R1",
            reason="besetzt",
        ),
        producer="placement",
    )


def erased(person_id: uuid.UUID) -> PersonErased:
    return PersonErased.create(
        PersonErasedV1(
            person_id=person_id,
            erasure_id=uuid.uuid4(),
            district_id="kassel",
            erased_at=datetime(2026, 11, 24, 9, 0, tzinfo=BERLIN),
        ),
        producer="intake",
    )


def log_of(n: Notification) -> list[tuple[str, str]]:
    return [(a.channel.value, a.result) for a in n.deliveries]


def titles(n: Notification) -> list[str]:
    """Every suggestion title a notification shows: an alert's, or a digest's groups'."""
    found = [x["title"] for x in n.facts.get("suggestions", [])]
    for group in n.facts.get("groups", []):
        found += [x["title"] for x in group["entries"]]
    return found


# --- recipients ----------------------------------------------------------------------


async def test_a_person_is_kept_and_their_waiting_events_are_replayed(s: Service) -> None:
    snap = await s.knows()
    kept = await s.repo.recipients_of(snap.person_id)
    assert kept is not None
    assert (kept.display_name, kept.revision, kept.email_consent) == ("Amal Haddad", 1, True)
    assert [c.email for c in kept.contacts] == [CASEWORKER, MENTOR]
    assert s.parking.asked_for == [str(snap.person_id)]


async def test_an_older_snapshot_arriving_last_is_ignored(s: Service) -> None:
    snap = snapshot(revision=2, display_name="Amal H.")
    await s.knows(snap)
    older = snap.model_copy(update={"revision": 1, "display_name": "Amal Haddad"})
    await s.h.person_changed(PersonUpdated.create(older, producer="intake"))
    kept = await s.repo.recipients_of(snap.person_id)
    assert kept is not None
    assert (kept.revision, kept.display_name) == (2, "Amal H.")


async def test_a_repeated_event_is_applied_once(s: Service) -> None:
    event = PersonRegistered.create(snapshot(), producer="intake")
    await s.h.person_changed(event)
    with pytest.raises(AlreadyApplied):
        await s.h.person_changed(event)


async def test_withdrawn_email_consent_stops_the_emails_still_waiting(s: Service) -> None:
    s.clock.now = datetime(2026, 11, 24, 22, 30, tzinfo=BERLIN)  # the email waits for 08:00
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    assert s.one().email.status is DeliveryStatus.PENDING
    still = snap.model_copy(update={"revision": 2})  # consent kept: nothing changes
    await s.h.person_changed(PersonUpdated.create(still, producer="intake"))
    assert s.one().email.status is DeliveryStatus.PENDING

    withdrawn = snap.model_copy(update={"revision": 3, "consent": Consent(matching=True)})
    await s.h.person_changed(PersonUpdated.create(withdrawn, producer="intake"))
    note = s.one()
    assert note.email.status is DeliveryStatus.SKIPPED
    assert note.email.next_attempt_at is None
    assert note.deliveries[-1].detail == "consent.email_notifications withdrawn"
    s.clock.advance(hours=10)
    assert await s.email.deliver_due() == 0
    assert s.emails.sent == []


async def test_a_stale_snapshot_without_consent_does_not_stop_emails(s: Service) -> None:
    s.clock.now = datetime(2026, 11, 24, 22, 30, tzinfo=BERLIN)
    snap = await s.knows(snapshot(revision=3))
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    stale = snap.model_copy(update={"revision": 2, "consent": Consent(matching=True)})
    await s.h.person_changed(PersonUpdated.create(stale, producer="intake"))
    assert s.one().email.status is DeliveryStatus.PENDING


# --- erasure ---------------------------------------------------------------------------


async def test_an_erasure_forgets_everything_about_the_person_and_nothing_else(
    s: Service,
) -> None:
    policy = AlertPolicy(defaults=AlertDefaults(daily_email_cap=0))  # openings: daily
    s = Service(policy)
    amal, olena = await s.knows(), await s.knows(snapshot(display_name="Olena Kovalenko"))
    for person in (amal, olena):
        await s.h.suggestions_ready(suggested(person.person_id, suggestion("Lager")))
        await s.h.attendance_recorded(attendance(person.person_id, uuid.uuid4(), 0.5))
    s.clock.advance(hours=6)
    assert await s.h.build_digests() == 1
    changes = s.changes

    await s.h.person_erased(erased(amal.person_id))
    assert await s.repo.recipients_of(amal.person_id) is None
    assert {n.person_id for n in s.repo.notifications.values()} == {olena.person_id, None}
    assert {e.person_id for e in s.repo.entries.values()} == {olena.person_id}
    assert [whose for _, whose in s.repo.attendance.values()] == [olena.person_id]
    digest = next(n for n in s.all() if n.kind is Kind.DIGEST)
    assert [g["person"] for g in digest.facts["groups"]] == ["Olena Kovalenko"]
    assert s.changes == changes + 1  # live inboxes drop the entries
    # nothing about her comes back
    with pytest.raises(AboutErasedPerson):
        await s.h.course_dropped(dropped(amal.person_id))
    assert all(n.person_id != amal.person_id for n in s.repo.notifications.values())


# --- suggestions -----------------------------------------------------------------------


async def test_suggestions_for_an_unknown_person_wait_and_write_nothing(s: Service) -> None:
    event = suggested(uuid.uuid4(), suggestion("Lager"))
    with pytest.raises(PersonNotYetKnown):
        await s.h.suggestions_ready(event)
    assert s.repo.notifications == {}
    assert s.repo.entries == {}
    assert str(event.event_id) not in s.uow.inbox  # it is applied when replayed


async def test_suggestions_that_overtake_their_completion_wait_for_it(s: Service) -> None:
    snap = await s.knows()
    done = completed(snap.person_id)
    found = suggested(snap.person_id, suggestion("Lager", 72), cause=done)
    with pytest.raises(NotYetApplicable, match="course completion"):
        await s.h.suggestions_ready(found)
    assert s.all() == []
    assert s.repo.entries == {}
    await s.h.course_completed(done)
    assert s.parking.asked_for == [str(snap.person_id)] * 2  # the suggestions are replayed
    await s.h.suggestions_ready(found)
    [alert] = s.all()
    assert (alert.kind, titles(alert)) == (Kind.COURSE_COMPLETED, ["Lager"])


async def test_suggestions_become_one_alert_for_the_caseworker_weak_ones_unannounced(
    s: Service,
) -> None:
    snap = await s.knows()
    event = suggested(snap.person_id, suggestion("Lager", 72), suggestion("Schwach", 12))
    await s.h.suggestions_ready(event)
    note = s.one()
    assert s.all(MENTOR) == []  # mentors are not told about suggestions
    assert note.kind is Kind.SUGGESTIONS_READY
    assert titles(note) == ["Lager"]
    assert note.subject == "Neue Vorschläge für Amal Haddad: 1 passende Stelle"
    assert note.priority is Priority.NORMAL
    assert note.escalate_at is None
    assert note.email.status is DeliveryStatus.PENDING
    assert note.email.next_attempt_at == s.clock.now  # in office hours: at once
    assert note.webhook.status is DeliveryStatus.SKIPPED  # no webhook configured
    assert log_of(note) == [("inbox", "delivered")]
    [entry] = s.repo.entries.values()
    assert (entry.status, entry.notification_id) == ("announced", note.notification_id)
    assert s.changes >= 1


async def test_an_opening_is_announced_once_per_person_and_recipient(s: Service) -> None:
    snap = await s.knows()
    lager = suggestion("Lager", 72)
    await s.h.suggestions_ready(suggested(snap.person_id, lager))
    await s.h.suggestions_ready(suggested(snap.person_id, lager, suggestion("Küche", 50)))
    first, second = s.all()
    assert (titles(first), titles(second)) == (["Lager"], ["Küche"])
    await s.h.suggestions_ready(suggested(snap.person_id, lager))
    assert len(s.all()) == 2
    event = suggested(snap.person_id, suggestion("Neu"))
    await s.h.suggestions_ready(event)
    with pytest.raises(AlreadyApplied):
        await s.h.suggestions_ready(event)


async def test_new_openings_wait_for_the_daily_digest_by_default() -> None:
    s = Service(AlertPolicy())
    snap = await s.knows()
    await s.h.suggestions_ready(
        suggested(snap.person_id, suggestion("Küche", 40), suggestion("Lager", 70))
    )
    assert s.all() == []  # nothing at once
    upcoming = await s.h.upcoming(CASEWORKER.upper())
    assert [(e.opening_id and e.suggestion["title"], e.status) for e in upcoming] == [
        ("Lager", "waiting"),
        ("Küche", "waiting"),
    ]
    assert {e.due_at for e in upcoming} == {datetime(2026, 11, 24, 16, 0, tzinfo=BERLIN)}
    assert await s.h.upcoming(MENTOR) == []


async def test_an_hourly_cadence_waits_for_the_next_full_hour() -> None:
    s = Service(AlertPolicy())
    await s.h.save_preferences(
        CASEWORKER, Preferences(cadence={Kind.SUGGESTIONS_READY: Cadence.HOURLY})
    )
    s.clock.advance(minutes=17)
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    [entry] = await s.h.upcoming(CASEWORKER)
    assert entry.due_at == datetime(2026, 11, 24, 11, 0, tzinfo=BERLIN)


async def test_a_completion_and_its_suggestions_are_one_alert_with_one_email(
    s: Service,
) -> None:
    snap = await s.knows()
    done = completed(snap.person_id)
    await s.h.course_completed(done)
    held = s.one()
    assert held.facts["awaiting_suggestions"] is True
    assert held.email.next_attempt_at == s.clock.now + timedelta(minutes=2)  # waits for them
    to_mentor = s.one(MENTOR)
    assert "awaiting_suggestions" not in to_mentor.facts
    assert to_mentor.email.next_attempt_at == s.clock.now  # not held

    found = suggested(
        snap.person_id,
        suggestion("Lager", 72),
        suggestion("EQ", 55),
        suggestion("Schwach", 12),
        cause=done,
    )
    await s.h.suggestions_ready(found)
    alert = s.one()
    assert alert.notification_id == held.notification_id
    assert titles(alert) == ["Lager", "EQ"]
    assert alert.facts["awaiting_suggestions"] is False
    assert (
        alert.subject
        == "Amal Haddad hat einen Kurs abgeschlossen: B1 erreicht – 2 passende Stellen"
    )
    assert alert.email.next_attempt_at == s.clock.now  # released: the email goes now
    assert alert.updated_at == s.clock.now
    assert {e.notification_id for e in s.repo.entries.values()} == {alert.notification_id}
    assert "suggestions" not in s.one(MENTOR).facts
    assert await s.email.deliver_due() == 2
    assert {n.recipient_email for n in s.emails.sent} == {CASEWORKER, MENTOR}


async def test_suggestions_after_the_email_went_join_the_alert_and_make_it_unread(
    s: Service,
) -> None:
    snap = await s.knows()
    done = completed(snap.person_id)
    await s.h.course_completed(done)
    s.clock.advance(minutes=3)
    assert await s.email.deliver_due() == 2
    alert = s.one()
    sent = next(n for n in s.emails.sent if n.recipient_email == CASEWORKER)
    assert "noch keine neuen passenden Stellen" in sent.email_body
    await s.h.mark_read(alert.notification_id)

    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager", 72), cause=done))
    after = s.one()
    assert titles(after) == ["Lager"]
    assert after.read_at is None  # something was added: it shows as unread again
    assert after.subject.endswith("– 1 passende Stelle")
    assert after.email.status is DeliveryStatus.SENT
    assert await s.email.deliver_due() == 0  # no second email


async def test_a_reached_forecast_updates_its_first_announcement() -> None:
    s = Service(AlertPolicy())
    snap = await s.knows()
    forecast = suggestion("Ausbildung Lagerlogistik", 65, forecast=True)
    await s.h.suggestions_ready(suggested(snap.person_id, forecast))
    s.clock.advance(hours=6)
    assert await s.h.build_digests() == 1
    done = completed(snap.person_id)
    await s.h.course_completed(done)
    reached = forecast.model_copy(update={"forecast": False})
    await s.h.suggestions_ready(
        suggested(snap.person_id, reached, suggestion("Neu", 50), cause=done)
    )

    digest = next(n for n in s.all() if n.kind is Kind.DIGEST)
    [entry] = digest.facts["groups"][0]["entries"]
    assert (entry["forecast"], entry["confirmed_note"]) == (False, "B1 jetzt erreicht")
    alert = next(n for n in s.all() if n.kind is Kind.COURSE_COMPLETED)
    assert titles(alert) == ["Neu"]  # the reached one is not announced twice
    assert alert.facts["confirmed"] == ["Ausbildung Lagerlogistik"]
    assert "jetzt mit erreichtem Niveau: Ausbildung Lagerlogistik" in alert.body


async def test_a_reached_forecast_still_waiting_for_its_digest_moves_into_the_alert() -> None:
    s = Service(AlertPolicy())
    snap = await s.knows()
    forecast = suggestion("Ausbildung Lagerlogistik", 65, forecast=True)
    await s.h.suggestions_ready(suggested(snap.person_id, forecast))
    done = completed(snap.person_id)
    await s.h.course_completed(done)
    reached = forecast.model_copy(update={"forecast": False})
    await s.h.suggestions_ready(suggested(snap.person_id, reached, cause=done))
    alert = s.one()
    [shown] = alert.facts["suggestions"]
    assert (shown["title"], shown["confirmed_note"]) == (
        "Ausbildung Lagerlogistik",
        "B1 jetzt erreicht",
    )
    [entry] = s.repo.entries.values()
    assert (entry.status, entry.notification_id) == ("announced", alert.notification_id)
    s.clock.advance(hours=6)
    assert await s.h.build_digests() == 0  # it left the digest


# --- openings closing --------------------------------------------------------------------


async def test_a_closed_opening_leaves_the_digest_and_is_marked_where_shown() -> None:
    s = Service(AlertPolicy())
    snap = await s.knows()
    lager, eq, kueche = suggestion("Lager", 70), suggestion("EQ Büro", 40), suggestion("Küche", 55)
    await s.h.suggestions_ready(suggested(snap.person_id, lager, eq, kueche))
    await s.h.opening_closed(closed(eq.opening_id))
    assert s.repo.entries[next(k for k in s.repo.entries if str(eq.opening_id) in k)].status == (
        "withdrawn"
    )
    assert s.changes == 0  # nothing shown changed
    s.clock.advance(hours=6)
    assert await s.h.build_digests() == 1
    digest = s.one()
    assert titles(digest) == ["Lager", "Küche"]

    await s.h.opening_closed(closed(kueche.opening_id))
    marks = {x["title"]: x["unavailable"] for x in s.one().facts["groups"][0]["entries"]}
    assert marks == {"Lager": False, "Küche": True}
    assert s.changes == 2
    assert s.one().updated_at == s.clock.now


async def test_a_re_sent_opening_without_seats_is_as_good_as_closed(s: Service) -> None:
    snap = await s.knows()
    lager = suggestion("Lager", 70)
    await s.h.suggestions_ready(suggested(snap.person_id, lager))
    with_seats = opening_published(lager.opening_id, seats_free=2)
    await s.h.opening_published(with_seats)
    assert s.uow.inbox[str(with_seats.event_id)] == "seats free"  # handled, nothing to do
    assert s.one().facts["suggestions"][0]["unavailable"] is False

    await s.h.opening_published(opening_published(lager.opening_id, seats_free=0))
    assert s.one().facts["suggestions"][0]["unavailable"] is True
    assert "nicht mehr verfügbar" in s.one().body


# --- courses -----------------------------------------------------------------------------


async def test_course_events_about_an_unknown_person_wait(s: Service) -> None:
    pid = uuid.uuid4()
    for use_case, event in [
        (s.h.course_completed, completed(pid)),
        (s.h.course_dropped, dropped(pid)),
        (s.h.enrolled, enrolled(pid)),
        (s.h.attendance_recorded, attendance(pid, uuid.uuid4(), 0.5)),
    ]:
        with pytest.raises(PersonNotYetKnown):
            await use_case(event)  # type: ignore[operator]
        assert str(event.event_id) not in s.uow.inbox
    assert s.repo.notifications == {}
    assert s.repo.attendance == {}


async def test_a_drop_out_is_critical_tells_everyone_in_their_language_and_escalates(
    s: Service,
) -> None:
    snap = snapshot(
        contacts=[
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra Schmidt", email=CASEWORKER),
            ResponsibleContact(
                role=ContactRole.MENTOR, name="John Miller", email=MENTOR, language=Language.EN
            ),
            ResponsibleContact(role=ContactRole.INTEGRATION_GUIDE, name="Lina Lotsin", email=GUIDE),
            ResponsibleContact(
                role=ContactRole.EDUCATION_COORDINATOR, name="Bea Koordination", email=COORDINATOR
            ),
        ]
    )
    await s.knows(snap)
    await s.h.course_dropped(dropped(snap.person_id))
    german, english, guide = s.one(), s.one(MENTOR), s.one(GUIDE)
    assert s.all(COORDINATOR) == []  # not in the drop-out row of the table
    assert german.subject == "Amal Haddad hat einen Kurs abgebrochen"
    assert "Umzug nach Bayern" in german.body
    assert "Umzug nach Bayern" not in german.email_body  # email leaves the reason out
    assert f"{'https://lotse.example/people/'}{snap.person_id}" in german.email_body
    assert (english.subject, english.language) == ("Amal Haddad dropped out of a course", "en")
    assert guide.priority is Priority.CRITICAL
    assert guide.escalate_at == s.clock.now + timedelta(hours=24)


async def test_one_address_in_two_roles_gets_one_notification_with_its_own_preferences() -> None:
    s = Service(webhook_enabled=True)
    snap = snapshot(
        contacts=[
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra Schmidt", email=CASEWORKER),
            ResponsibleContact(
                role=ContactRole.MENTOR, name="Petra Schmidt", email=CASEWORKER.upper()
            ),
            ResponsibleContact(role=ContactRole.MENTOR, name="John Miller", email=MENTOR),
        ]
    )
    await s.knows(snap)
    await s.h.save_preferences(MENTOR, Preferences(opted_out={Channel.WEBHOOK}))
    await s.h.course_completed(completed(snap.person_id))
    assert len(s.all()) == 1  # caseworker and mentor are one address: told once
    assert s.one().recipient_role is ContactRole.CASEWORKER  # as the first role named
    assert s.one().webhook.status is DeliveryStatus.PENDING
    assert s.one(MENTOR).webhook.status is DeliveryStatus.OPTED_OUT  # the mentor's own


async def test_a_critical_email_ignores_the_opt_out_and_the_weekend_but_not_the_night() -> None:
    saturday_night = datetime(2026, 11, 28, 23, 30, tzinfo=BERLIN)
    s = Service(now=saturday_night)
    await s.h.save_preferences(CASEWORKER, Preferences(opted_out={Channel.EMAIL}))
    snap = await s.knows()
    await s.h.course_dropped(dropped(snap.person_id))
    note = s.one()
    assert note.email.status is DeliveryStatus.PENDING
    assert note.email.next_attempt_at == datetime(2026, 11, 29, 7, 0, tzinfo=BERLIN)  # Sunday
    s.clock.advance(hours=14)  # Sunday 13:30: the night's one goes, and a new one at once
    await s.h.course_dropped(dropped(snap.person_id))
    assert await s.email.deliver_due() == 4  # to the caseworker and the mentor, twice
    assert {n.email.status for n in s.all()} == {DeliveryStatus.SENT}
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    opted_out = next(n for n in s.all() if n.kind is Kind.SUGGESTIONS_READY)
    assert opted_out.email.status is DeliveryStatus.OPTED_OUT
    assert log_of(opted_out) == [("inbox", "delivered"), ("email", "opted_out")]


async def test_quiet_hours_hold_the_email_not_the_inbox() -> None:
    s = Service(now=datetime(2026, 11, 24, 22, 30, tzinfo=BERLIN))  # Tuesday night
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    note = s.one()  # in the inbox at once
    assert note.email.next_attempt_at == datetime(2026, 11, 25, 8, 0, tzinfo=BERLIN)
    s.clock.advance(hours=9)  # 07:30
    assert await s.email.deliver_due() == 0
    s.clock.advance(minutes=31)
    assert await s.email.deliver_due() == 1
    assert [n.recipient_email for n in s.emails.sent] == [CASEWORKER]


async def test_no_email_without_the_persons_consent(s: Service) -> None:
    snap = await s.knows(snapshot(consent=Consent(matching=True, email_notifications=False)))
    await s.h.course_dropped(dropped(snap.person_id))  # critical, and still not emailed
    note = s.one()
    assert note.email.status is DeliveryStatus.SKIPPED
    assert log_of(note) == [("inbox", "delivered"), ("email", "skipped")]
    assert await s.email.deliver_due() == 0


async def test_an_enrolment_is_low_priority_and_its_email_waits_for_the_digest(
    s: Service,
) -> None:
    snap = await s.knows(team())
    await s.h.enrolled(enrolled(snap.person_id))
    assert [n.recipient_email for n in s.repo.notifications.values()] == [CASEWORKER, GUIDE]
    note = s.one()
    assert note.priority is Priority.LOW
    assert note.escalate_at is None
    assert note.email.status is DeliveryStatus.DIGEST
    assert note.email.next_attempt_at == datetime(2026, 11, 24, 16, 0, tzinfo=BERLIN)
    assert log_of(note) == [("inbox", "delivered"), ("email", "digest")]


async def test_attendance_at_risk_alerts_once_per_drop_and_window(s: Service) -> None:
    snap = await s.knows(team())
    enrolment = uuid.uuid4()
    for rate in [0.9, 0.7, 0.85, 0.7, 0.9, 0.6]:  # up, down, up, down, up, down
        await s.h.attendance_recorded(attendance(snap.person_id, enrolment, rate))
        s.clock.advance(hours=1)
    note = s.one()
    assert note.kind is Kind.ATTENDANCE_AT_RISK
    assert note.subject == "Anwesenheit von Amal Haddad gefährdet: 70 %"
    assert note.priority is Priority.IMPORTANT
    assert [n.kind for n in s.all(GUIDE)] == [Kind.ATTENDANCE_AT_RISK]
    assert s.all(COORDINATOR) == []
    s.clock.advance(days=8)  # after the window, a new drop is a new alert
    await s.h.attendance_recorded(attendance(snap.person_id, enrolment, 0.9))
    await s.h.attendance_recorded(attendance(snap.person_id, enrolment, 0.65))
    assert len(s.all()) == 2
    # another enrolment has its own state
    await s.h.attendance_recorded(attendance(snap.person_id, uuid.uuid4(), 0.5))
    assert len(s.all()) == 3


async def test_a_routing_override_changes_who_is_told() -> None:
    from lotse_notifications.domain.model import RoutingTable

    routing = RoutingTable.with_overrides(
        {"kassel": {"suggestions_ready": ["caseworker", "mentor"]}}
    )
    s = Service(routing=routing)
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    assert s.one().recipient_role is ContactRole.CASEWORKER
    assert s.one(MENTOR).recipient_role is ContactRole.MENTOR


async def test_contacts_follow_intakes_changes(s: Service) -> None:
    snap = await s.knows()
    new = "k.yilmaz@landkreis-kassel.example"
    changed = snap.model_copy(
        update={
            "revision": 2,
            "contacts": [ResponsibleContact(role=ContactRole.CASEWORKER, name="K Y", email=new)],
        }
    )
    await s.h.person_changed(PersonUpdated.create(changed, producer="intake"))
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    assert s.all() == []
    assert s.one(new).recipient_name == "K Y"


async def test_a_webhook_goes_at_once_to_those_who_want_it_and_never_for_a_digest() -> None:
    s = Service(webhook_enabled=True, now=datetime(2026, 11, 24, 22, 0, tzinfo=BERLIN))
    await s.h.save_preferences(MENTOR, Preferences(opted_out={Channel.WEBHOOK}))
    snap = await s.knows()
    await s.h.course_completed(completed(snap.person_id))
    note = s.one()
    assert note.webhook.status is DeliveryStatus.PENDING
    assert note.webhook.next_attempt_at == s.clock.now  # machines have no office hours
    assert s.one(MENTOR).webhook.status is DeliveryStatus.OPTED_OUT
    assert ("webhook", "opted_out") in log_of(s.one(MENTOR))
    assert await s.webhook.deliver_due() == 1
    assert s.one().webhook.status is DeliveryStatus.SENT
    assert s.uow.published(NotificationDelivered) == []  # told for email only

    await s.h.enrolled(enrolled(snap.person_id))
    s.clock.advance(hours=18)  # Wednesday 16:00
    assert await s.h.build_digests() == 1
    digest = next(n for n in s.all() if n.kind is Kind.DIGEST)
    assert digest.webhook.status is DeliveryStatus.SKIPPED


# --- the digest ------------------------------------------------------------------------


async def test_low_priority_items_and_new_openings_go_out_as_one_digest() -> None:
    s = Service(AlertPolicy())
    amal = await s.knows()
    olena = await s.knows(snapshot(display_name="Olena Kovalenko"))
    lager = suggestion("Lager", 70)
    await s.h.suggestions_ready(suggested(amal.person_id, lager, suggestion("Küche", 55)))
    await s.h.suggestions_ready(suggested(olena.person_id, lager.model_copy(update={"score": 90})))
    await s.h.enrolled(enrolled(amal.person_id))
    assert await s.h.build_digests() == 0  # not yet 16:00
    changes = s.changes
    s.clock.advance(hours=6)

    assert await s.h.build_digests() == 1
    assert s.changes == changes + 1
    digest = next(n for n in s.all() if n.kind is Kind.DIGEST)
    assert digest.person_id is None
    assert digest.priority is Priority.LOW
    assert [g["person"] for g in digest.facts["groups"]] == ["Olena Kovalenko", "Amal Haddad"]
    assert titles(digest) == ["Lager", "Lager", "Küche"]
    [item] = digest.facts["items"]
    assert item["kind"] == "enrolled"
    assert digest.email.status is DeliveryStatus.PENDING
    assert digest.email_body == ""  # written when it is sent
    assert "Amal" not in digest.body  # its inbox text names no one
    bundled = next(n for n in s.all() if n.kind is Kind.ENROLLED)
    assert (bundled.email.status, bundled.digest_id) == (
        DeliveryStatus.BUNDLED,
        digest.notification_id,
    )
    assert (bundled.deliveries[-1].result, bundled.deliveries[-1].detail) == (
        "bundled",
        f"digest {digest.notification_id}",
    )
    assert {e.status for e in s.repo.entries.values()} == {"announced"}
    assert await s.email.deliver_due() == 1
    [sent] = s.emails.sent
    assert sent.kind is Kind.DIGEST
    assert "Olena Kovalenko" in s.h.email_text(sent)
    assert s.uow.published(NotificationDelivered) == []  # a digest names no one person
    s.clock.advance(days=1)
    assert await s.h.build_digests() == 0  # nothing twice


async def test_a_digest_of_people_without_email_consent_is_not_emailed() -> None:
    s = Service(AlertPolicy())
    snap = await s.knows(snapshot(consent=Consent(matching=True, email_notifications=False)))
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    s.clock.advance(hours=6)
    assert await s.h.build_digests() == 1
    assert s.one().email.status is DeliveryStatus.SKIPPED


async def test_a_digest_bundled_meanwhile_by_another_replica_is_built_once() -> None:
    s = Service(AlertPolicy())
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    s.clock.advance(hours=6)
    stale = await s.repo.due_entries(CASEWORKER, s.clock.now)
    for entry in s.repo.entries.values():  # another replica bundled them meanwhile
        entry.status = "announced"
    reads = [stale]
    real = s.repo.due_entries

    async def read_before_the_other_replica_wrote(*args: Any, **kw: Any) -> Any:
        return reads.pop() if reads else await real(*args, **kw)

    async def due(*args: Any, **kw: Any) -> list[str]:
        return [CASEWORKER]

    s.repo.due_entries = read_before_the_other_replica_wrote  # type: ignore[method-assign]
    s.repo.digest_recipients_due = due  # type: ignore[method-assign]
    assert await s.h.build_digests() == 0  # undone, run again: nothing left to bundle
    assert s.all() == []


# --- escalation ----------------------------------------------------------------------------


async def test_an_unread_important_alert_escalates_to_the_coordinator_once(s: Service) -> None:
    amal = await s.knows(team())
    olena = await s.knows(team(display_name="Olena Kovalenko"))
    await s.h.course_dropped(dropped(amal.person_id))
    await s.h.course_dropped(dropped(olena.person_id))
    read = next(n for n in s.all(GUIDE) if "Olena" in n.subject)
    await s.h.mark_read(read.notification_id, who(Role.CASEWORKER, GUIDE))
    s.clock.advance(hours=23)
    assert await s.h.escalate_due() == 0
    s.clock.advance(hours=2)
    assert await s.h.escalate_due() == 1  # two unread copies, one escalation
    assert await s.h.escalate_due() == 0
    [escalation] = s.all(COORDINATOR)
    assert escalation.kind is Kind.ESCALATION
    assert escalation.subject == (
        "Ungelesen seit 24.11.2026 10:00: Amal Haddad hat einen Kurs abgebrochen"
    )
    assert escalation.escalate_at is None  # an escalation does not escalate again
    assert escalation.email.status is DeliveryStatus.PENDING
    await s.email.deliver_due()
    assert COORDINATOR in {n.recipient_email for n in s.emails.sent}


async def test_escalation_falls_back_to_the_districts_coordinator() -> None:
    s = Service(coordinators={"kassel": "bk@kassel.example"})
    snap = await s.knows()  # caseworker and mentor only
    await s.h.course_dropped(dropped(snap.person_id))
    s.clock.advance(hours=25)
    assert await s.h.escalate_due() == 1
    assert [n.kind for n in s.all("bk@kassel.example")] == [Kind.ESCALATION]


async def test_without_a_coordinator_nobody_is_told_and_the_timer_ends(s: Service) -> None:
    snap = await s.knows()
    await s.h.course_dropped(dropped(snap.person_id))
    s.clock.advance(hours=25)
    assert await s.h.escalate_due() == 0
    assert len(s.repo.notifications) == 2
    assert all(n.escalate_at is None for n in s.repo.notifications.values())


async def test_a_coordinator_is_not_told_about_their_own_unread_alert() -> None:
    from lotse_notifications.domain.model import RoutingTable

    routing = RoutingTable.with_overrides(
        {"kassel": {"attendance_at_risk": ["education_coordinator"]}}
    )
    s = Service(routing=routing)
    snap = await s.knows(team())
    await s.h.attendance_recorded(attendance(snap.person_id, uuid.uuid4(), 0.5))  # important
    s.clock.advance(hours=25)
    assert await s.h.escalate_due() == 0  # theirs is the only copy
    assert [n.kind for n in s.all(COORDINATOR)] == [Kind.ATTENDANCE_AT_RISK]


# --- the inbox -------------------------------------------------------------------------------


async def two_alerts(s: Service) -> tuple[Notification, Notification]:
    snap = await s.knows()
    await s.h.course_dropped(dropped(snap.person_id))
    s.clock.advance(minutes=5)
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    first, second = s.all()
    return first, second


async def test_a_notification_is_shown_to_its_recipient_and_their_districts_admins_only(
    s: Service,
) -> None:
    note, _ = await two_alerts(s)
    me = who(Role.CASEWORKER)
    assert (await s.h.get(note.notification_id, me)).notification_id == note.notification_id
    assert await s.h.delivery_log(note.notification_id, me) == note.deliveries
    assert await s.h.get(note.notification_id, who(Role.ADMIN, "a@landkreis-kassel.example"))
    for stranger in [
        who(Role.CASEWORKER, "murat.yilmaz@landkreis-kassel.example"),
        who(Role.COORDINATOR, "c@landkreis-kassel.example"),
        who(Role.ADMIN, "a@fulda.example", district="fulda"),
    ]:
        with pytest.raises(NotFound):
            await s.h.get(note.notification_id, stranger)
        with pytest.raises(NotFound):
            await s.h.delivery_log(note.notification_id, stranger)
        with pytest.raises(NotFound):
            await s.h.mark_read(note.notification_id, stranger)
        with pytest.raises(NotFound):
            await s.h.archive(note.notification_id, stranger)
    assert s.all()[0].read_at is None
    assert s.all()[0].archived_at is None
    with pytest.raises(NotFound):
        await s.h.get(uuid.uuid4(), me)
    with pytest.raises(NotFound):
        await s.h.mark_read(uuid.uuid4())


async def test_reading_stops_an_email_still_waiting_for_the_morning() -> None:
    s = Service(now=datetime(2026, 11, 24, 20, 0, tzinfo=BERLIN))
    snap = await s.knows()
    await s.h.attendance_recorded(attendance(snap.person_id, uuid.uuid4(), 0.6))
    s.clock.advance(minutes=10)
    changes = s.changes
    read = await s.h.mark_read(s.one().notification_id, who(Role.CASEWORKER))
    assert read.read_at == s.clock.now
    assert s.changes == changes + 1
    assert (read.email.status, read.email.next_attempt_at) == (DeliveryStatus.READ, None)
    last = read.deliveries[-1]
    assert (last.channel, last.result, last.detail) == (Channel.EMAIL, "skipped", READ_BEFORE_SENT)
    again = await s.h.mark_read(read.notification_id)  # idempotent
    assert again.read_at == read.read_at
    assert again.deliveries == read.deliveries
    s.clock.advance(hours=13)
    assert await s.email.deliver_due() == 0
    assert s.emails.sent == []


async def test_archiving_reads_too_and_moves_the_item_to_the_archive(s: Service) -> None:
    first, second = await two_alerts(s)
    done = await s.h.archive(first.notification_id, who(Role.CASEWORKER))
    assert done.archived_at == done.read_at == s.clock.now
    inbox = await s.h.inbox_page(InboxFilter(CASEWORKER), 0, 50)
    assert [n.notification_id for n in inbox.items] == [second.notification_id]
    archive = await s.h.inbox_page(InboxFilter(CASEWORKER, archived=True), 0, 50)
    assert [n.notification_id for n in archive.items] == [first.notification_id]
    assert (archive.total, archive.unread) == (1, 0)


async def test_the_inbox_shows_unread_first_newest_first_with_counts(s: Service) -> None:
    first, second = await two_alerts(s)
    page = await s.h.inbox_page(InboxFilter(CASEWORKER), 0, 50)
    assert [n.notification_id for n in page.items] == [
        second.notification_id,
        first.notification_id,
    ]
    await s.h.mark_read(second.notification_id)
    page = await s.h.inbox_page(InboxFilter(CASEWORKER), 0, 1)
    assert [n.notification_id for n in page.items] == [first.notification_id]
    assert (page.total, page.unread) == (2, 1)
    unread = await s.h.inbox_page(InboxFilter(CASEWORKER, unread_only=True), 0, 50)
    assert [n.notification_id for n in unread.items] == [first.notification_id]
    kind = await s.h.inbox_page(InboxFilter(CASEWORKER, kind=Kind.SUGGESTIONS_READY), 0, 50)
    assert [n.notification_id for n in kind.items] == [second.notification_id]
    uncounted = await s.h.inbox_page(InboxFilter(CASEWORKER), 0, 50, counted=False)
    assert (len(uncounted.items), uncounted.total, uncounted.unread) == (2, 0, 0)
    counts = await s.h.inbox_counts(CASEWORKER)
    assert counts.unread == 1
    assert counts.unread_by_kind()["course_dropped"] == 1
    assert counts.newest == second.created_at


async def test_unread_by_person_counts_the_callers_items_or_an_admins_district(
    s: Service,
) -> None:
    amal, bilal = await s.knows(), await s.knows()
    for person in (amal, bilal):
        await s.h.course_dropped(dropped(person.person_id))
    await s.h.suggestions_ready(suggested(amal.person_id, suggestion("Lager")))
    me = who(Role.CASEWORKER)
    assert await s.h.unread_by_person(CASEWORKER, me) == {amal.person_id: 2, bilal.person_id: 1}
    bilals = next(n for n in s.all() if n.person_id == bilal.person_id)
    await s.h.archive(bilals.notification_id)
    assert await s.h.unread_by_person(CASEWORKER, me) == {amal.person_id: 2}
    admin = who(Role.ADMIN, "a@landkreis-kassel.example")
    assert await s.h.unread_by_person(CASEWORKER, admin) == {amal.person_id: 2}
    fulda = who(Role.ADMIN, "a@fulda.example", district="fulda")
    assert await s.h.unread_by_person(CASEWORKER, fulda) == {}


async def test_read_all_marks_the_filters_items_and_stops_their_emails() -> None:
    s = Service(now=datetime(2026, 11, 24, 22, 0, tzinfo=BERLIN))  # every email waits
    amal, omar = await s.knows(), await s.knows(snapshot(display_name="Omar Nasser"))
    for person in (amal, omar):
        await s.h.course_dropped(dropped(person.person_id))
        await s.h.suggestions_ready(suggested(person.person_id, suggestion("Lager")))
    me = who(Role.CASEWORKER)
    assert await s.h.read_all(InboxFilter(CASEWORKER, kind=Kind.COURSE_DROPPED), me) == 2
    assert await s.h.read_all(InboxFilter(CASEWORKER, kind=Kind.COURSE_DROPPED), me) == 0
    for n in s.all():
        if n.kind is Kind.COURSE_DROPPED:
            assert (n.read_at, n.email.status) == (s.clock.now, DeliveryStatus.READ)
            assert n.deliveries[-1].detail == READ_BEFORE_SENT
        else:
            assert (n.read_at, n.email.status) == (None, DeliveryStatus.PENDING)
    assert await s.h.read_all(InboxFilter(CASEWORKER, person_id=omar.person_id), me) == 1
    assert [n.person_id for n in s.all() if n.read_at is None] == [amal.person_id]
    assert len(s.all(MENTOR)) == 2
    assert all(n.read_at is None for n in s.all(MENTOR))


async def test_an_admin_clears_another_inbox_of_their_district_only(s: Service) -> None:
    kassel, fulda = await s.knows(), await s.knows(snapshot(district_id="fulda"))
    for person in (kassel, fulda):
        await s.h.course_dropped(dropped(person.person_id))
    admin = who(Role.ADMIN, "a@landkreis-kassel.example")
    assert await s.h.read_all(InboxFilter(CASEWORKER), admin) == 1
    assert {n.district_id: n.read_at is None for n in s.all()} == {"kassel": False, "fulda": True}


async def test_preferences_belong_to_the_address_whatever_its_case(s: Service) -> None:
    assert await s.h.preferences_of(CASEWORKER) == Preferences()
    prefs = Preferences(opted_out={Channel.EMAIL}, daily_email_cap=3)
    await s.h.save_preferences(CASEWORKER.upper(), prefs)
    assert await s.h.preferences_of(CASEWORKER) == prefs


# --- delivery ----------------------------------------------------------------------------------


async def test_sent_emails_are_recorded_and_announced_once(s: Service) -> None:
    snap = await s.knows()
    await s.h.course_dropped(dropped(snap.person_id))
    assert await s.email.deliver_due() == 2
    assert await s.email.deliver_due() == 0
    assert {n.recipient_email for n in s.emails.sent} == {CASEWORKER, MENTOR}
    note = s.one()
    assert (note.email.status, note.email.attempts, note.email.sent_at) == (
        DeliveryStatus.SENT,
        1,
        s.clock.now,
    )
    assert log_of(note) == [("inbox", "delivered"), ("email", "sent")]
    told = s.uow.published(NotificationDelivered)
    assert {e.payload.notification_id for e in told} == set(s.repo.notifications)
    assert {(e.payload.channel, e.payload.kind) for e in told} == {("email", "course_dropped")}


async def test_two_replicas_never_send_the_same_email(s: Service) -> None:
    for _ in range(3):
        snap = await s.knows()
        await s.h.course_dropped(dropped(snap.person_id))
    other = ChannelDelivery(Channel.EMAIL, s.uow, s.repo, RecordedSends(), clock=s.clock)
    assert await s.email.deliver_due(limit=2) == 2
    assert await other.deliver_due() == 4  # what the first did not claim
    assert await s.email.deliver_due() == 0


async def test_a_temporary_failure_is_retried_later_and_in_office_hours(s: Service) -> None:
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    s.emails.fail_next("451 4.3.0 Mailbox busy, try later")
    assert await s.email.deliver_due() == 1
    note = s.one()
    assert (note.email.status, note.email.attempts) == (DeliveryStatus.PENDING, 1)
    assert (note.email.last_error or "").startswith("451")
    assert note.email.next_attempt_at == s.clock.now + timedelta(seconds=5)
    assert await s.email.deliver_due() == 0  # not yet
    s.clock.advance(seconds=6)
    assert await s.email.deliver_due() == 1
    note = s.one()
    assert (note.email.status, note.email.attempts) == (DeliveryStatus.SENT, 2)
    assert log_of(note) == [
        ("inbox", "delivered"),
        ("email", "temporary_failure"),
        ("email", "sent"),
    ]
    assert s.observed == [("email", "temporary_failure"), ("email", "sent")]
    # a retry that would fall into the night waits for the office
    s.clock.now = datetime(2026, 11, 24, 17, 59, 58, tzinfo=BERLIN)
    await s.h.course_dropped(dropped(snap.person_id))
    s.emails.fail_next("451 busy", "451 busy")
    await s.email.deliver_due()
    late = next(n for n in s.all() if n.kind is Kind.COURSE_DROPPED)
    assert late.email.next_attempt_at == datetime(2026, 11, 25, 8, 0, tzinfo=BERLIN)


async def test_a_channel_fails_for_good_after_its_attempts_or_a_permanent_error(
    s: Service,
) -> None:
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    s.emails.fail_next("550 5.1.1 <petra.schmidt@landkreis-kassel.example> unknown", permanent=True)
    assert await s.email.deliver_due() == 1
    note = s.one()
    assert (note.email.status, note.email.attempts) == (DeliveryStatus.FAILED, 1)
    assert log_of(note)[-1] == ("email", "failed")
    [failed] = s.uow.published(NotificationFailed)
    assert (failed.payload.channel, failed.payload.attempts) == ("email", 1)
    assert failed.payload.error.startswith("550 5.1.1")
    assert CASEWORKER not in failed.payload.error  # events carry no address
    assert await s.email.deliver_due() == 0  # never tried again

    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Küche")))
    for _ in range(3):  # max_attempts
        s.emails.fail_next("451 busy")
        await s.email.deliver_due()
        s.clock.advance(minutes=5)
    worn_out = s.all()[-1]
    assert (worn_out.email.status, worn_out.email.attempts) == (DeliveryStatus.FAILED, 3)
    assert len(s.uow.published(NotificationFailed)) == 2
    assert s.emails.sent == []


async def test_the_daily_cap_moves_overflow_to_the_digest_and_critical_alerts_pass_it() -> None:
    s = Service(AlertPolicy(defaults=AlertDefaults(daily_email_cap=2)))
    await s.h.save_preferences(
        CASEWORKER, Preferences(cadence={Kind.SUGGESTIONS_READY: Cadence.IMMEDIATE})
    )
    snap = await s.knows()
    for i in range(4):
        await s.h.suggestions_ready(suggested(snap.person_id, suggestion(f"Stelle {i}")))
    assert await s.email.deliver_due() == 4
    assert [n.email.status for n in s.all()] == [DeliveryStatus.SENT] * 2 + [
        DeliveryStatus.DIGEST
    ] * 2
    over = s.all()[-1]
    assert over.deliveries[-1].result == "deferred"
    assert (over.deliveries[-1].detail or "").startswith("Tageslimit von 2 E-Mails erreicht")
    assert over.email.next_attempt_at == datetime(2026, 11, 24, 16, 0, tzinfo=BERLIN)
    await s.h.course_dropped(dropped(snap.person_id))  # critical: over the cap
    assert await s.email.deliver_due() == 2  # to the caseworker and the mentor
    assert len(s.emails.sent) == 4
    s.clock.advance(hours=6)
    assert await s.h.build_digests() == 1
    assert await s.email.deliver_due() == 1
    assert s.emails.sent[-1].kind is Kind.DIGEST  # a digest passes the cap


async def test_a_retry_does_not_count_against_the_cap_twice() -> None:
    s = Service(AlertPolicy(defaults=AlertDefaults(daily_email_cap=1)))
    await s.h.save_preferences(
        CASEWORKER, Preferences(cadence={Kind.SUGGESTIONS_READY: Cadence.IMMEDIATE})
    )
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    s.emails.fail_next("451 busy")
    await s.email.deliver_due()
    s.clock.advance(seconds=6)
    await s.email.deliver_due()
    assert s.one().email.status is DeliveryStatus.SENT


async def test_an_email_read_before_it_went_is_skipped_by_the_gate(s: Service) -> None:
    snap = await s.knows()
    await s.h.suggestions_ready(suggested(snap.person_id, suggestion("Lager")))
    note = s.one()
    note.read_at = s.clock.now  # read by another replica after this one claimed it
    gate = s.email.gate
    assert gate is not None
    assert await gate.check(note, s.clock.now) == (DeliveryStatus.READ, None, READ_BEFORE_SENT)
