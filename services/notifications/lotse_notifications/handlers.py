"""notifications' use cases: keep recipients, create notifications, deliver them.

An event becomes one notification per recipient in the inbox, in the same
transaction that records the event as applied; email and webhook are states
on that notification that background loops work off. A failing channel so
never loses the notification: it is in the inbox before any channel is tried.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from lotse_shared.auth import Principal
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
from lotse_shared.contracts.placement import (
    OpeningClosed,
    OpeningPublished,
    SuggestionsReady,
    SuggestionV1,
)
from lotse_shared.erasure import apply_erasure
from lotse_shared.errors import NotFound, NotYetApplicable, PersonNotYetKnown
from lotse_shared.persistence.retry import retry_transient
from lotse_shared.persistence.unit import Transaction, UnitOfWork, WaitingEvents

from .access import addressed_to
from .domain.model import (
    BERLIN,
    DEFAULT_ROUTING,
    AlertPolicy,
    Attempt,
    Cadence,
    Channel,
    DeliveryStatus,
    Kind,
    Notification,
    OfficeHours,
    Preferences,
    Priority,
    Recipients,
    RoutingTable,
    SuggestionEntry,
    digest_due,
)
from .inbox import InboxCounts, InboxFilter, InboxPage
from .repository import Notifications
from .templates import Templates

log = logging.getLogger("lotse.notifications")


def _now() -> datetime:
    return datetime.now(UTC)


def person_link(inbox_url: str, person_id: uuid.UUID | None) -> str:
    """Where an email about one person leads: their file in the portal, beside the
    portal's inbox (``<portal>/inbox`` gives ``<portal>/people/<id>``). An item about no
    one (a digest), or an inbox address of another shape, leads to the inbox. No
    recipient in the link: the portal shows whoever signs in their own."""
    base, inbox, rest = inbox_url.rstrip("/").rpartition("/inbox")
    if person_id is None or not inbox or rest:
        return inbox_url
    return f"{base}/people/{person_id}"


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
    repo: Notifications
    parking: WaitingEvents
    templates: Templates
    inbox_url: str
    routing: RoutingTable = DEFAULT_ROUTING
    timing: Timing = field(default_factory=Timing)
    policy: AlertPolicy = field(default_factory=AlertPolicy)
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
            before = await self.repo.recipients_of(p.person_id, tx)
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
        """Announce what is new and worth it, once per person and opening.

        Suggestions a completion caused join that completion's alert (one alert per
        thing that happened); others become an alert of their own or wait for the
        digest, as the recipient's cadence says. A forecast pair that is now reached
        updates its first announcement. Weak ones (below ``policy.min_score``) stay in
        placement's file of the person and are not announced.
        """
        p = event.payload
        async with self.uow.transaction(applying=event) as tx:
            recipients = await self.repo.recipients_of(p.person_id, tx)
            if recipients is None:
                raise PersonNotYetKnown(str(p.person_id))
            completion = await self._completion_behind(event, tx)
            changed = False
            for contact in recipients.told_about(Kind.SUGGESTIONS_READY, self.routing):
                changed |= await self._announce(tx, recipients, contact, event, completion)
        if changed:
            self.on_change()

    async def _completion_behind(self, event: SuggestionsReady, tx: Transaction) -> str | None:
        """The completion event these suggestions follow, once this service applied it."""
        if event.payload.trigger != "course_completed" or event.causation_id is None:
            return None
        cause = str(event.causation_id)
        if not await tx.has_applied(cause):
            # it overtook the completion (or the completion is parked): wait for it, so the
            # two still become one alert; parked events are replayed once it is applied
            raise NotYetApplicable(
                str(event.payload.person_id), f"course completion {cause} not applied yet"
            )
        return cause

    async def _announce(
        self,
        tx: Transaction,
        recipients: Recipients,
        contact: ResponsibleContact,
        event: SuggestionsReady,
        completion: str | None,
    ) -> bool:
        """One recipient's share of a suggestion set; True if their inbox changed."""
        p = event.payload
        address = contact.email.lower()
        worth = [s for s in p.suggestions if s.score >= self.policy.min_score]
        key = {
            str(s.opening_id): SuggestionEntry.key(address, p.person_id, str(s.opening_id))
            for s in worth
        }
        known = await self.repo.entries_by_key(list(key.values()), tx)
        fresh = [s for s in worth if key[str(s.opening_id)] not in known]
        now_reached = [
            known[key[str(s.opening_id)]]
            for s in worth
            if key[str(s.opening_id)] in known
            and known[key[str(s.opening_id)]].suggestion.get("forecast")
            and not s.forecast
        ]
        level = p.german_level.value if p.german_level else None
        note = f"{level or 'Niveau'} jetzt erreicht"
        reached = {  # what changed about each: the level, and so the reasons and score
            key[str(s.opening_id)]: {
                "forecast": False,
                "confirmed_note": note,
                "reasons": s.reasons,
                "score": s.score,
            }
            for s in worth
        }
        now = self.clock()
        carrier = None
        if completion is not None:
            carrier = await self.repo.find_by_cause(
                address, Kind.COURSE_COMPLETED.value, completion, tx
            )
        # a reached forecast still waiting for its digest is news for the completion's
        # alert: it moves there; one already shown is updated where it was shown
        moved = [e for e in now_reached if carrier is not None and e.status == "waiting"]
        changed = False
        for entry in (e for e in now_reached if e not in moved):
            await self._change_entry(tx, entry, reached[entry.entry_id])
            changed = True
        status, due_at, carried_by = "announced", None, None
        if carrier is not None:
            added = [
                *map(_entry_facts, fresh),
                *({**e.suggestion, **reached[e.entry_id]} for e in moved),
            ]
            for e, suggestion in zip(moved, added[len(fresh) :], strict=True):
                await self.repo.move_entry(tx, e.entry_id, carrier.notification_id, suggestion)
            confirmed = [e.suggestion["title"] for e in now_reached if e not in moved]
            await self._join(tx, carrier, added, confirmed, now)
            carried_by, changed = carrier.notification_id, True
        elif not fresh:
            return changed
        else:
            prefs = await self.repo.preferences_of(address, tx)
            rule = self.routing.rule_for(Kind.SUGGESTIONS_READY, recipients.district_id)
            cadence = self.policy.for_district(recipients.district_id).cadence_for(
                Kind.SUGGESTIONS_READY, prefs, rule.priority
            )
            if cadence is Cadence.IMMEDIATE:
                facts = {"german_level": level, "suggestions": [_entry_facts(s) for s in fresh]}
                n = await self._one(
                    tx,
                    recipients,
                    contact,
                    Kind.SUGGESTIONS_READY,
                    facts,
                    str(event.event_id),
                    str(event.correlation_id),
                )
                carried_by, changed = (n.notification_id if n else None), True
            else:
                office = self.timing.office_hours
                status, due_at = "waiting", digest_due(cadence, now, self.timing.digest_at, office)
        await self.repo.add_entries(
            tx,
            [
                SuggestionEntry(
                    entry_id=key[str(s.opening_id)],
                    recipient_email=address,
                    recipient_name=contact.name,
                    recipient_role=contact.role,
                    language=contact.language,
                    person_id=p.person_id,
                    district_id=recipients.district_id,
                    person=recipients.display_name,
                    emailable=recipients.email_consent,
                    opening_id=str(s.opening_id),
                    suggestion=_entry_facts(s),
                    score=s.score,
                    status=status,
                    notification_id=carried_by,
                    created_at=now,
                    due_at=due_at,
                    cause_event_id=str(event.event_id),
                    correlation_id=str(event.correlation_id),
                )
                for s in fresh
            ],
        )
        return changed

    async def _join(
        self,
        tx: Transaction,
        carrier: Notification,
        added: list[dict[str, Any]],
        confirmed: list[str],
        now: datetime,
    ) -> None:
        """Add a completion's suggestions to its alert (``confirmed``: titles shown
        before whose level is now reached). If its email still waits for them, it may
        go at once; if it went already, the alert turns unread again so the caseworker
        sees what was added."""
        facts = dict(carrier.facts)
        facts["suggestions"] = [*facts.get("suggestions", []), *added]
        facts["confirmed"] = [*facts.get("confirmed", []), *confirmed]
        facts["awaiting_suggestions"] = False
        self._rerender(carrier, facts)
        changes: dict[str, Any] = {"updated_at": now}
        if carrier.email.status is not DeliveryStatus.PENDING and carrier.read_at and added:
            changes["read_at"] = None
            await self.repo.forget_tallies(tx, [carrier.recipient_email.lower()])
        release = None
        if carrier.email.status is DeliveryStatus.PENDING:
            release = self.timing.office_hours.next_open(now)
        await self.repo.replace_content(tx, carrier, changes, release_email_at=release)

    async def _change_entry(
        self, tx: Transaction, entry: SuggestionEntry, update: dict[str, Any]
    ) -> None:
        """Change one announced pair, on the entry and in the alert or digest carrying it."""
        suggestion = {**entry.suggestion, **update}
        await self.repo.update_entry_suggestion(tx, entry.entry_id, suggestion)
        if entry.notification_id is None:
            return  # still waiting for its digest, which will show it as it is now
        carrier = await self.repo.get(entry.notification_id, tx)
        if carrier is None:
            return
        facts = _with_suggestion(carrier.facts, entry.person_id, entry.opening_id, update)
        self._rerender(carrier, facts)
        await self.repo.replace_content(tx, carrier, {"updated_at": self.clock()})

    async def opening_closed(self, event: OpeningClosed) -> None:
        """Left out of digests still to come; marked "nicht mehr verfügbar" where shown."""
        await self._unavailable(event, str(event.payload.opening_id))

    async def opening_published(self, event: OpeningPublished) -> None:
        """A re-sent opening without free seats is as good as closed for a caseworker."""
        if event.payload.seats_free > 0:
            await self.uow.handled_without_effects(event, "seats free")
            return
        await self._unavailable(event, str(event.payload.opening_id))

    async def _unavailable(self, event: Event, opening_id: str) -> None:
        async with self.uow.transaction(applying=event) as tx:
            entries = await self.repo.entries_for_opening(opening_id, tx)
            waiting = [e.entry_id for e in entries if e.status == "waiting"]
            await self.repo.withdraw_entries(tx, waiting)
            shown = [
                e
                for e in entries
                if e.status == "announced" and not e.suggestion.get("unavailable")
            ]
            for entry in shown:
                await self._change_entry(tx, entry, {"unavailable": True})
        if shown:
            self.on_change()

    async def course_completed(self, event: CourseCompleted) -> None:
        """Caseworker, mentor and coordinator are told; the caseworker's email waits a
        little for the suggestions the completion causes, so both go out as one."""
        p = event.payload
        facts = {
            "level_reached": p.level_reached.value,
            "completed_on": f"{p.completed_on:%d.%m.%Y}",
            "course_type": p.course_type.value,
        }
        await self._notify(event, p.person_id, Kind.COURSE_COMPLETED, facts, with_suggestions=True)
        # its suggestions may have arrived first and be parked: join them now
        await self.parking.replay_for([str(p.person_id)])

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
            recipients = await self.repo.recipients_of(p.person_id, tx)
            if recipients is None:
                raise PersonNotYetKnown(str(p.person_id))
            state = await self.repo.attendance_of(p.enrolment_id, tx)
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
        self,
        event: Event,
        person_id: uuid.UUID,
        kind: Kind,
        facts: dict[str, Any],
        *,
        with_suggestions: bool = False,
    ) -> None:
        async with self.uow.transaction(applying=event) as tx:
            recipients = await self.repo.recipients_of(person_id, tx)
            if recipients is None:
                raise PersonNotYetKnown(str(person_id))
            created = await self._create(tx, recipients, kind, facts, event, with_suggestions)
        if created:
            self.on_change()

    async def _create(
        self,
        tx: Transaction,
        recipients: Recipients,
        kind: Kind,
        facts: dict[str, Any],
        event: Event,
        with_suggestions: bool = False,
    ) -> list[Notification]:
        """One notification per recipient; with ``with_suggestions``, those who are told
        about suggestions get an alert the suggestions will join, its email held for
        ``policy.suggestions_wait``."""
        awaiting = (
            {c.email.lower() for c in recipients.told_about(Kind.SUGGESTIONS_READY, self.routing)}
            if with_suggestions
            else set()
        )
        cause = str(event.event_id)
        contacts = recipients.told_about(kind, self.routing)
        # one read each for who has it already and for everyone's preferences, one write
        told = await self.repo.told_of(kind.value, cause, tx)
        fresh = []
        for contact in contacts:  # one each; a second role of the same address, not again
            if contact.email.lower() not in told:
                told.add(contact.email.lower())
                fresh.append(contact)
        contacts = fresh
        prefs = await self.repo.preferences_for([c.email for c in contacts], tx)
        created = []
        for contact in contacts:
            waits = contact.email.lower() in awaiting
            created.append(
                self._build(
                    recipients,
                    contact,
                    kind,
                    {**facts, "awaiting_suggestions": True} if waits else facts,
                    cause,
                    str(event.correlation_id),
                    prefs[contact.email.lower()],
                    hold=self.policy.suggestions_wait if waits else timedelta(0),
                )
            )
        await self.repo.add(tx, created)
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
        *,
        hold: timedelta = timedelta(0),
    ) -> Notification | None:
        """One notification for one recipient, unless they already have it for this cause."""
        address = contact.email.lower()
        if await self.repo.exists(address, kind.value, cause, tx):
            return None
        prefs = await self.repo.preferences_of(address, tx)
        n = self._build(recipients, contact, kind, facts, cause, correlation_id, prefs, hold=hold)
        await self.repo.add(tx, [n])
        return n

    def _build(
        self,
        recipients: Recipients,
        contact: ResponsibleContact,
        kind: Kind,
        facts: dict[str, Any],
        cause: str,
        correlation_id: str | None,
        prefs: Preferences,
        *,
        hold: timedelta = timedelta(0),
    ) -> Notification:
        """A recipient's notification, its text and its delivery plan, not yet stored."""
        priority = self.routing.rule_for(kind, recipients.district_id).priority
        now = self.clock()
        n = Notification(
            person_id=recipients.person_id,
            district_id=recipients.district_id,
            kind=kind,
            priority=priority,
            recipient_email=contact.email,
            recipient_name=contact.name,
            recipient_role=contact.role,
            language=contact.language,
            subject="",
            body="",
            cause_event_id=cause,
            correlation_id=correlation_id,
            created_at=now,
            escalate_at=(
                now + self.timing.escalate_after
                if priority >= Priority.IMPORTANT and kind is not Kind.ESCALATION
                else None
            ),
        )
        self._rerender(n, {**facts, "person": recipients.display_name})
        log_lines = [Attempt(channel=Channel.INBOX, at=now, result="delivered")]
        self._plan_email(n, recipients.email_consent, prefs, now, hold)
        self._plan_webhook(n, prefs, now)
        for channel in (Channel.EMAIL, Channel.WEBHOOK):
            status = n.channel(channel).status
            if status in (DeliveryStatus.OPTED_OUT, DeliveryStatus.SKIPPED, DeliveryStatus.DIGEST):
                if channel is Channel.WEBHOOK and not self.webhook_enabled:
                    continue
                log_lines.append(Attempt(channel=channel, at=now, result=status.value))
        n.deliveries = log_lines
        return n

    def _rerender(self, n: Notification, facts: dict[str, Any]) -> None:
        """Set facts, subject and both texts of ``n`` from ``facts``. A digest's email is
        written when it is sent (``email_text``), so an erasure meanwhile takes the
        person out of it; its inbox text names no one."""
        n.facts = facts
        n.subject, n.body = self.templates.render(n.kind, n.language, self._text_facts(n), "inbox")
        n.email_body = "" if n.kind is Kind.DIGEST else self.email_text(n)

    def email_text(self, n: Notification) -> str:
        return self.templates.render(n.kind, n.language, self._text_facts(n), "email")[1]

    def _text_facts(self, n: Notification) -> dict[str, Any]:
        return {
            **n.facts,
            "recipient": n.recipient_name,
            "inbox_url": self.inbox_url,
            "person_url": person_link(self.inbox_url, n.person_id),
        }

    def _plan_email(
        self,
        n: Notification,
        consent: bool,
        prefs: Preferences,
        now: datetime,
        hold: timedelta = timedelta(0),
    ) -> None:
        office = self.timing.office_hours
        cadence = self.policy.for_district(n.district_id).cadence_for(n.kind, prefs, n.priority)
        if not consent:
            n.email.status = DeliveryStatus.SKIPPED
        elif not prefs.wants(Channel.EMAIL, n.priority):
            n.email.status = DeliveryStatus.OPTED_OUT
        elif cadence is not Cadence.IMMEDIATE:
            n.email.status = DeliveryStatus.DIGEST
            n.email.next_attempt_at = digest_due(cadence, now, self.timing.digest_at, office)
        elif n.priority >= Priority.CRITICAL:
            # a drop-out cannot wait for Monday morning, but need not wake anyone at night
            n.email.status = DeliveryStatus.PENDING
            n.email.next_attempt_at = self.policy.critical_hours.next_open(now)
        else:
            n.email.status = DeliveryStatus.PENDING
            n.email.next_attempt_at = office.next_open(now + hold)

    def _plan_webhook(self, n: Notification, prefs: Preferences, now: datetime) -> None:
        if not self.webhook_enabled or n.person_id is None:
            n.webhook.status = DeliveryStatus.SKIPPED  # a digest is for people, not tools
        elif not prefs.wants(Channel.WEBHOOK, n.priority):
            n.webhook.status = DeliveryStatus.OPTED_OUT
        else:  # machines have no office hours
            n.webhook.status = DeliveryStatus.PENDING
            n.webhook.next_attempt_at = now

    # --- the digest ----------------------------------------------------------------------
    async def upcoming(self, recipient: str) -> list[SuggestionEntry]:
        """What the recipient's next digests will carry, soonest first."""
        return await self.repo.waiting_entries(recipient)

    async def build_digests(self) -> int:
        """One digest per recipient whose waiting suggestions or deferred emails are due;
        returns how many were built. Its email then goes out like any other."""
        now = self.clock()
        built = 0
        for address in await self.repo.digest_recipients_due(now):
            built += await retry_transient(functools.partial(self._digest_for, address, now))
        if built:
            self.on_change()
        return built

    async def _digest_for(self, address: str, now: datetime) -> int:
        async with self.uow.transaction() as tx:
            entries = await self.repo.due_entries(address, now, tx)
            deferred = await self.repo.due_for_digest(address, now, tx)
            if not entries and not deferred:
                return 0  # another replica built it
            digest_id = uuid.uuid4()
            first = entries[0] if entries else deferred[0]
            n = Notification(
                notification_id=digest_id,
                person_id=None,
                district_id=first.district_id,
                kind=Kind.DIGEST,
                priority=Priority.LOW,
                recipient_email=address,
                recipient_name=first.recipient_name,
                recipient_role=first.recipient_role,
                language=first.language,
                subject="",
                body="",
                cause_event_id=f"digest:{digest_id}",
                created_at=now,
            )
            self._rerender(n, digest_facts(entries, deferred))
            prefs = await self.repo.preferences_of(address, tx)
            emailable = any(e.emailable for e in entries) or bool(deferred)
            self._plan_email(n, emailable, prefs, now)
            self._plan_webhook(n, prefs, now)
            n.deliveries = [Attempt(channel=Channel.INBOX, at=now, result="delivered")]
            await self.repo.add(tx, [n])
            await self.repo.bundle(
                tx,
                digest_id,
                [e.entry_id for e in entries],
                [d.notification_id for d in deferred],
                Attempt(
                    channel=Channel.EMAIL, at=now, result="bundled", detail=f"digest {digest_id}"
                ),
            )
        return 1

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
            if await self.repo.anyone_read(original, tx) or original.person_id is None:
                return 0  # the mentor may be away, but the caseworker has seen it
            recipients = await self.repo.recipients_of(original.person_id, tx)
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
        if n is None or (viewer is not None and not addressed_to(n, viewer)):
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
        n = await self.repo.mark_read(notification_id, self.clock(), archive=True)
        if n is None:
            raise NotFound(f"notification {notification_id} not found")
        self.on_change()
        return n

    async def inbox_page(
        self, f: InboxFilter, offset: int, limit: int, *, counted: bool = True
    ) -> InboxPage:
        return await self.repo.inbox_page(
            f, offset=offset, limit=limit, now=self.clock(), counted=counted
        )

    async def preferences_of(self, recipient: str) -> Preferences:
        return await self.repo.preferences_of(recipient)

    async def save_preferences(self, recipient: str, prefs: Preferences) -> None:
        await self.repo.save_preferences(recipient, prefs)

    async def inbox_counts(self, recipient: str) -> InboxCounts:
        return await self.repo.inbox_counts(recipient, self.clock())

    async def unread_by_person(self, recipient: str, viewer: Principal) -> dict[uuid.UUID, int]:
        """Unread items per person in ``recipient``'s inbox; in someone else's inbox an
        admin counts only their own district's (as they may open only those)."""
        district = None if recipient == viewer.identity else (viewer.district_id or "")
        return await self.repo.unread_by_person(recipient, district)

    async def read_all(self, f: InboxFilter, viewer: Principal) -> int:
        """Mark every unread item of the filter read; in someone else's inbox an admin
        marks only their own district's (as they may open only those)."""
        district = None if f.recipient == viewer.identity else (viewer.district_id or "")
        marked = await self.repo.read_all(f, self.clock(), district)
        if marked:
            self.on_change()
        return marked

    async def delivery_log(
        self, notification_id: uuid.UUID, viewer: Principal | None = None
    ) -> list[Attempt]:
        return (await self.get(notification_id, viewer)).deliveries


