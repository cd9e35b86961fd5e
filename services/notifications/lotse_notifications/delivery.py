"""notifications' delivery loops: email and webhook, worked off the inbox.

A notification is in the inbox before any channel is tried; each channel's state is
kept on the notification. ChannelDelivery sends one channel's due deliveries and
retries temporary failures with growing delays; EmailGate decides whether a due email
may go now (read meanwhile, the daily cap); Dispatcher is the one background loop
that runs them, and the digests and escalations that fall due by the clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import monotonic

from lotse_shared.background import Periodic
from lotse_shared.contracts.notifications import (
    NotificationDelivered,
    NotificationDeliveredV1,
    NotificationFailed,
    NotificationFailedV1,
)
from lotse_shared.logs import scrub_text
from lotse_shared.persistence.unit import UnitOfWork

from .domain.model import (
    BERLIN,
    AlertPolicy,
    Attempt,
    Channel,
    DeliveryStatus,
    Kind,
    Notification,
    OfficeHours,
    Priority,
    next_attempt,
    next_digest,
)
from .failures import PermanentDeliveryError, TemporaryDeliveryError
from .handlers import Timing
from .inbox import READ_BEFORE_SENT
from .mapping import PRODUCER
from .repository import Notifications
from .webhook import WebhookSender

log = logging.getLogger("lotse.notifications")


def _now() -> datetime:
    return datetime.now(UTC)


Send = Callable[[Notification, datetime], Awaitable[None]]
# None: send it; else the state to record instead, when it is due, and why
Verdict = tuple[DeliveryStatus, datetime | None, str] | None


@dataclass
class ChannelDelivery:
    """Sends one channel's due deliveries; retries temporary failures with growing delays.

    A permanent failure, or temporary ones until ``max_attempts``, marks the
    channel failed on the notification; every attempt is a line in its log.
    """

    channel: Channel
    uow: UnitOfWork
    repo: Notifications
    send: Send
    max_attempts: int = 6
    office_hours: OfficeHours | None = None  # email waits for them on retry too
    gate: EmailGate | None = None  # email: skip what was read, keep to the daily cap
    clock: Callable[[], datetime] = _now
    # told of every delivery's outcome (channel, result): sent, skipped, deferred,
    # temporary_failure or failed
    observe: Callable[[str, str], None] = lambda channel, result: None
    batch_size: int = 50  # claimed per round; a full batch: more may be due

    async def deliver_due(self, limit: int | None = None) -> int:
        """Try every due delivery once (at most ``limit``, by default ``batch_size``);
        returns how many were tried.

        Claiming and recording success are one write each for the whole batch (and
        one transaction with the "delivered" events): per delivery they were the
        service's biggest share of database work under load."""
        now = self.clock()
        until = now + timedelta(minutes=2)
        due = await self.repo.claim_due(self.channel, now, until, limit or self.batch_size)
        verdicts = await self.gate.check_all(due, now) if self.gate else [None] * len(due)
        sent = await asyncio.gather(
            *(self._deliver(n, now, v) for n, v in zip(due, verdicts, strict=True))
        )
        delivered = [n for n, ok in zip(due, sent, strict=True) if ok]
        for _ in delivered:
            self.observe(self.channel.value, "sent")
        if delivered:
            async with self.uow.transaction() as tx:
                await self.repo.record_sent(
                    tx,
                    self.channel,
                    [n.notification_id for n in delivered],
                    self._attempt(delivered[0], "sent"),
                )
                if self.channel is Channel.EMAIL:
                    # a digest is about many people: the event names one, so none for it
                    for n in (n for n in delivered if n.person_id is not None):
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

    async def _deliver(self, n: Notification, now: datetime, verdict: Verdict) -> bool:
        """Send one claimed delivery unless the gate's ``verdict`` holds it back; True if
        sent. A failure is recorded here."""
        ch = self.channel.value
        attempts = n.channel(self.channel).attempts + 1
        if verdict is not None:
            status, due, why = verdict
            result = "skipped" if status is DeliveryStatus.READ else "deferred"
            self.observe(ch, result)
            await self.repo.record_delivery(
                None,
                self.channel,
                n.notification_id,
                {"status": status, "next_attempt_at": due},
                [self._attempt(n, result, why)],
            )
            return False
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
                self.channel,
                n.notification_id,
                {
                    "attempts": attempts,
                    "last_error": str(exc)[:500],
                    "status": DeliveryStatus.PENDING,
                    "next_attempt_at": retry_at,
                },
                [self._attempt(n, "temporary_failure", str(exc))],
            )
            log.warning("%s %s failed (attempt %d): %s", ch, n.notification_id, attempts, exc)
            self.observe(ch, "temporary_failure")
            return False
        except PermanentDeliveryError as exc:
            await self._give_up(n, attempts, str(exc))
            return False
        return True

    async def _give_up(self, n: Notification, attempts: int, error: str) -> None:
        """Mark the channel failed and tell whoever watches (ops, partner tools)."""
        ch = self.channel.value
        self.observe(ch, "failed")
        async with self.uow.transaction() as tx:
            await self.repo.record_delivery(
                tx,
                self.channel,
                n.notification_id,
                {
                    "attempts": attempts,
                    "last_error": error[:500],
                    "status": DeliveryStatus.FAILED,
                    "next_attempt_at": None,
                },
                [self._attempt(n, "failed", error)],
            )
            if n.person_id is not None:  # a digest names no one person: no event for it
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
class EmailGate:
    """Whether an email that is due may go now.

    Not when its item was read in the inbox meanwhile (skipped, and the log says why);
    not beyond the recipient's daily cap of immediate emails, where it moves to the next
    digest instead. Critical alerts and digests pass the cap; a retry does not count
    twice. The cap is counted per Berlin day in one conditional write, so replicas
    never both take the last place.
    """

    repo: Notifications
    policy: AlertPolicy
    timing: Timing

    async def check(self, n: Notification, now: datetime) -> Verdict:
        """None: send it; else the state to record instead, when it is due, and why."""
        return (await self.check_all([n], now))[0]

    async def check_all(self, due: list[Notification], now: datetime) -> list[Verdict]:
        """``check`` for a round's emails: one read of their recipients' preferences and
        one count per recipient for all of them (per email, these were two database
        operations each). Within a recipient's share, the first in line get the places
        left under the cap."""
        verdicts: list[Verdict] = [None] * len(due)
        capped: dict[str, list[int]] = {}
        for i, n in enumerate(due):
            if n.read_at is not None:
                verdicts[i] = (DeliveryStatus.READ, None, READ_BEFORE_SENT)
            elif not (
                n.kind is Kind.DIGEST or n.priority >= Priority.CRITICAL or n.email.attempts > 0
            ):
                capped.setdefault(n.recipient_email.lower(), []).append(i)
        if not capped:
            return verdicts
        prefs = await self.repo.preferences_for(list(capped))
        day = now.astimezone(BERLIN).date().isoformat()
        for address, waiting in capped.items():
            by_cap: dict[int, list[int]] = {}
            for i in waiting:  # districts may differ in their cap for the same person
                cap = self.policy.for_district(due[i].district_id).cap_for(prefs[address])
                by_cap.setdefault(cap, []).append(i)
            for cap, line in by_cap.items():
                if cap == 0:
                    continue  # no cap
                taken = await self.repo.take_email_slots(address, day, cap, len(line))
                for i in line[taken:]:
                    verdicts[i] = self._to_digest(cap, now)
        return verdicts

    def _to_digest(self, cap: int, now: datetime) -> Verdict:
        office = self.timing.office_hours
        due = office.next_open(next_digest(now, self.timing.digest_at))
        return (
            DeliveryStatus.DIGEST,
            due,
            f"Tageslimit von {cap} E-Mails erreicht: kommt in die nächste Übersicht",
        )


