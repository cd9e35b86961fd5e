"""Who is told, and what the alert says."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import cast

from lotse_notifications.delivery import ChannelDelivery, Dispatcher
from lotse_notifications.domain.model import (
    BERLIN,
    ROUTING,
    AlertDefaults,
    AlertPolicy,
    AttendanceState,
    Cadence,
    Channel,
    Kind,
    OfficeHours,
    Preferences,
    Priority,
    Recipients,
    RoutingTable,
    SuggestionEntry,
    digest_due,
    next_attempt,
    next_digest,
)
from lotse_notifications.handlers import digest_facts, person_link
from lotse_notifications.templates import Templates
from lotse_notifications.webhook import sign, verify
from lotse_shared.contracts.common import ContactRole, Language
from lotse_shared.contracts.intake import ResponsibleContact


def recipients() -> Recipients:
    return Recipients(
        person_id=uuid.uuid4(),
        district_id="kassel",
        revision=1,
        display_name="Amal Haddad",
        email_consent=True,
        contacts=[
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra", email="p@lk.example"),
            ResponsibleContact(role=ContactRole.MENTOR, name="Jürgen", email="j@paten.example"),
            ResponsibleContact(
                role=ContactRole.INTEGRATION_GUIDE, name="Lina", email="l@lotsen.example"
            ),
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra", email="P@lk.example"),
        ],
    )


def test_routing_table_picks_roles_and_never_the_same_address_twice() -> None:
    r = recipients()
    assert [c.name for c in r.told_about(Kind.SUGGESTIONS_READY)] == ["Petra"]
    assert [c.name for c in r.told_about(Kind.COURSE_DROPPED)] == ["Petra", "Jürgen", "Lina"]
    assert [c.name for c in r.told_about(Kind.ENROLLED)] == ["Petra", "Lina"]


def test_a_district_override_replaces_the_roles_of_one_row_and_keeps_its_priority() -> None:
    routing = RoutingTable.with_overrides({"kassel": {"enrolled": ["mentor"]}})
    r = recipients()
    assert [c.name for c in r.told_about(Kind.ENROLLED, routing)] == ["Jürgen"]
    assert routing.rule_for(Kind.ENROLLED, "kassel").priority is Priority.LOW
    assert routing.rule_for(Kind.ENROLLED, "werra-meissner") == ROUTING[Kind.ENROLLED]
    assert [c.name for c in r.told_about(Kind.COURSE_DROPPED, routing)] == [
        "Petra",
        "Jürgen",
        "Lina",
    ]


def test_important_alerts_escalate_and_only_critical_ones_bypass_an_opt_out() -> None:
    assert ROUTING[Kind.COURSE_DROPPED].escalates
    assert ROUTING[Kind.ATTENDANCE_AT_RISK].escalates
    assert not ROUTING[Kind.SUGGESTIONS_READY].escalates
    prefs = Preferences(opted_out={Channel.EMAIL})
    assert not prefs.wants(Channel.EMAIL, Priority.IMPORTANT)
    assert prefs.wants(Channel.EMAIL, Priority.CRITICAL)
    assert prefs.wants(Channel.INBOX, Priority.LOW)
    assert prefs.wants(Channel.WEBHOOK, Priority.NORMAL)


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_office_hours_in_berlin() -> None:
    office = OfficeHours()
    tuesday_noon = berlin(2026, 11, 24, 12, 0)
    assert office.next_open(tuesday_noon) == tuesday_noon
    # Tuesday 22:00 waits for Wednesday 08:00; Friday evening for Monday morning
    assert office.next_open(berlin(2026, 11, 24, 22, 0)) == berlin(2026, 11, 25, 8, 0)
    assert office.next_open(berlin(2026, 11, 25, 6, 30)) == berlin(2026, 11, 25, 8, 0)
    assert office.next_open(berlin(2026, 11, 27, 18, 0)) == berlin(2026, 11, 30, 8, 0)
    assert OfficeHours(quiet=False).next_open(berlin(2026, 11, 24, 22, 0)) == berlin(
        2026, 11, 24, 22, 0
    )
    # summer time: 08:00 in Berlin is 06:00 UTC
    assert office.next_open(berlin(2026, 7, 1, 5, 0)).astimezone(UTC).hour == 6


def test_next_digest_is_the_next_daily_time_in_berlin() -> None:
    assert next_digest(berlin(2026, 11, 24, 9, 0), time(16, 0)) == berlin(2026, 11, 24, 16, 0)
    assert next_digest(berlin(2026, 11, 24, 16, 0), time(16, 0)) == berlin(2026, 11, 25, 16, 0)


def test_attendance_flip_flop_alerts_once_within_the_window() -> None:
    now = datetime(2026, 11, 24, 9, tzinfo=UTC)
    window = timedelta(days=7)
    state = AttendanceState(enrolment_id=uuid.uuid4())
    alerts = []
    for hours, rate in enumerate([0.9, 0.7, 0.85, 0.7, 0.9, 0.6]):
        state, alert = state.record(rate, 0.8, now + timedelta(hours=hours), window)
        alerts.append(alert)
    assert alerts == [False, True, False, False, False, False]
    # a new drop after the window is a new alert
    state, _ = state.record(0.9, 0.8, now + timedelta(days=8), window)
    state, alert = state.record(0.7, 0.8, now + timedelta(days=8, hours=1), window)
    assert alert


def facts() -> dict[str, object]:
    return {
        "person": "Amal Haddad",
        "recipient": "Petra Schmidt",
        "german_level": "B1",
        "inbox_url": "http://portal/inbox",
        "person_url": "http://portal/people/1",
        "suggestions": [
            {
                "title": "Ausbildung Lagerlogistik",
                "employer": "NH Logistik",
                "municipality": "Kassel",
                "opening_type": "ausbildung",
                "reasons": ["B1 erreicht, Stelle verlangt B1", "8 km, ohne Führerschein"],
            }
        ],
    }


def test_german_template_names_person_suggestions_and_reasons() -> None:
    subject, body = Templates().render(Kind.SUGGESTIONS_READY, Language.DE, facts())
    assert subject == "Neue Vorschläge für Amal Haddad: 1 passende Stelle"
    assert "Guten Tag Petra Schmidt" in body
    assert "1. Ausbildung Lagerlogistik – NH Logistik, Kassel (Ausbildung)" in body
    assert "Warum: B1 erreicht, Stelle verlangt B1; 8 km, ohne Führerschein" in body
    assert "Akte im Portal: http://portal/people/1" in body  # the person's file


def test_english_template() -> None:
    subject, body = Templates().render(Kind.SUGGESTIONS_READY, Language.EN, facts())
    assert subject == "New suggestions for Amal Haddad: 1 matching opening"
    assert "(apprenticeship)" in body


def test_retry_delays_grow() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    delays = [next_attempt(n, now) - now for n in range(1, 8)]
    assert delays == sorted(delays)
    assert delays[0] == timedelta(seconds=5)
    assert delays[-1] == timedelta(minutes=30)


def test_email_leaves_out_the_drop_out_reason_the_inbox_shows() -> None:
    facts = {
        "person": "Amal Haddad",
        "recipient": "Petra",
        "dropped_on": "24.11.2026",
        "course_type": "integrationskurs",
        "target_level": "B1",
        "reason": "Krankheit",
        "inbox_url": "http://portal/inbox",
        "person_url": "http://portal/people/1",
    }
    _, inbox_body = Templates().render(Kind.COURSE_DROPPED, Language.DE, facts, "inbox")
    _, email_body = Templates().render(Kind.COURSE_DROPPED, Language.DE, facts, "email")
    assert "Krankheit" in inbox_body
    assert "Krankheit" not in email_body
    assert "http://portal/people/1" in email_body


def test_every_kind_has_a_german_and_an_english_template() -> None:
    for kind in Kind:
        for language in Language:
            Templates()._env.get_template(f"{language.value}/{kind.value}.txt")


def test_webhook_signature_covers_timestamp_and_body() -> None:
    body = b'{"kind":"course_dropped"}'
    signature = sign("s3cret", 1764000000, body)
    assert signature.startswith("sha256=")
    assert len(signature) == 7 + 64
    assert verify("s3cret", "1764000000", body, signature)
    assert not verify("s3cret", "1764000001", body, signature)
    assert not verify("s3cret", "1764000000", body + b" ", signature)
    assert not verify("other", "1764000000", body, signature)


def test_an_email_about_one_person_links_to_their_file_in_the_portal() -> None:
    person = uuid.UUID("8a2e5c1e-0000-4000-8000-000000000001")
    assert person_link("https://lotse.example/inbox", person) == (
        f"https://lotse.example/people/{person}"
    )
    assert person_link("https://h.example/lotse/inbox/", person) == (
        f"https://h.example/lotse/people/{person}"
    )
    # a digest names no one; an address of another shape is left as it is
    assert person_link("https://lotse.example/inbox", None) == "https://lotse.example/inbox"
    assert person_link("https://mail.example/open", person) == "https://mail.example/open"


async def test_a_burst_of_kicks_checks_digest_and_escalation_once_per_poll_interval() -> None:
    calls = {"deliver": 0, "digest": 0, "escalate": 0}

    class Fake:
        batch_size = 50

        async def deliver_due(self) -> int:
            calls["deliver"] += 1
            return 0

    async def digests() -> int:
        calls["digest"] += 1
        return 0

    async def escalate() -> int:
        calls["escalate"] += 1
        return 0

    fake = Fake()
    dispatcher = Dispatcher(
        email=cast(ChannelDelivery, fake),
        digests=digests,
        escalation=escalate,
        poll_s=60,
    )
    for _ in range(5):
        await dispatcher._round()
    assert calls == {"deliver": 5, "digest": 1, "escalate": 1}


async def test_with_nothing_to_do_the_dispatcher_sleeps_until_the_next_due_item() -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    work = {"deliver": 0, "timed": 0}
    upcoming: list[datetime | None] = [None]

    class Fake:
        batch_size = 50

        async def deliver_due(self) -> int:
            return work["deliver"]

    async def timed() -> int:
        return work["timed"]

    async def next_due() -> datetime | None:
        return upcoming[0]

    dispatcher = Dispatcher(
        email=cast(ChannelDelivery, Fake()),
        digests=timed,
        escalation=timed,
        poll_s=0,  # the timed work runs every round here
        next_due=next_due,
        recheck_s=30,
        clock=lambda: now,
    )
    await dispatcher._round()
    assert dispatcher.loop.every_s == 30  # nothing waits: look again in recheck_s
    upcoming[0] = now + timedelta(seconds=7)
    await dispatcher._round()
    assert dispatcher.loop.every_s == 7  # a retry or a digest due in 7 s
    upcoming[0] = now + timedelta(hours=8)
    await dispatcher._round()
    assert dispatcher.loop.every_s == 30  # far off: another replica may make work meanwhile
    upcoming[0] = now - timedelta(seconds=5)
    await dispatcher._round()
    assert dispatcher.loop.every_s == 0  # overdue: at once (poll_s)
    work["deliver"] = 3
    upcoming[0] = None
    await dispatcher._round()
    assert dispatcher.loop.every_s == 0  # busy: keep going every poll_s
    work["deliver"] = 0
    dispatcher.kick()  # a notification was made here: no question asked of the database
    asked = []

    async def counted() -> datetime | None:
        asked.append(1)
        return None

    dispatcher.next_due = counted
    await dispatcher._round()
    assert (asked, dispatcher.loop.every_s) == ([], 0)
    await dispatcher._round()  # woke by itself, nothing to do: now it asks
    assert (asked, dispatcher.loop.every_s) == ([1], 30)


async def test_kicks_close_together_make_one_delivery_round() -> None:
    """Every new notification kicks the dispatcher; the ones made within ``gather_s`` of
    the first are emailed in one round (one claim, one record), and a round that did not
    fill its batch does not look again at once."""
    rounds: list[int] = []
    due = [0]

    class Fake:
        batch_size = 3

        async def deliver_due(self) -> int:
            rounds.append(due[0])
            tried, due[0] = min(due[0], 3), max(due[0] - 3, 0)
            return tried

    async def nothing() -> int:
        return 0

    dispatcher = Dispatcher(
        email=cast(ChannelDelivery, Fake()),
        digests=nothing,
        escalation=nothing,
        poll_s=60,
        gather_s=0.2,
    )
    await dispatcher.start()
    try:
        for _ in range(2):
            due[0] += 1
            dispatcher.kick()
            await asyncio.sleep(0.05)
        assert rounds == []  # gathering
        await asyncio.sleep(0.3)
        assert rounds == [2]  # both in one round, and no second look
        due[0] = 5
        dispatcher.kick()
        await asyncio.sleep(0.3)
        assert rounds == [2, 5, 2]  # a full batch: the rest at once
    finally:
        await dispatcher.stop()


# --- the alert policy ----------------------------------------------------------------


def nov(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN)  # 23 Nov 2026: a Monday


def test_a_daily_entry_waits_for_16_00_an_hourly_one_for_the_next_full_hour() -> None:
    office = OfficeHours()
    assert digest_due(Cadence.DAILY, nov(24, 10), time(16), office) == nov(24, 16)
    assert digest_due(Cadence.DAILY, nov(24, 17), time(16), office) == nov(25, 16)
    assert digest_due(Cadence.HOURLY, nov(24, 10, 20), time(16), office) == nov(24, 11)
    # Friday evening: the next office morning is Monday
    assert digest_due(Cadence.HOURLY, nov(27, 18, 30), time(16), office) == nov(30, 8)


def test_critical_alerts_are_never_held_and_choices_beat_the_districts_defaults() -> None:
    defaults = AlertDefaults()
    mine = Preferences(cadence={Kind.SUGGESTIONS_READY: Cadence.HOURLY}, daily_email_cap=3)
    assert defaults.cadence_for(Kind.SUGGESTIONS_READY, Preferences(), Priority.NORMAL) == (
        Cadence.DAILY
    )
    assert defaults.cadence_for(Kind.SUGGESTIONS_READY, mine, Priority.NORMAL) == Cadence.HOURLY
    assert defaults.cadence_for(Kind.ATTENDANCE_AT_RISK, mine, Priority.IMPORTANT) == (
        Cadence.IMMEDIATE
    )
    held = Preferences(cadence={Kind.COURSE_DROPPED: Cadence.DAILY})
    assert defaults.cadence_for(Kind.COURSE_DROPPED, held, Priority.CRITICAL) == (Cadence.IMMEDIATE)
    assert (defaults.cap_for(Preferences()), defaults.cap_for(mine)) == (10, 3)
    werra = AlertDefaults(daily_email_cap=20)
    policy = AlertPolicy(districts={"werra-meissner": werra})
    assert policy.for_district("werra-meissner") is werra
    assert policy.for_district("kassel") is policy.defaults


def test_critical_email_waits_out_the_night_not_the_weekend() -> None:
    hours = AlertPolicy().critical_hours
    assert hours.next_open(nov(28, 14)) == nov(28, 14)  # Saturday afternoon: at once
    assert hours.next_open(nov(28, 23, 30)) == nov(29, 7)  # Saturday night: 07:00


def test_a_digest_shows_the_person_with_the_best_suggestion_first() -> None:
    def entry(person: str, pid: uuid.UUID, title: str, score: float) -> SuggestionEntry:
        return SuggestionEntry(
            entry_id=f"p@lk.example|{pid}|{title}",
            recipient_email="p@lk.example",
            recipient_name="Petra",
            recipient_role=ContactRole.CASEWORKER,
            language=Language.DE,
            person_id=pid,
            district_id="kassel",
            person=person,
            emailable=True,
            opening_id=title,
            suggestion={"title": title, "score": score},
            score=score,
            status="waiting",
            created_at=nov(24, 10),
            cause_event_id="e",
        )

    amal, olena = uuid.uuid4(), uuid.uuid4()
    facts = digest_facts(
        [
            entry("Amal", amal, "Küche", 40),
            entry("Olena", olena, "Lager", 90),
            entry("Amal", amal, "Lager", 70),
        ],
        [],
    )
    assert [(g["person"], [s["title"] for s in g["entries"]]) for g in facts["groups"]] == [
        ("Olena", ["Lager"]),
        ("Amal", ["Lager", "Küche"]),
    ]
