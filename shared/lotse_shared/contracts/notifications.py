"""Events the notifications service publishes."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

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
    DESCRIPTION = "A notification reached its recipient over a channel."
    event_type: Literal["notifications.notification.delivered"]
    event_version: Literal[1]
    payload: NotificationDeliveredV1


class NotificationFailedV1(Payload):
    """A channel gave up: a permanent error, or temporary ones until attempts ran out.

    The notification itself is still in the recipient's inbox.
    """

    notification_id: uuid.UUID
    person_id: uuid.UUID
    district_id: DistrictId
    recipient_role: ContactRole
    channel: Literal["email", "webhook"]
    kind: str
    attempts: int = Field(ge=1, le=1_000_000)  # bounded like every consumed integer
    error: str = Field(max_length=500, description="The server's last answer, e.g. '550 5.1.1'.")


class NotificationFailed(Event):
    DESCRIPTION = "A channel could not deliver a notification; it stays in the inbox."
    event_type: Literal["notifications.notification.failed"]
    event_version: Literal[1]
    payload: NotificationFailedV1
