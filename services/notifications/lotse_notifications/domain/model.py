"""Who is told what, over which channel, and when. Pure: no I/O.

The routing table says which roles hear about which kind of event and how
urgent it is; a district may override a row. A person's contacts (from
intake) say who holds those roles for that person. Time rules (office hours,
the daily digest, escalation, flip-flop throttling) take ``now`` as an
argument, so tests and the service pass their own clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import IntEnum, StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from lotse_shared.contracts.common import ContactRole, DistrictId, Language
from lotse_shared.contracts.intake import ResponsibleContact

BERLIN = ZoneInfo("Europe/Berlin")


class Kind(StrEnum):
    SUGGESTIONS_READY = "suggestions_ready"
    COURSE_COMPLETED = "course_completed"
    COURSE_DROPPED = "course_dropped"
    ENROLLED = "enrolled"
    ATTENDANCE_AT_RISK = "attendance_at_risk"
    ESCALATION = "escalation"  # an important alert nobody read in time
    DIGEST = "digest"  # one item for many: new suggestions and deferred emails


class Priority(IntEnum):
    LOW = 1  # batched into the daily digest email
    NORMAL = 2
    IMPORTANT = 3  # escalated to the coordinator when unread in time
    CRITICAL = 4  # also escalated; emailed even to those who opted out of email


class Channel(StrEnum):
    INBOX = "inbox"  # always; cannot be opted out of
    EMAIL = "email"
    WEBHOOK = "webhook"


OPTIONAL_CHANNELS = (Channel.EMAIL, Channel.WEBHOOK)

CASEWORKER = ContactRole.CASEWORKER
MENTOR = ContactRole.MENTOR
GUIDE = ContactRole.INTEGRATION_GUIDE
COORDINATOR = ContactRole.EDUCATION_COORDINATOR


@dataclass(frozen=True)
class Rule:
    roles: frozenset[ContactRole]
    priority: Priority

    @property
    def escalates(self) -> bool:
        return self.priority >= Priority.IMPORTANT


def rule(*roles: ContactRole, priority: Priority = Priority.NORMAL) -> Rule:
    return Rule(frozenset(roles), priority)


# The routing table: event kind -> roles told, and how urgent it is.
ROUTING: dict[Kind, Rule] = {
    Kind.SUGGESTIONS_READY: rule(CASEWORKER),
    Kind.COURSE_COMPLETED: rule(CASEWORKER, MENTOR, COORDINATOR),
    Kind.COURSE_DROPPED: rule(CASEWORKER, MENTOR, GUIDE, priority=Priority.CRITICAL),
    Kind.ATTENDANCE_AT_RISK: rule(CASEWORKER, GUIDE, priority=Priority.IMPORTANT),
    Kind.ENROLLED: rule(CASEWORKER, GUIDE, priority=Priority.LOW),
    Kind.ESCALATION: rule(COORDINATOR, priority=Priority.IMPORTANT),
    Kind.DIGEST: rule(CASEWORKER, priority=Priority.LOW),  # built per recipient, not routed
}


@dataclass(frozen=True)
class RoutingTable:
    """The table above, with rows replaced per district (``LOTSE_ROUTING_OVERRIDES``)."""

    rules: Mapping[Kind, Rule]
    overrides: Mapping[str, Mapping[Kind, Rule]]

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Mapping[str, list[str]]]) -> RoutingTable:
        """``{"werra-meissner": {"enrolled": ["caseworker"]}}``: roles per kind per district.

        An override replaces the roles of that row and keeps its priority.
        """
        parsed: dict[str, dict[Kind, Rule]] = {}
        for district, rows in overrides.items():
            parsed[district] = {
                Kind(kind): Rule(
                    frozenset(ContactRole(r) for r in roles), ROUTING[Kind(kind)].priority
                )
                for kind, roles in rows.items()
            }
        return cls(ROUTING, parsed)

    def rule_for(self, kind: Kind, district_id: str) -> Rule:
        return self.overrides.get(district_id, {}).get(kind) or self.rules[kind]


DEFAULT_ROUTING = RoutingTable(ROUTING, {})


class Recipients(BaseModel):
    """notifications' read model of a person: name, contacts, and email consent."""

    person_id: uuid.UUID
    district_id: DistrictId
    revision: int
    display_name: str
    contacts: list[ResponsibleContact]
    email_consent: bool

    def told_about(
        self, kind: Kind, routing: RoutingTable = DEFAULT_ROUTING
    ) -> list[ResponsibleContact]:
        roles = routing.rule_for(kind, self.district_id).roles
        seen: set[str] = set()
        chosen = []
        for contact in self.contacts:
            if contact.role in roles and contact.email.lower() not in seen:
                seen.add(contact.email.lower())
                chosen.append(contact)
        return chosen

    def coordinators(self) -> list[ResponsibleContact]:
        return [c for c in self.contacts if c.role is COORDINATOR]


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at ``<channel>.next_attempt_at`` (office hours, retry delay)
    DIGEST = "digest"  # waits for the daily digest email
    SENT = "sent"
    FAILED = "failed"  # permanent error, or temporary ones until attempts ran out
    SKIPPED = "skipped"  # no consent to email this person's data, or no webhook configured
    OPTED_OUT = "opted_out"  # the recipient does not want this channel
    BUNDLED = "bundled"  # went into a digest (``digest_id``), which is emailed instead
    READ = "read"  # read in the inbox before it went out: not sent any more


