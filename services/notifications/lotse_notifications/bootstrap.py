"""notifications' composition root: builds everything once, lets tests replace parts."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lotse_shared.auth.http import Authenticator
from lotse_shared.contracts.notifications import NotificationDelivered, NotificationFailed
from lotse_shared.http import create_http_app
from lotse_shared.service import build_runtime, document_publications, run_lifespan
from lotse_shared.transport import tls_client_context

from .domain.model import Channel, Notification, OfficeHours, RoutingTable
from .email import Email, SmtpSender
from .entrypoints.http import (
    login_page,
    make_browser_router,
    make_preferences_router,
    make_router,
)
from .entrypoints.messaging import register_subscriptions
from .handlers import ChannelDelivery, DigestDelivery, Dispatcher, NotificationsHandlers, Timing
from .live import InboxChanges
from .repository import NotificationsRepository
from .settings import NotificationsSettings
from .templates import Templates
from .webhook import WebhookSender


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
    handlers = NotificationsHandlers(
        uow=rt.uow,
        repo=repo,
        parking=rt.parking,
        templates=templates,
        inbox_url=settings.inbox_url,
        routing=RoutingTable.with_overrides(settings.routing_overrides),
        timing=timing,
        coordinators=settings.coordinators,
        webhook_enabled=webhook is not None,
    )

    async def send_email(n: Notification, _: datetime) -> None:
        await sender.send(
            Email(
                to_name=n.recipient_name,
                to_address=n.recipient_email,
                subject=n.subject,
                body=n.email_body or n.body,
                message_id_hint=str(n.notification_id),
            )
        )

    async def send_webhook(n: Notification, now: datetime) -> None:
        assert webhook is not None
        await webhook.send(
            {
                "notification_id": str(n.notification_id),
                "kind": n.kind.value,
                "priority": n.priority.name.lower(),
                "person_id": str(n.person_id),
                "district_id": n.district_id,
                "recipient_role": n.recipient_role.value,
                "created_at": n.created_at.isoformat(),
            },
            int(now.timestamp()),
        )

    email = ChannelDelivery(
        Channel.EMAIL,
        rt.uow,
        repo,
        send_email,
        max_attempts=settings.email_max_attempts,
        office_hours=office,
    )
    hook = (
        ChannelDelivery(
            Channel.WEBHOOK, rt.uow, repo, send_webhook, max_attempts=settings.email_max_attempts
        )
        if webhook is not None
        else None
    )
    digest = DigestDelivery(
        repo,
        sender,
        templates,
        settings.inbox_url,
        max_attempts=settings.email_max_attempts,
        office_hours=office,
    )
    dispatcher = Dispatcher(
        email=email,
        digest=digest,
        escalation=handlers.escalate_due,
        webhook=hook,
        poll_s=settings.dispatch_poll_s,
        webhook_sender=webhook,
    )
    if overrides.clock is not None:
        handlers.clock = email.clock = digest.clock = overrides.clock
        if hook is not None:
            hook.clock = overrides.clock
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
            make_router(handlers, auth),
            make_preferences_router(handlers, auth),
            make_browser_router(handlers, templates, changes, auth),
        ],
        lifespan=lambda: run_lifespan(
            rt,
            index_setup=[repo.ensure_indexes],
            background=[(dispatcher.start, dispatcher.stop)],
        ),
    )

    @app.exception_handler(StarletteHTTPException)
    async def sign_in_first(request: Request, exc: StarletteHTTPException) -> Response:
        # the inbox page without a (valid) token: the sign-in form, still a 401
        if exc.status_code == 401 and request.url.path == "/inbox":
            return HTMLResponse(login_page(templates), 401, headers=exc.headers)
        return await http_exception_handler(request, exc)

    app.state.runtime = rt
    app.state.handlers = handlers
    app.state.delivery = dispatcher
    app.state.changes = changes
    return app
