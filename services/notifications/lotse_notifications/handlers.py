"""notifications' use cases: keep recipients, create notifications, deliver email."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lotse_shared.background import Periodic
from lotse_shared.contracts.courses import CourseCompleted, CourseDropped
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import PersonRegistered, PersonUpdated
from lotse_shared.contracts.notifications import NotificationDelivered, NotificationDeliveredV1
from lotse_shared.contracts.placement import SuggestionsReady
from lotse_shared.errors import NotFound
from lotse_shared.messaging.errors import PersonNotYetKnown
from lotse_shared.messaging.parking import ParkingLot
from lotse_shared.persistence.mongo import UnitOfWork

from .domain.model import EmailStatus, Kind, Notification, Recipients, next_attempt
from .email import Email, PermanentEmailError, SmtpSender, TemporaryEmailError
from .repository import NotificationsRepository
from .templates import Templates

PRODUCER = "notifications"
log = logging.getLogger("lotse.notifications")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class NotificationsHandlers:
    uow: UnitOfWork
    repo: NotificationsRepository
    parking: ParkingLot
    templates: Templates
    inbox_url: str
    clock: Callable[[], datetime] = _now
    on_created: Callable[[], None] = lambda: None

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
            await self.repo.save_recipients(tx, recipients)
        await self.parking.replay_for([str(p.person_id)])

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

    async def _notify(
        self, event: Event, person_id: uuid.UUID, kind: Kind, facts: dict[str, Any]
    ) -> None:
        async with self.uow.transaction(applying=event) as tx:
            recipients = await self.repo.recipients_of(person_id, tx.session)
            if recipients is None:
                raise PersonNotYetKnown(str(person_id))
            created = []
            for contact in recipients.told_about(kind):
                if await self.repo.exists(
                    contact.email.lower(), kind.value, str(event.event_id), tx.session
                ):
                    continue
                all_facts = {
                    **facts,
                    "person": recipients.display_name,
                    "recipient": contact.name,
                    "inbox_url": f"{self.inbox_url}?recipient={contact.email}",
                }
                subject, body = self.templates.render(kind, contact.language, all_facts)
                created.append(
                    Notification(
                        person_id=person_id,
                        district_id=recipients.district_id,
                        kind=kind,
                        recipient_email=contact.email,
                        recipient_name=contact.name,
                        recipient_role=contact.role,
                        language=contact.language,
                        subject=subject,
                        body=body,
                        facts=facts,
                        cause_event_id=str(event.event_id),
                        correlation_id=str(event.correlation_id),
                        created_at=self.clock(),
                        email_status=(
                            EmailStatus.PENDING if recipients.email_consent else EmailStatus.SKIPPED
                        ),
                        email_next_attempt_at=self.clock() if recipients.email_consent else None,
                    )
                )
            await self.repo.add(tx, created)
        if created:
            self.on_created()

    # --- inbox -------------------------------------------------------------------------
    async def get(self, notification_id: uuid.UUID) -> Notification:
        n = await self.repo.get(notification_id)
        if n is None:
            raise NotFound(f"notification {notification_id} not found")
        return n

    async def mark_read(self, notification_id: uuid.UUID) -> Notification:
        n = await self.repo.mark_read(notification_id, self.clock())
        if n is None:
            raise NotFound(f"notification {notification_id} not found")
        return n


@dataclass
class EmailDelivery:
    """Sends pending emails; retries temporary failures with growing delays.

    A notification is in the inbox before any email is tried, so a failing
    channel never loses it; a permanent failure is recorded on the notification.
    """

    uow: UnitOfWork
    repo: NotificationsRepository
    sender: SmtpSender
    max_attempts: int = 6
    poll_s: float = 1.0
    clock: Callable[[], datetime] = _now

    def __post_init__(self) -> None:
        self.loop = Periodic("email-delivery", self.poll_s, self._round)

    def kick(self) -> None:
        self.loop.kick()

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _round(self) -> bool:
        return await self.deliver_due() > 0

    async def deliver_due(self, limit: int = 50) -> int:
        """Try every due email once; returns how many were tried."""
        now = self.clock()
        due = await self.repo.due_emails(now, limit)
        tried = await asyncio.gather(*(self._deliver(n, now) for n in due))
        return sum(tried)

    async def _deliver(self, n: Notification, now: datetime) -> int:
        if not await self.repo.claim_email(n.notification_id, now + timedelta(minutes=2), now):
            return 0  # another replica has it
        attempts = n.email_attempts + 1
        try:
            await self.sender.send(
                Email(
                    to_name=n.recipient_name,
                    to_address=n.recipient_email,
                    subject=n.subject,
                    body=n.body,
                    message_id_hint=str(n.notification_id),
                )
            )
        except TemporaryEmailError as exc:
            give_up = attempts >= self.max_attempts
            await self.repo.record_email(
                None,
                n.notification_id,
                {
                    "email_attempts": attempts,
                    "email_last_error": str(exc)[:500],
                    "email_status": (EmailStatus.FAILED if give_up else EmailStatus.PENDING).value,
                    "email_next_attempt_at": None if give_up else next_attempt(attempts, now),
                },
            )
            log.warning("email %s failed (attempt %d): %s", n.notification_id, attempts, exc)
            return 1
        except PermanentEmailError as exc:
            await self.repo.record_email(
                None,
                n.notification_id,
                {
                    "email_attempts": attempts,
                    "email_last_error": str(exc)[:500],
                    "email_status": EmailStatus.FAILED.value,
                    "email_next_attempt_at": None,
                },
            )
            log.warning("email %s failed permanently: %s", n.notification_id, exc)
            return 1
        async with self.uow.transaction() as tx:
            await self.repo.record_email(
                tx,
                n.notification_id,
                {
                    "email_attempts": attempts,
                    "email_status": EmailStatus.SENT.value,
                    "email_sent_at": self.clock(),
                    "email_last_error": None,
                    "email_next_attempt_at": None,
                },
            )
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
        return 1