EmailStatus = DeliveryStatus  # the name the first version used


class Cadence(StrEnum):
    """How soon a recipient hears of a kind of alert."""

    IMMEDIATE = "immediate"  # its own inbox item and email, at once (office hours)
    HOURLY = "hourly"  # collected into a digest at the next full hour
    DAILY = "daily"  # collected into the daily digest at ``LOTSE_DIGEST_AT``


# What a caseworker wants by default: what happened to one of their people at once,
# new openings and enrolments once a day. A district may change it in settings, a
# recipient in their preferences.
DEFAULT_CADENCE: dict[Kind, Cadence] = {
    Kind.SUGGESTIONS_READY: Cadence.DAILY,
    Kind.ENROLLED: Cadence.DAILY,
}
CHOOSABLE = tuple(k for k in Kind if k not in (Kind.DIGEST, Kind.ESCALATION))


class Preferences(BaseModel):
    """A recipient's choices. The inbox is always on; unset choices take the district's."""

    opted_out: set[Channel] = Field(default_factory=set)
    cadence: dict[Kind, Cadence] = Field(default_factory=dict)
    daily_email_cap: int | None = Field(default=None, ge=0)

    def wants(self, channel: Channel, priority: Priority) -> bool:
        if channel is Channel.INBOX or priority >= Priority.CRITICAL:
            return True
        return channel not in self.opted_out


@dataclass(frozen=True)
class AlertDefaults:
    """A district's defaults for what its recipients did not choose themselves."""

    cadence: Mapping[Kind, Cadence] = field(default_factory=lambda: dict(DEFAULT_CADENCE))
    daily_email_cap: int = 10  # immediate emails a day; critical ones do not count

    def cadence_for(self, kind: Kind, prefs: Preferences, priority: Priority) -> Cadence:
        """Critical alerts are never held back for a digest."""
        if priority >= Priority.CRITICAL:
            return Cadence.IMMEDIATE
        return prefs.cadence.get(kind) or self.cadence.get(kind) or Cadence.IMMEDIATE

    def cap_for(self, prefs: Preferences) -> int:
        return self.daily_email_cap if prefs.daily_email_cap is None else prefs.daily_email_cap


@dataclass(frozen=True)
class AlertPolicy:
    """The rules that keep a caseworker's alerts few and worth reading.

    ``min_score``: a suggestion scoring below it is not announced (placement keeps it
    in the person's file). The score runs to about 95 (interest 30, experience 25,
    distance 20, start 15, German 5); 20 is what nearness alone can earn, so an
    opening below it has nothing but eligibility for it.
    ``suggestions_wait``: how long a completion's email waits for its suggestions,
    so both go out as one.
    """

    min_score: float = 20.0
    suggestions_wait: timedelta = timedelta(minutes=2)
    defaults: AlertDefaults = field(default_factory=AlertDefaults)
    districts: Mapping[str, AlertDefaults] = field(default_factory=dict)
    # when critical email goes out: at once, but not at night (every day, weekends too)
    critical_hours: OfficeHours = field(
        default_factory=lambda: OfficeHours(
            start=time(7, 0), end=time(21, 0), weekdays=frozenset(range(7))
        )
    )

    def for_district(self, district_id: str) -> AlertDefaults:
        return self.districts.get(district_id, self.defaults)


