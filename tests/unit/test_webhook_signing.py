"""Webhook secrets and signatures per Standard Webhooks, checked with its own library."""

from __future__ import annotations

import base64
import json
import time

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from lotse_notifications.settings import NotificationsSettings
from lotse_notifications.webhook import signed_headers, standard_secret, verify, webhook_key

KEY = bytes(range(32))
WHSEC = "whsec_" + base64.b64encode(KEY).decode()


def test_a_whsec_secret_is_its_base64_key_and_a_plain_one_its_utf8_bytes() -> None:
    assert webhook_key(WHSEC) == KEY
    assert webhook_key(WHSEC.rstrip("=")) == KEY  # unpadded, as some tools write it
    assert standard_secret(WHSEC) == WHSEC
    assert webhook_key("partner-secret") == b"partner-secret"
    assert standard_secret("partner-secret") == "whsec_cGFydG5lci1zZWNyZXQ="
    for broken in ("whsec_", "whsec_not base64!", ""):
        with pytest.raises(ValueError, match="secret"):
            webhook_key(broken)


@pytest.mark.parametrize("secret", [WHSEC, "partner-secret"])
def test_both_signatures_verify_and_sign_the_same_message(secret: str) -> None:
    body = json.dumps({"notification_id": "n-1", "kind": "course_dropped"}).encode()
    now = int(time.time())
    headers = signed_headers(secret, "n-1", now, body)
    assert Webhook(standard_secret(secret)).verify(body, headers) == json.loads(body)
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["webhook-timestamp"] == headers["X-Lotse-Timestamp"] == str(now)
    assert verify(secret, headers["X-Lotse-Timestamp"], body, headers["X-Lotse-Signature"])


def test_a_malformed_whsec_secret_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOTSE_WEBHOOK_URL", "https://partner.example/hook")
    monkeypatch.setenv("LOTSE_WEBHOOK_SECRET", "whsec_???")
    with pytest.raises(ValidationError, match="LOTSE_WEBHOOK_SECRET: a whsec_ secret"):
        NotificationsSettings()
    monkeypatch.setenv("LOTSE_WEBHOOK_SECRET", WHSEC)
    assert NotificationsSettings().webhook_secret == WHSEC
