"""A signed webhook for partner tools: HMAC-SHA256 over timestamp and body.

The receiver recomputes ``hex(hmac_sha256(secret, f"{timestamp}.{body}"))``,
compares it with ``X-Lotse-Signature`` (``sha256=<hex>``) in constant time and
rejects a ``X-Lotse-Timestamp`` older than a few minutes (replay). The body
carries identifiers and the kind of alert, never names or free text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from .failures import PermanentDeliveryError, TemporaryDeliveryError

SIGNATURE_HEADER = "X-Lotse-Signature"
TIMESTAMP_HEADER = "X-Lotse-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


class WebhookSender:
    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0) -> None:
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, payload: dict[str, Any], timestamp: int) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
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