def digest_due(cadence: Cadence, now: datetime, digest_at: time, office: OfficeHours) -> datetime:
    """When an entry of this cadence goes out: the next full hour, or the daily digest
    time; in office hours either way."""
    if cadence is Cadence.HOURLY:
        return office.next_open(now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
    return office.next_open(next_digest(now, digest_at))


class SuggestionEntry(BaseModel):
    """One person-opening pair as announced to one recipient: in an alert at once, or
    waiting for the next digest. One per recipient, person and opening, ever."""

    entry_id: str  # "<recipient>|<person_id>|<opening_id>"
    recipient_email: str
    recipient_name: str
    recipient_role: ContactRole
    language: Language
    person_id: uuid.UUID
    district_id: DistrictId
    person: str  # display name, for the digest
    emailable: bool  # the person consented to their data going out by email
    opening_id: str
    suggestion: dict[str, Any]  # SuggestionV1 as JSON, plus "unavailable"/"confirmed_note"
    score: float
    status: str  # waiting (for a digest) | announced | withdrawn (closed before the digest)
    notification_id: uuid.UUID | None = None  # the alert or digest that carries it
    created_at: datetime
    due_at: datetime | None = None
    cause_event_id: str
    correlation_id: str | None = None

    @staticmethod
    def key(recipient_email: str, person_id: uuid.UUID, opening_id: str) -> str:
        return f"{recipient_email.lower()}|{person_id}|{opening_id}"


class Attempt(BaseModel):
    """One line of a notification's delivery log (kept on the notification itself)."""

    channel: Channel
    at: datetime
    result: str  # delivered | sent | temporary_failure | failed | opted_out | skipped | digest
    detail: str | None = None


class ChannelState(BaseModel):
    """Where one optional channel (email, webhook) of a notification stands.

    Stored as a sub-document (``email.status``, ``webhook.next_attempt_at`` ...). While
    a delivery loop holds a notification, the database also keeps its claim token
    there (``email.claim``); that is the repository's business, not the model's.
    """

    status: DeliveryStatus
    attempts: int = 0
    next_attempt_at: datetime | None = None  # when a pending or digest delivery is due
    sent_at: datetime | None = None
    last_error: str | None = None


class Notification(BaseModel):
    notification_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    person_id: uuid.UUID | None  # None: a digest, about many people
    district_id: DistrictId
    kind: Kind
    priority: Priority = Priority.NORMAL
    recipient_email: str
    recipient_name: str
    recipient_role: ContactRole
    language: Language
    subject: str
    body: str  # shown in the inbox
    email_body: str = ""  # the same facts less what email need not carry (free-text reasons)
    facts: dict[str, Any] = Field(default_factory=dict)
    cause_event_id: str
    correlation_id: str | None = None  # the business flow it belongs to, for tracing
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime | None = None  # its content changed (suggestions joined, ...)
    read_at: datetime | None = None
    archived_at: datetime | None = None
    escalate_at: datetime | None = None  # set while an unread important alert may escalate
    escalated_at: datetime | None = None
    email: ChannelState = Field(default_factory=lambda: ChannelState(status=DeliveryStatus.PENDING))
    webhook: ChannelState = Field(
        default_factory=lambda: ChannelState(status=DeliveryStatus.SKIPPED)
    )
    deliveries: list[Attempt] = Field(default_factory=list)  # the delivery log, oldest first
    digest_id: uuid.UUID | None = None  # BUNDLED: the digest whose email carried this one

    def channel(self, ch: Channel) -> ChannelState:
        """The delivery state of ``ch``; the inbox has none (it is always delivered)."""
        if ch is Channel.EMAIL:
            return self.email
        if ch is Channel.WEBHOOK:
            return self.webhook
        raise ValueError(f"no delivery state for the {ch} channel")


RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)


def next_attempt(attempts: int, now: datetime) -> datetime:
    """When to try a channel again after ``attempts`` temporary failures."""
    return now + RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]


@dataclass(frozen=True)
class OfficeHours:
    """When email may go out, in Europe/Berlin: working days, ``start`` to ``end``."""

    start: time = time(8, 0)
    end: time = time(18, 0)
    weekdays: frozenset[int] = frozenset(range(5))  # Monday=0 .. Friday=4
    quiet: bool = True  # False: no quiet hours at all (demos, benchmarks)

    def next_open(self, now: datetime) -> datetime:
        """``now`` if inside office hours, else the start of the next office day (UTC)."""
        if not self.quiet:
            return now
        local = now.astimezone(BERLIN)
        if local.weekday() in self.weekdays and self.start <= local.time() < self.end:
            return now
        day = local.date()
        if local.time() >= self.start:
            day += timedelta(days=1)
        while day.weekday() not in self.weekdays:
            day += timedelta(days=1)
        return datetime.combine(day, self.start, tzinfo=BERLIN).astimezone(UTC)


def next_digest(now: datetime, at: time) -> datetime:
    """The next daily digest time (Europe/Berlin) strictly after ``now``."""
    local = now.astimezone(BERLIN)
    candidate = datetime.combine(local.date(), at, tzinfo=BERLIN)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=BERLIN)
    return candidate.astimezone(UTC)


class AttendanceState(BaseModel):
    """notifications' memory of one enrolment's attendance, for throttling alerts.

    Attendance goes below the threshold, back above it, below again: only the
    first drop within ``window`` becomes an alert; the next drop after the
    window has passed since the last alert is a new one.
    """

    enrolment_id: uuid.UUID
    at_risk: bool = False
    last_alert_at: datetime | None = None

    def record(
        self, rate: float, threshold: float, now: datetime, window: timedelta
    ) -> tuple[AttendanceState, bool]:
        """The new state, and whether to alert."""
        at_risk = rate < threshold
        dropped = at_risk and not self.at_risk
        quiet = self.last_alert_at is not None and now - self.last_alert_at < window
        alert = dropped and not quiet
        return (
            AttendanceState(
                enrolment_id=self.enrolment_id,
                at_risk=at_risk,
                last_alert_at=now if alert else self.last_alert_at,
            ),
            alert,
        )
