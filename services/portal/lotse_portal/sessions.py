"""The browser session: an encrypted cookie, and the CSRF token every form carries.

The session holds the user's tokens, so it is encrypted as well as signed (Fernet):
the cookie is useless to read and impossible to forge. It lives in the browser, not
in the portal, so any number of portal replicas serve the same user. The cookie is
HttpOnly (no script reads it), SameSite=Lax (another site's form posts arrive without
it) and Secure whenever the request came in over https (uvicorn believes the
gateway's X-Forwarded-Proto).
"""

from __future__ import annotations

import hmac
import json
import secrets
import zlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "lotse_session"
CSRF_FIELD = "csrf_token"


class SessionCodec:
    """A session as a cookie value and back: JSON, compressed (two Keycloak tokens must
    fit the 4 KB a browser keeps per cookie), encrypted and signed (Fernet)."""

    def __init__(self, key: str | None, max_age_s: int) -> None:
        self.fernet = Fernet(key.encode() if key else Fernet.generate_key())
        self.max_age_s = max_age_s

    def encode(self, session: dict[str, Any]) -> str:
        plain = zlib.compress(json.dumps(session, separators=(",", ":")).encode())
        return self.fernet.encrypt(plain).decode()

    def decode(self, value: str | None) -> dict[str, Any]:
        """The session, or an empty one when the value is expired, tampered with, or
        made with another key (signed out)."""
        if not value:
            return {}
        try:
            plain = self.fernet.decrypt(value.encode(), ttl=self.max_age_s)
            data = json.loads(zlib.decompress(plain))
        except (InvalidToken, ValueError, zlib.error):
            return {}
        return data if isinstance(data, dict) else {}


class EncryptedSessionMiddleware:
    """``request.session`` from an encrypted cookie; written back when it changed."""

    def __init__(self, app: ASGIApp, *, key: str | None, max_age_s: int) -> None:
        self.app = app
        self.codec = SessionCodec(key, max_age_s)
        self.max_age_s = max_age_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        had_cookie = COOKIE in connection.cookies
        scope["session"] = self.codec.decode(connection.cookies.get(COOKIE))
        before = json.dumps(scope["session"], sort_keys=True)
        secure = scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope["session"]
                flags = f"Path=/; HttpOnly; SameSite=Lax{'; Secure' if secure else ''}"
                headers = MutableHeaders(scope=message)
                if session and json.dumps(session, sort_keys=True) != before:
                    value = self.codec.encode(session)
                    headers.append(
                        "Set-Cookie", f"{COOKIE}={value}; Max-Age={self.max_age_s}; {flags}"
                    )
                elif not session and had_cookie:
                    headers.append("Set-Cookie", f"{COOKIE}=; Max-Age=0; {flags}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token (made on first use); every form posts it back."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = session[CSRF_FIELD] = secrets.token_urlsafe(24)
    return token


def csrf_valid(session: dict[str, Any], posted: str | None) -> bool:
    expected = session.get(CSRF_FIELD)
    return (
        isinstance(expected, str) and posted is not None and hmac.compare_digest(expected, posted)
    )
