"""notifications' use cases: keep recipients, create notifications, deliver them.

An event becomes one notification per recipient in the inbox, in the same
transaction that records the event as applied; email and webhook are states
on that notification that background loops work off. A failing channel so
never loses the notification: it is in the inbox before any channel is tried.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from itertools import groupby
from time import monotonic
from typing import Any
from urllib.parse import urlencode

from lotse_shared.auth import Principal, Role
from lotse_shared.background import Periodic
from lotse_shared.contracts.common import ContactRole
from lotse_shared.contracts.courses import (
    AttendanceRecorded,
    CourseCompleted,
    CourseDropped,
    Enrolled,
)
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import (
    PersonErased,
    PersonRegistered,
    PersonUpdated,
    ResponsibleContact,
)
from lotse_shared.contracts.notifications import (
    NotificationDelivered,
    NotificationDeliveredV1,
    NotificationFailed,
    NotificationFailedV1,
)
from lotse_shared.contracts.placement import SuggestionsReady
from lotse_shared.erasure import apply_erasure
from lotse_shared.errors import Forbidden, NotFound
from lotse_shared.logs import scrub_text
from lotse_shared.messaging.errors import PersonNotYetKnown
from lotse_shared.messaging.parking import ParkingLot
from lotse_shared.persistence.mongo import Transaction, UnitOfWork
from lotse_shared.persistence.retry import retry_transient

from .domain.model import (
    BERLIN,
    DEFAULT_ROUTING,
    Attempt,
    Channel,
    DeliveryStatus,
    Kind,
    Notification,
    OfficeHours,
    Preferences,
    Priority,
    Recipients,
    RoutingTable,
    next_attempt,
    next_digest,
)
from .email import Email, SmtpSender
from .failures import PermanentDeliveryError, TemporaryDeliveryError
from .repository import NotificationsRepository
from .templates import Templates
from .webhook import WebhookSender

PRODUCER = "notifications"
log = logging.getLogger("lotse.notifications")


def _now() -> datetime:
    return datetime.now(UTC)


def _addressed_to(n: Notification, viewer: Principal) -> bool:
    if n.recipient_email.lower() == viewer.identity:
        return True
    return Role.ADMIN in viewer.roles and viewer.in_district(n.district_id)


def whose_inbox(viewer: Principal, recipient: str | None) -> str:
    """The caller's own inbox; naming someone else's is for admins only."""
    if recipient is None or recipient.lower() == viewer.identity:
        return viewer.identity
    if Role.ADMIN in viewer.roles:
        return recipient.lower()
    raise Forbidden("recipient: you may only open your own inbox")


def inbox_link(inbox_url: str, address: str) -> str:
    return f"{inbox_url}?{urlencode({'recipient': address}, safe='@')}"


@dataclass
class Timing:
    """The time rules, set from settings in the composition root."""

    office_hours: OfficeHours = field(default_factory=OfficeHours)
    digest_at: time = time(16, 0)
    escalate_after: timedelta = timedelta(hours=24)
    attendance_threshold: float = 0.8
    flip_flop_window: timedelta = timedelta(days=7)


@dataclass
class NotificationsHandlers:
    uow: UnitOfWork
    repo: NotificationsRepository
    parking: ParkingLot
    templates: Templates
    inbox_url: str
    routing: RoutingTable = DEFAULT_ROUTING
    timing: Timing = field(default_factory=Timing)
    coordinators: dict[str, str] = field(default_factory=dict)  # district -> fallback address
    webhook_enabled: bool = False
    clock: Callable[[], datetime] = _now
    # a notification was created, read or archived: kick delivery, tell live inboxes
    on_change: Callable[[], None] = lambda: None

    async def person_changed(self, event: PersonRegistered | PersonUpdated) -> None:
        p = event.payload
        recipients = Recipients(
            person_id=p.person_id,
            district_id=p.district_id,
            revision=p.revision,
            display_name=p.display_name,
            contacts=p.contacts,
            email_consent=p.consent.email_notifications,
        )
        async with self.uow.transaction(applying=event) as tx:
            before = await self.repo.recipients_of(p.person_id, tx.session)
            saved = await self.repo.save_recipients(tx, recipients)
            if saved and before and before.email_consent and not recipients.email_consent:
                # withdrawn: what is still waiting to be emailed is not sent any more
                await self.repo.skip_emails_of(
                    tx,
                    p.person_id,
                    Attempt(
                        channel=Channel.EMAIL,
                        at=self.clock(),
                        result=DeliveryStatus.SKIPPED.value,
                        detail="consent.email_notifications withdrawn",
                    ),
                )
        await self.parking.replay_for([str(p.person_id)])

    async def person_erased(self, event: PersonErased) -> None:
        await apply_erasure(self.uow, event, self.repo.erase_person, "notifications")
        self.on_change()  # live inboxes drop the entries

    async def suggestions_ready(self, event: SuggestionsReady) -> None:
        p = event.payload
        facts = {
            "german_level": p.german_level.value if p.german_level else None,
            "suggestions": [s.model_dump(mode="json") for s in p.suggestions],
        }
        await self._notify(event, p.person_id, Kind.SUGGESTIONS_READY, facts)

    async def course_completed(self, event: CourseCompleted) -> None:
        p = event.payload
        facts = {
            "level_reached": p.level_reached.value,
            "completed_on": f"{p.completed_on:%d.%m.%Y}",
            "course_type": p.course_type.value,
        }
        await self._notify(event, p.person_id, Kind.COURSE_COMPLETED, facts)

    async def course_dropped(self, event: CourseDropped) -> None:
        p = event.payload
        facts = {
            "dropped_on": f"{p.dropped_on:%d.%m.%Y}",
            "course_type": p.course_type.value,
            "target_level": p.target_level.value,
            "reason": p.reason,
        }
        await self._notify(event, p.person_id, Kind.COURSE_DROPPED, facts)

    async def enrolled(self, event: Enrolled) -> None:
        p = event.payload
        facts = {
            "course_type": p.course_type.value,
            "target_level": p.target_level.value,
            "starts_on": f"{p.starts_on:%d.%m.%Y}",
        }
        await self._notify(event, p.person_id, Kind.ENROLLED, facts)

    async def attendance_recorded(self, event: AttendanceRecorded) -> None:
        """Derives "attendance at risk" from courses' attendance rate, throttled.

        courses publishes every session's attendance; the rule (rate below the
        threshold) and its throttling live here, where alerts are decided.
        """
        p = event.payload
        async with self.uow.transaction(applying=event) as tx:
            recipients = await self.repo.recipients_of(p.person_id, tx.session)
            if recipients is None:
                raise PersonNotYetKnown(str(p.person_id))
            state = await self.repo.attendance_of(p.enrolment_id, tx.session)
            state, alert = state.record(
                p.attendance_rate,
                self.timing.attendance_threshold,
                self.clock(),
                self.timing.flip_flop_window,
            )
            await self.repo.save_attendance(tx, state, p.person_id)
            created: list[Notification] = []
            if alert:
                facts = {
                    "course_type": p.course_type.value,
                    "attendance_percent": round(p.attendance_rate * 100),
                    "threshold_percent": round(self.timing.attendance_threshold * 100),
                    "session_date": f"{p.session_date:%d.%m.%Y}",
                }
                created = await self._create(tx, recipients, Kind.ATTENDANCE_AT_RISK, facts, event)
        if created:
            self.on_change()

    async def _notify(
        self, event: Event, person_id: uuid.UUID, kind: Kind, facts: dict[str, Any]
    ) -> None:
        async with self.uow.transaction(applying=event) as tx:
            recipients = await self.repo.recipients_of(person_id, tx.session)
            if recipients is None:
                raise PersonNotYetKnown(str(person_id))
            created = await self._create(tx, recipients, kind, facts, event)
        if created:
            self.on_change()

    async def _create(
        self,
        tx: Transaction,
        recipients: Recipients,
        kind: Kind,
        facts: dict[str, Any],
        event: Event,
    ) -> list[Notification]:
        created = []
        for contact in recipients.told_about(kind, self.routing):
            n = await self._one(
                tx, recipients, contact, kind, facts, str(event.event_id), str(event.correlation_id)
            )
            if n is not None:
                created.append(n)
        return created

    async def _one(
        self,
        tx: Transaction,
        recipients: Recipients,
        contact: ResponsibleContact,
        kind: Kind,
        facts: dict[str, Any],
        cause: str,
        correlation_id: str | None,
    ) -> Notification | None:
        """One notification for one recipient, unless they already have it for this cause."""
        address = contact.email.lower()
        if await self.repo.exists(address, kind.value, cause, tx.session):
            return None
        prefs = await self.repo.preferences_of(address, tx.session)
        priority = self.routing.rule_for(kind, recipients.district_id).priority
        now = self.clock()
        all_facts = {
            **facts,
            "person": recipients.display_name,
            "recipient": contact.name,
            "inbox_url": inbox_link(self.inbox_url, contact.email),
        }
        subject, body = self.templates.render(kind, contact.language, all_facts, "inbox")
        _, email_body = self.templates.render(kind, contact.language, all_facts, "email")
        n = Notification(
            person_id=recipients.person_id,
            district_id=recipients.district_id,
            kind=kind,
            priority=priority,
            recipient_email=contact.email,
            recipient_name=contact.name,
            recipient_role=contact.role,
            language=contact.language,
            subject=subject,
            body=body,
            email_body=email_body,
            facts=facts,
            cause_event_id=cause,
            correlation_id=correlation_id,
            created_at=now,
            escalate_at=(
                now + self.timing.escalate_after
                if priority >= Priority.IMPORTANT and kind is not Kind.ESCALATION
                else None
            ),
        )
        log_lines = [Attempt(channel=Channel.INBOX, at=now, result="delivered")]
        self._plan_email(n, recipients, prefs, now)
        self._plan_webhook(n, prefs, now)
        for channel in (Channel.EMAIL, Channel.WEBHOOK):
            status = getattr(n, f"{channel}_status")
            if status in (DeliveryStatus.OPTED_OUT, DeliveryStatus.SKIPPED, DeliveryStatus.DIGEST):
                if channel is Channel.WEBHOOK and not self.webhook_enabled:
                    continue
                log_lines.append(Attempt(channel=channel, at=now, result=status.value))
        n.deliveries = log_lines
        await self.repo.add(tx, [n])
        return n

    def _plan_email(
        self, n: Notification, recipients: Recipients, prefs: Preferences, now: datetime
    ) -> None:
        office = self.timing.office_hours
        if not recipients.email_consent:
            n.email_status = DeliveryStatus.SKIPPED
        elif not prefs.wants(Channel.EMAIL, n.priority):
            n.email_status = DeliveryStatus.OPTED_OUT
        elif n.priority is Priority.LOW:
            n.email_status = DeliveryStatus.DIGEST
            n.email_next_attempt_at = office.next_open(next_digest(now, self.timing.digest_at))
        else:
            n.email_status = DeliveryStatus.PENDING
            n.email_next_attempt_at = office.next_open(now)  # quiet hours: wait for the office

    def _plan_webhook(self, n: Notification, prefs: Preferences, now: datetime) -> None:
        if not self.webhook_enabled:
            n.webhook_status = DeliveryStatus.SKIPPED
        elif not prefs.wants(Channel.WEBHOOK, n.priority):
            n.webhook_status = DeliveryStatus.OPTED_OUT
        else:  # machines have no office hours
            n.webhook_status = DeliveryStatus.PENDING
            n.webhook_next_attempt_at = now

    # --- escalation --------------------------------------------------------------------
    async def escalate_due(self, limit: int = 50) -> int:
        """Tell the coordinator about important alerts nobody has read; returns how many.

        An alert goes to several people (caseworker, mentor, guide); it escalates
        once, and only if none of them has read it by then.
        """
        now = self.clock()
        escalated = 0
        for original in await self.repo.due_escalations(now, limit):
            # a replica escalating the same alert at the same moment is a write conflict:
            # run again, and take_escalation then says it is taken
            escalated += await retry_transient(functools.partial(self._escalate, original, now))
        if escalated:
            self.on_change()
        return escalated

    async def _escalate(self, original: Notification, now: datetime) -> int:
        """One alert's escalation in one transaction; how many coordinators were told."""
        told = 0
        async with self.uow.transaction() as tx:
            if not await self.repo.take_escalation(tx, original.notification_id, now):
                return 0  # read meanwhile, or another replica took it
            if await self.repo.anyone_read(original, tx.session):
                return 0  # the mentor may be away, but the caseworker has seen it
            recipients = await self.repo.recipients_of(original.person_id, tx.session)
            if recipients is None:
                return 0
            facts = {
                "original_subject": original.subject,
                "original_recipient": original.recipient_name,
                "original_role": original.recipient_role.value,
                "since": f"{original.created_at.astimezone(BERLIN):%d.%m.%Y %H:%M}",
            }
            for coordinator in self._coordinators_of(recipients):
                if coordinator.email.lower() == original.recipient_email:
                    continue
                n = await self._one(
                    tx,
                    recipients,
                    coordinator,
                    Kind.ESCALATION,
                    facts,
                    original.cause_event_id,  # one escalation per alert, however many unread
                    original.correlation_id,
                )
                told += n is not None
        return told

    def _coordinators_of(self, recipients: Recipients) -> list[ResponsibleContact]:
        found = recipients.coordinators()
        fallback = self.coordinators.get(recipients.district_id)
        if not found and fallback:
            found = [
                ResponsibleContact(
                    role=ContactRole.EDUCATION_COORDINATOR,
                    name="Bildungskoordination",
                    email=fallback,
                )
            ]
        return found

    # --- inbox -------------------------------------------------------------------------
    async def get(
        self, notification_id: uuid.UUID, viewer: Principal | None = None
    ) -> Notification:
        """``viewer``: only the recipient (or an admin of the district) sees a
        notification; anyone else's answers 404."""
        n = await self.repo.get(notification_id)
        if n is None or (viewer is not None and not _addressed_to(n, viewer)):
            raise NotFound(f"notification {notification_id} not found")
        return n

    async def mark_read(
        self, notification_id: uuid.UUID, viewer: Principal | None = None
    ) -> Notification:
        if viewer is not None:
            await self.get(notification_id, viewer)
        n = await self.repo.mark_read(notification_id, self.clock())
        if n is None:
            raise NotFound(f"notification {notification_id} not found")
        self.on_change()
        return n

    async def archive(
        self, notification_id: uuid.UUID, viewer: Principal | None = None
    ) -> Notification:
        if viewer is not None:
            await self.get(notification_id, viewer)
        n = await self.repo.archive(notification_id, self.clock())
        if n is None:
            raise NotFound(f"notification {notification_id} not found")
        self.on_change()
        return n

    async def delivery_log(
        self, notification_id: uuid.UUID, viewer: Principal | None = None
    ) -> list[Attempt]:
        return (await self.get(notification_id, viewer)).deliveries


