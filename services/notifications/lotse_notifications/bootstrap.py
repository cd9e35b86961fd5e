"""notifications' composition root: builds everything once, lets tests replace parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI

from lotse_shared.contracts.notifications import NotificationDelivered
from lotse_shared.http import create_http_app
from lotse_shared.service import build_runtime, document_publications, run_lifespan

from .email import SmtpSender
from .entrypoints.http import make_router
from .entrypoints.messaging import register_subscriptions
from .handlers import EmailDelivery, NotificationsHandlers
from .repository import NotificationsRepository
from .settings import NotificationsSettings
from .templates import Templates


@dataclass
class Overrides:
    repo: NotificationsRepository | None = None
    sender: SmtpSender | None = None
    clock: Callable[[], datetime] | None = None


def create_app(
    settings: NotificationsSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    settings = settings or NotificationsSettings()
    overrides = overrides or Overrides()
    rt = build_runtime(settings)
    repo = overrides.repo or NotificationsRepository(rt.db)
    sender = overrides.sender or SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        settings.mail_from,
        starttls=settings.smtp_starttls,
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout_s=settings.smtp_timeout_s,
    )
    delivery = EmailDelivery(
        uow=rt.uow, repo=repo, sender=sender, max_attempts=settings.email_max_attempts
    )
    handlers = NotificationsHandlers(
        uow=rt.uow,
        repo=repo,
        parking=rt.parking,
        templates=Templates(),
        inbox_url=settings.inbox_url,
        on_created=delivery.kick,
    )
    if overrides.clock is not None:
        handlers.clock = overrides.clock
        delivery.clock = overrides.clock
    register_subscriptions(rt.subscriptions, handlers)
    rt.parking.attach(rt.subscriptions.dispatch)
    document_publications(rt, [NotificationDelivered])
    app = create_http_app(
        rt,
        title="Lotse notifications",
        description="Alerts to the responsible contacts: inbox and email.",
        routers=[make_router(handlers)],
        lifespan=lambda: run_lifespan(
            rt,
            index_setup=[repo.ensure_indexes],
            background=[(delivery.start, delivery.stop)],
        ),
    )
    app.state.runtime = rt
    app.state.handlers = handlers
    app.state.delivery = delivery
    return app
