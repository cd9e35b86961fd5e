"""A signed webhook for partner tools, per the Standard Webhooks specification.

Each delivery carries ``webhook-id`` (the notification's id: the same on every retry,
so a receiver can drop a repeat), ``webhook-timestamp`` (Unix seconds when this attempt
was sent) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.
Partners verify it with any Standard Webhooks library, e.g.
``standardwebhooks.Webhook(secret).verify(body, headers)``.

The key: ``LOTSE_WEBHOOK_SECRET`` is either ``whsec_<base64 of the key bytes>`` or, as
before, a plain string whose UTF-8 bytes are the key; a partner holding such a string
verifies with ``whsec_`` + base64 of it (:func:`standard_secret`).

Deprecated, sent for one more release beside the standard headers:
``X-Lotse-Timestamp`` and ``X-Lotse-Signature`` (``sha256=<hex HMAC-SHA256 of
"{timestamp}.{body}">``, same key). The body carries identifiers and the kind of alert,
never names or free text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from .domain.model import Notification
from .failures import PermanentDeliveryError, TemporaryDeliveryError

SECRET_PREFIX = "whsec_"
ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
# deprecated: Lotse's own headers, until partners have moved to the standard ones
SIGNATURE_HEADER = "X-Lotse-Signature"
TIMESTAMP_HEADER = "X-Lotse-Timestamp"


def webhook_key(secret: str) -> bytes:
    """The HMAC key ``secret`` stands for (see the module's description)."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be base64 after its prefix") from None
    else:
        key = secret.encode()
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def standard_secret(secret: str) -> str:
    """``secret`` in the Standard Webhooks form (``whsec_<base64>``) partners verify with."""
    return SECRET_PREFIX + base64.b64encode(webhook_key(secret)).decode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The deprecated ``X-Lotse-Signature`` value."""
    mac = hmac.new(webhook_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Checks a deprecated ``X-Lotse-Signature``."""
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The standard headers, and the deprecated ones, for one attempt."""
    sent_at = datetime.fromtimestamp(timestamp, tz=UTC)
    return {
        ID_HEADER: message_id,
        STANDARD_TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: Webhook(webhook_key(secret)).sign(
            message_id, sent_at, body.decode()
        ),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def webhook_body(n: Notification) -> dict[str, Any]:
    """What a partner tool learns of a notification: ids, kind and priority; no name,
    no text (the person's data stays in Lotse)."""
    return {
        "notification_id": str(n.notification_id),
        "kind": n.kind.value,
        "priority": n.priority.name.lower(),
        "person_id": str(n.person_id) if n.person_id else None,
        "district_id": n.district_id,
        "recipient_role": n.recipient_role.value,
        "created_at": n.created_at.isoformat(),
    }


class WebhookSender:
    """POSTs a notification's identifiers to the partner tool, signed.

    The signature's timestamp is the wall clock's when the attempt is sent (receivers
    refuse one more than five minutes off theirs), not the service's scheduling clock."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_s: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        webhook_key(secret)  # a malformed secret fails at start, not at the first alert
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.wall_clock = wall_clock
        self._client: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, payload: dict[str, Any], message_id: str) -> None:
        """One attempt; ``message_id`` is the same for every attempt of one message."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(self.secret, message_id, int(self.wall_clock()), body),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TemporaryDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        detail = f"HTTP {response.status_code} {response.text[:200]}"
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise TemporaryDeliveryError(detail)
        raise PermanentDeliveryError(detail)