Send = Callable[[Notification, datetime], Awaitable[None]]


@dataclass
class ChannelDelivery:
    """Sends one channel's due deliveries; retries temporary failures with growing delays.

    A permanent failure, or temporary ones until ``max_attempts``, marks the
    channel failed on the notification; every attempt is a line in its log.
    """

    channel: Channel
    uow: UnitOfWork
    repo: NotificationsRepository
    send: Send
    max_attempts: int = 6
    office_hours: OfficeHours | None = None  # email waits for them on retry too
    clock: Callable[[], datetime] = _now

    async def deliver_due(self, limit: int = 50) -> int:
        """Try every due delivery once; returns how many were tried.

        Claiming and recording success are one write each for the whole batch (and
        one transaction with the "delivered" events): per delivery they were the
        service's biggest share of database work under load."""
        now = self.clock()
        due = await self.repo.claim_due(self.channel, now, now + timedelta(minutes=2), limit)
        sent = await asyncio.gather(*(self._deliver(n, now) for n in due))
        delivered = [n for n, ok in zip(due, sent, strict=True) if ok]
        if delivered:
            async with self.uow.transaction() as tx:
                await self.repo.record_sent(
                    tx,
                    self.channel,
                    [n.notification_id for n in delivered],
                    self._attempt(delivered[0], "sent"),
                )
                if self.channel is Channel.EMAIL:
                    for n in delivered:
                        tx.publish(
                            NotificationDelivered.create(
                                NotificationDeliveredV1(
                                    notification_id=n.notification_id,
                                    person_id=n.person_id,
                                    district_id=n.district_id,
                                    recipient_role=n.recipient_role,
                                    channel="email",
                                    kind=n.kind.value,
                                ),
                                producer=PRODUCER,
                            )
                        )
        return len(due)

    async def _deliver(self, n: Notification, now: datetime) -> bool:
        """Send one claimed delivery; True if sent. A failure is recorded here."""
        ch = self.channel.value
        attempts = getattr(n, f"{ch}_attempts") + 1
        try:
            await self.send(n, now)
        except TemporaryDeliveryError as exc:
            if attempts >= self.max_attempts:
                await self._give_up(n, attempts, str(exc))
                return False
            retry_at = next_attempt(attempts, now)
            if self.office_hours is not None:
                retry_at = self.office_hours.next_open(retry_at)
            await self.repo.record_delivery(
                None,
                n.notification_id,
                {
                    f"{ch}_attempts": attempts,
                    f"{ch}_last_error": str(exc)[:500],
                    f"{ch}_status": DeliveryStatus.PENDING.value,
                    f"{ch}_next_attempt_at": retry_at,
                },
                [self._attempt(n, "temporary_failure", str(exc))],
            )
            log.warning("%s %s failed (attempt %d): %s", ch, n.notification_id, attempts, exc)
            return False
        except PermanentDeliveryError as exc:
            await self._give_up(n, attempts, str(exc))
            return False
        return True

    async def _give_up(self, n: Notification, attempts: int, error: str) -> None:
        """Mark the channel failed and tell whoever watches (ops, partner tools)."""
        ch = self.channel.value
        async with self.uow.transaction() as tx:
            await self.repo.record_delivery(
                tx,
                n.notification_id,
                {
                    f"{ch}_attempts": attempts,
                    f"{ch}_last_error": error[:500],
                    f"{ch}_status": DeliveryStatus.FAILED.value,
                    f"{ch}_next_attempt_at": None,
                },
                [self._attempt(n, "failed", error)],
            )
            tx.publish(
                NotificationFailed.create(
                    NotificationFailedV1(
                        notification_id=n.notification_id,
                        person_id=n.person_id,
                        district_id=n.district_id,
                        recipient_role=n.recipient_role,
                        channel="email" if self.channel is Channel.EMAIL else "webhook",
                        kind=n.kind.value,
                        attempts=attempts,
                        # an SMTP answer may quote the address: events carry none
                        error=scrub_text(error)[:500],
                    ),
                    producer=PRODUCER,
                )
            )
        log.warning(
            "%s %s failed for good after %d attempts: %s", ch, n.notification_id, attempts, error
        )

    def _attempt(self, n: Notification, result: str, detail: str | None = None) -> Attempt:
        return Attempt(
            channel=self.channel,
            at=self.clock(),
            result=result,
            detail=detail[:500] if detail else None,
        )


