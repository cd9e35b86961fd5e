"""intake's subscription table. intake consumes nothing yet; it only publishes."""

from __future__ import annotations

from lotse_intake.handlers import IntakeHandlers
from lotse_shared.messaging.subscriptions import Subscriptions


def register_subscriptions(subs: Subscriptions, handlers: IntakeHandlers) -> None:
    """No subscriptions yet: partner updates about people arrive over HTTP."""
    del subs, handlers