@dataclass
class Dispatcher:
    """The one background loop: channels when kicked (a notification was made here) or
    when something is due; digests and escalation, which are due by the clock and not by
    a new notification, at most every ``poll_s`` (a burst of kicks would otherwise add a
    write per notification).

    With nothing to do it asks when the next email, webhook, digest or escalation falls
    due (``next_due``) and sleeps until then, at most ``recheck_s``: what another replica
    made, or a claim a crashed one left, is found by then. An idle service so costs the
    database a few queries per ``recheck_s``, not per second.

    A kick starts a round ``gather_s`` later, not at once: under traffic every new
    notification kicks, and a round per notification cost four database operations
    each (look, claim, record, mark its event sent); the notifications made meanwhile
    go in the same round. Email is not instant anyway; the inbox row already is."""

    email: ChannelDelivery
    digests: Callable[[], Awaitable[int]]
    escalation: Callable[[], Awaitable[int]]
    webhook: ChannelDelivery | None = None
    poll_s: float = 1.0
    webhook_sender: WebhookSender | None = None
    next_due: Callable[[], Awaitable[datetime | None]] | None = None
    recheck_s: float = 30.0
    gather_s: float = 0.0
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    loop: Periodic = field(init=False)
    _timed_at: float = field(init=False, default=float("-inf"))
    _kicked: bool = field(init=False, default=False)
    _gathering: asyncio.TimerHandle | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.loop = Periodic("notifications-dispatch", self.poll_s, self._round)

    def kick(self) -> None:
        self._kicked = True
        if self.gather_s <= 0:
            self.loop.kick()
        elif self._gathering is None:
            self._gathering = asyncio.get_running_loop().call_later(self.gather_s, self._gathered)

    def _gathered(self) -> None:
        self._gathering = None
        self.loop.kick()

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        if self._gathering is not None:
            self._gathering.cancel()
            self._gathering = None
        await self.loop.stop()
        if self.webhook_sender is not None:
            await self.webhook_sender.close()

    async def deliver_due(self) -> int:
        """Emails and webhooks that are due, once each."""
        return sum(await self._deliver_each())

    async def _deliver_each(self) -> list[int]:
        tried = [await self.email.deliver_due()]
        if self.webhook is not None:
            tried.append(await self.webhook.deliver_due())
        return tried

    async def _round(self) -> bool:
        kicked, self._kicked = self._kicked, False
        each = await self._deliver_each()
        busy = sum(each)
        # only a full batch leaves more due now; anything else, one more look finds nothing
        channels = [self.email] if self.webhook is None else [self.email, self.webhook]
        full = any(n >= ch.batch_size for n, ch in zip(each, channels, strict=True))
        timed = 0
        if monotonic() - self._timed_at >= self.poll_s:
            self._timed_at = monotonic()
            timed = await self.digests() + await self.escalation()
        # under traffic (kicked by new notifications) it keeps to poll_s; it asks when
        # the next item is due only when it woke by itself and found nothing to do
        quiet = not (kicked or busy or timed)
        self.loop.every_s = await self._idle_wait() if quiet else self.poll_s
        return full

    async def _idle_wait(self) -> float:
        """Seconds until the next due item (at least ``poll_s``, at most ``recheck_s``)."""
        if self.next_due is None:
            return self.poll_s
        due = await self.next_due()
        if due is None:
            return self.recheck_s
        return min(max((due - self.clock()).total_seconds(), self.poll_s), self.recheck_s)