def _entry_facts(s: SuggestionV1) -> dict[str, Any]:
    """A suggestion as an alert or a digest shows it, with room for what changes later."""
    return {**s.model_dump(mode="json"), "unavailable": False, "confirmed_note": None}


def _with_suggestion(
    facts: dict[str, Any], person_id: uuid.UUID, opening_id: str, update: dict[str, Any]
) -> dict[str, Any]:
    """``facts`` with one suggestion changed, wherever the alert or digest keeps it."""

    def changed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**s, **update} if s.get("opening_id") == opening_id else s for s in items]

    facts = dict(facts)
    if "suggestions" in facts:
        facts["suggestions"] = changed(facts["suggestions"])
    if "groups" in facts:
        facts["groups"] = [
            {**g, "entries": changed(g["entries"])} if g["person_id"] == str(person_id) else g
            for g in facts["groups"]
        ]
    return facts


def digest_facts(entries: list[SuggestionEntry], deferred: list[Notification]) -> dict[str, Any]:
    """People best first, each with their suggestions best first; then the alerts whose
    email waited for the digest."""
    groups: dict[uuid.UUID, dict[str, Any]] = {}
    for e in sorted(entries, key=lambda e: -e.score):
        group = groups.setdefault(
            e.person_id,
            {
                "person_id": str(e.person_id),
                "person": e.person,
                "emailable": e.emailable,
                "entries": [],
            },
        )
        group["entries"].append(e.suggestion)
    items = [
        {
            "notification_id": str(n.notification_id),
            "person_id": str(n.person_id) if n.person_id else None,
            "kind": n.kind.value,
            "subject": n.subject,
        }
        for n in deferred
    ]
    return {"groups": list(groups.values()), "items": items}