@dataclass
class DigestDelivery:
    """Sends each recipient one email with all their low-priority items that are due."""

    repo: NotificationsRepository
    sender: SmtpSender
    templates: Templates
    inbox_url: str
    max_attempts: int = 6
    office_hours: OfficeHours = field(default_factory=OfficeHours)
    clock: Callable[[], datetime] = _now

    async def send_due(self) -> int:
        """Returns how many digest emails were tried."""
        now = self.clock()
        items = await self.repo.claim_digest(now, uuid.uuid4().hex, now + timedelta(minutes=5))
        tried = 0
        for address, group in groupby(items, key=lambda n: n.recipient_email):
            await self._send(address, list(group), now)
            tried += 1
        return tried

    async def _send(self, address: str, items: list[Notification], now: datetime) -> None:
        first = items[0]
        subject, body = self.templates.render_digest(
            first.language,
            {
                "recipient": first.recipient_name,
                "items": [{"subject": n.subject, "kind": n.kind.value} for n in items],
                "inbox_url": inbox_link(self.inbox_url, address),
            },
        )
        ids = [n.notification_id for n in items]
        attempts = max(n.email_attempts for n in items) + 1

        def log_line(result: str, detail: str | None = None) -> Attempt:
            return Attempt(channel=Channel.EMAIL, at=now, result=result, detail=detail)

        try:
            await self.sender.send(
                Email(
                    to_name=first.recipient_name,
                    to_address=address,
                    subject=subject,
                    body=body,
                    message_id_hint=f"digest-{ids[0]}",
                )
            )
        except TemporaryDeliveryError as exc:
            give_up = attempts >= self.max_attempts
            await self.repo.release_digest(
                ids,
                {
                    "email_attempts": attempts,
                    "email_last_error": str(exc)[:500],
                    "email_status": (
                        DeliveryStatus.FAILED if give_up else DeliveryStatus.DIGEST
                    ).value,
                    "email_next_attempt_at": (
                        None
                        if give_up
                        else self.office_hours.next_open(next_attempt(attempts, now))
                    ),
                },
                log_line("failed" if give_up else "temporary_failure", str(exc)[:500]),
            )
            return
        except PermanentDeliveryError as exc:
            await self.repo.release_digest(
                ids,
                {
                    "email_attempts": attempts,
                    "email_last_error": str(exc)[:500],
                    "email_status": DeliveryStatus.FAILED.value,
                    "email_next_attempt_at": None,
                },
                log_line("failed", str(exc)[:500]),
            )
            return
        await self.repo.release_digest(
            ids,
            {
                "email_attempts": attempts,
                "email_status": DeliveryStatus.SENT.value,
                "email_sent_at": now,
                "email_last_error": None,
                "email_next_attempt_at": None,
            },
            log_line("sent", f"daily digest of {len(ids)}"),
        )


@dataclass
class Dispatcher:
    """The one background loop: channels every ``poll_s`` or when kicked; digest and
    escalation, which are due by the clock and not by a new notification, every ``poll_s``
    only (a burst of kicks would otherwise add a write per notification)."""

    email: ChannelDelivery
    digest: DigestDelivery
    escalation: Callable[[], Awaitable[int]]
    webhook: ChannelDelivery | None = None
    poll_s: float = 1.0
    webhook_sender: WebhookSender | None = None
    loop: Periodic = field(init=False)
    _timed_at: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        self.loop = Periodic("notifications-dispatch", self.poll_s, self._round)

    def kick(self) -> None:
        self.loop.kick()

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()
        if self.webhook_sender is not None:
            await self.webhook_sender.close()

    async def deliver_due(self) -> int:
        """Emails and webhooks that are due, once each."""
        tried = await self.email.deliver_due()
        if self.webhook is not None:
            tried += await self.webhook.deliver_due()
        return tried

    async def _round(self) -> bool:
        busy = await self.deliver_due()
        if monotonic() - self._timed_at >= self.poll_s:
            self._timed_at = monotonic()
            await self.digest.send_due()
            await self.escalation()
        return busy > 0
