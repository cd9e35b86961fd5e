"""notifications' composition root: builds everything once, lets tests replace parts."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI

from lotse_shared.auth.http import Authenticator
from lotse_shared.clock import clock_from
from lotse_shared.contracts.notifications import NotificationDelivered, NotificationFailed
from lotse_shared.http import create_http_app
from lotse_shared.service import build_runtime, document_publications, run_lifespan
from lotse_shared.transport import tls_client_context

from .delivery import ChannelDelivery, Dispatcher, EmailGate
from .domain.model import (
    AlertDefaults,
    AlertPolicy,
    Cadence,
    Channel,
    Kind,
    Notification,
    OfficeHours,
    RoutingTable,
)
from .email import SmtpSender, email_for
from .entrypoints.http import make_preferences_router, make_router
from .entrypoints.messaging import register_subscriptions
from .handlers import NotificationsHandlers, Timing
from .live import InboxChanges
from .repository import NotificationsRepository
from .settings import NotificationsSettings
from .templates import Templates
from .webhook import WebhookSender, webhook_body


@dataclass
class Overrides:
    repo: NotificationsRepository | None = None
    sender: SmtpSender | None = None
    webhook: WebhookSender | None = None
    clock: Callable[[], datetime] | None = None  # quiet hours, digest, escalation, throttling


def smtp_tls_context(settings: NotificationsSettings) -> ssl.SSLContext | None:
    """Verifying context for STARTTLS / implicit TLS; None without TLS."""
    if not (settings.smtp_starttls or settings.smtp_tls):
        return None
    ca = settings.smtp_tls_ca_file
    return tls_client_context(str(ca) if ca is not None else None)


def alert_policy(settings: NotificationsSettings) -> AlertPolicy:
    """The alert rules from settings: the defaults, and each district's replacements."""
    defaults = AlertDefaults(
        cadence={Kind(k): Cadence(v) for k, v in settings.alert_cadence.items()},
        daily_email_cap=settings.daily_email_cap,
    )
    districts = {
        district: AlertDefaults(
            cadence=(
                {Kind(k): Cadence(v) for k, v in d.cadence.items()}
                if d.cadence is not None
                else defaults.cadence
            ),
            daily_email_cap=(
                d.daily_email_cap if d.daily_email_cap is not None else defaults.daily_email_cap
            ),
        )
        for district, d in settings.district_alert_defaults.items()
    }
    weekdays = frozenset(range(7) if settings.critical_on_weekends else range(5))
    return AlertPolicy(
        min_score=settings.announce_min_score,
        suggestions_wait=timedelta(seconds=settings.suggestions_wait_s),
        defaults=defaults,
        districts=districts,
        critical_hours=OfficeHours(
            start=settings.critical_hours_start,
            end=settings.critical_hours_end,
            weekdays=weekdays,
            quiet=settings.quiet_hours,
        ),
    )


def create_app(
    settings: NotificationsSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    settings = settings or NotificationsSettings()
    overrides = overrides or Overrides()
    rt = build_runtime(settings)
    repo = overrides.repo or NotificationsRepository(rt.db)
    templates = Templates()
    sender = overrides.sender or SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        settings.mail_from,
        starttls=settings.smtp_starttls,
        implicit_tls=settings.smtp_tls,
        tls_context=smtp_tls_context(settings),
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout_s=settings.smtp_timeout_s,
    )
    webhook = overrides.webhook or (
        WebhookSender(
            settings.webhook_url, settings.webhook_secret, timeout_s=settings.webhook_timeout_s
        )
        if settings.webhook_url
        else None
    )
    office = OfficeHours(
        start=settings.office_hours_start,
        end=settings.office_hours_end,
        quiet=settings.quiet_hours,
    )
    timing = Timing(
        office_hours=office,
        digest_at=settings.digest_at,
        escalate_after=timedelta(seconds=settings.escalate_after_s),
        attendance_threshold=settings.attendance_risk_threshold,
        flip_flop_window=timedelta(seconds=settings.attendance_flip_flop_window_s),
    )
    policy = alert_policy(settings)
    handlers = NotificationsHandlers(
        uow=rt.uow,
        repo=repo,
        parking=rt.parking,
        templates=templates,
        inbox_url=settings.inbox_url,
        routing=RoutingTable.with_overrides(settings.routing_overrides),
        timing=timing,
        policy=policy,
        coordinators=settings.coordinators,
        webhook_enabled=webhook is not None,
    )

    async def send_email(n: Notification, _: datetime) -> None:
        await sender.send(email_for(n, n.email_body or handlers.email_text(n)))

    async def send_webhook(n: Notification, now: datetime) -> None:
        assert webhook is not None
        await webhook.send(webhook_body(n), message_id=str(n.notification_id))

    email = ChannelDelivery(
        Channel.EMAIL,
        rt.uow,
        repo,
        send_email,
        max_attempts=settings.email_max_attempts,
        office_hours=office,
        gate=EmailGate(repo, policy, timing),
        observe=rt.metrics.delivered,
    )
    hook = (
        ChannelDelivery(
            Channel.WEBHOOK,
            rt.uow,
            repo,
            send_webhook,
            max_attempts=settings.email_max_attempts,
            observe=rt.metrics.delivered,
        )
        if webhook is not None
        else None
    )
    dispatcher = Dispatcher(
        email=email,
        digests=handlers.build_digests,
        escalation=handlers.escalate_due,
        webhook=hook,
        poll_s=settings.dispatch_poll_s,
        webhook_sender=webhook,
        next_due=functools.partial(
            repo.next_due, [Channel.EMAIL] if hook is None else [Channel.EMAIL, Channel.WEBHOOK]
        ),
        recheck_s=settings.dispatch_recheck_s,
        gather_s=settings.dispatch_gather_s,
    )
    clock = overrides.clock or clock_from(settings.clock_file)
    handlers.clock = email.clock = dispatcher.clock = clock
    if hook is not None:
        hook.clock = clock
    changes = InboxChanges()
    auth = Authenticator.from_settings(settings)

    def on_change() -> None:
        dispatcher.kick()
        changes.changed()

    handlers.on_change = on_change
    register_subscriptions(rt.subscriptions, handlers)
    rt.parking.attach(rt.subscriptions.dispatch)
    document_publications(rt, [NotificationDelivered, NotificationFailed])
    app = create_http_app(
        rt,
        title="Lotse notifications",
        description="Alerts to the responsible contacts: inbox, email, webhook; digest, "
        "quiet hours, escalation.",
        auth=auth,
        routers=[
            make_router(handlers, auth, changes),
            make_preferences_router(handlers, auth),
        ],
        lifespan=lambda: run_lifespan(
            rt,
            index_setup=[repo.ensure_indexes],
            background=[(dispatcher.start, dispatcher.stop)],
        ),
    )

    app.state.runtime = rt
    app.state.handlers = handlers
    app.state.delivery = dispatcher
    app.state.changes = changes
    return app
