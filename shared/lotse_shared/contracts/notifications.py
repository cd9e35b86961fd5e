"""Events the notifications service publishes."""

from __future__ import annotations

import uuid
from typing import Literal

from . import routing
from .common import ContactRole, DistrictId
from .envelope import Event, Payload


class NotificationDeliveredV1(Payload):
    notification_id: uuid.UUID
    person_id: uuid.UUID
    district_id: DistrictId
    recipient_role: ContactRole
    channel: Literal["email", "inbox"]
    kind: str


class NotificationDelivered(Event):
    ROUTING_KEY = routing.NOTIFICATION_DELIVERED_V1
    DESCRIPTION = "A notification reached its recipient over a channel."
    event_type: Literal["notifications.notification.delivered"] = (
        "notifications.notification.delivered"
    )
    event_version: Literal[1] = 1
    payload: NotificationDeliveredV1
