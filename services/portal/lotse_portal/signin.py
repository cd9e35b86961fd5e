"""Sign-in with OpenID Connect: authorization code flow with PKCE, through Authlib.

The provider (Keycloak in production, oidc-provider-mock locally) signs the user in;
the portal keeps the access token in the encrypted session and sends it to the
services, which verify it themselves (a JWT, against the issuer's keys). The ID token
is verified by Authlib (signature, issuer, audience, nonce) and gives the name and
roles the pages show; it decides nothing the services would not decide again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from .sessions import csrf_valid
from .settings import PortalSettings

PROVIDER = "lotse"
# Sign in again a little before the token runs out, not in the middle of a form post
EXPIRY_MARGIN_S = 30


@dataclass(frozen=True)
class User:
    sub: str
    email: str
    name: str
    roles: frozenset[str]
    district: str | None
    access_token: str

    @property
    def district_wide(self) -> bool:
        return bool(self.roles & {"coordinator", "admin"})

    @property
    def may_write(self) -> bool:
        """Whether to offer actions at all (mentors read only); the services decide again."""
        return bool(self.roles & {"caseworker", "coordinator", "admin"})

    @property
    def caseload_title(self) -> str:
        if self.district_wide:
            return "Fälle des Landkreises"
        return "Meine Fälle" if self.may_write else "Meine Begleitungen"


class NeedsSignIn(Exception):
    """No session, or its token has run out: sign in, then come back to ``next_url``."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def make_oauth(settings: PortalSettings) -> OAuth:
    oauth = OAuth()
    client_kwargs: dict[str, Any] = {
        "scope": settings.oidc_scope,
        "code_challenge_method": "S256",
    }
    if settings.oidc_client_secret is None:
        client_kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE only
    oauth.register(
        PROVIDER,
        server_metadata_url=str(settings.oidc_discovery_url),
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        client_kwargs=client_kwargs,
    )
    return oauth


def _roles(claims: dict[str, Any]) -> frozenset[str]:
    found = claims.get("roles") or []
    realm = claims.get("realm_access")
    if isinstance(realm, dict):
        found = [*found, *(realm.get("roles") or [])]
    return frozenset(r for r in found if isinstance(r, str))


def _district(claims: dict[str, Any]) -> str | None:
    value = claims.get("district")
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


async def current_user(request: Request) -> User:
    """The signed-in user, or :class:`NeedsSignIn` (the page they wanted comes back).

    An access token that has run out is renewed with the refresh token where the
    provider gave one (Keycloak: for the length of its sign-in session), so a working
    day is one sign-in, not one every 15 minutes."""
    data = request.session.get("user")
    if not isinstance(data, dict):
        raise NeedsSignIn(_came_for(request))
    if data.get("expires_at", 0) < time.time() + EXPIRY_MARGIN_S:
        refreshed = await _refreshed(request, data)
        if refreshed is None:
            raise NeedsSignIn(_came_for(request))
        data = request.session["user"] = refreshed
    return User(
        sub=data["sub"],
        email=data["email"],
        name=data["name"],
        roles=frozenset(data["roles"]),
        district=data.get("district"),
        access_token=data["access_token"],
    )


async def _refreshed(request: Request, data: dict[str, Any]) -> dict[str, Any] | None:
    refresh_token = data.get("refresh_token")
    client = getattr(request.app.state, "oidc_client", None)
    if not refresh_token or client is None:
        return None
    try:
        token = await client.fetch_access_token(
            grant_type="refresh_token", refresh_token=refresh_token
        )
    except (OAuthError, httpx.HTTPError, ValueError):
        return None  # expired or revoked: sign in again
    if "access_token" not in token:
        return None
    return {
        **data,
        "access_token": token["access_token"],
        "refresh_token": token.get("refresh_token") or refresh_token,
        "expires_at": _expires_at(token),
    }


def _expires_at(token: dict[str, Any]) -> int:
    if token.get("expires_at"):
        return int(token["expires_at"])
    return int(time.time() + float(token.get("expires_in") or 300))


def _came_for(request: Request) -> str:
    """The page to come back to: this one for a GET; for a form post (which cannot be
    replayed), the page the form was on."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path:
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


def safe_next(value: str | None) -> str:
    """Only a path of this site (no //host, no scheme) is a place to come back to."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def make_signin_router(client: Any) -> APIRouter:
    """``client``: the provider's Authlib client (``make_oauth(...).create_client``)."""
    router = APIRouter(prefix="/auth", include_in_schema=False)

    @router.get("/login")
    async def login(request: Request, next: str | None = None) -> Response:
        request.session["next"] = safe_next(next)
        redirect_uri = str(request.url_for("auth_callback"))
        return await client.authorize_redirect(request, redirect_uri)

    @router.get("/callback", name="auth_callback")
    async def callback(request: Request) -> Response:
        try:
            token = await client.authorize_access_token(request)
        except OAuthError:
            # a stale or replayed callback (back button, second tab): start again
            return RedirectResponse("/auth/login", status_code=303)
        claims = dict(token.get("userinfo") or {})
        lang = request.session.get("lang")
        next_url = safe_next(request.session.get("next"))
        request.session.clear()  # a new session on sign-in: no fixation
        request.session["user"] = {
            "sub": claims.get("sub"),
            "email": claims.get("email") or claims.get("preferred_username") or claims.get("sub"),
            "name": claims.get("name") or claims.get("preferred_username") or claims.get("sub"),
            "roles": sorted(_roles(claims)),
            "district": _district(claims),
            "access_token": token["access_token"],
            "refresh_token": token.get("refresh_token"),
            "expires_at": _expires_at(token),
        }
        if lang:
            request.session["lang"] = lang
        return RedirectResponse(next_url, status_code=303)

    @router.post("/logout")
    async def logout(request: Request, csrf_token: str = Form("")) -> Response:
        if not csrf_valid(request.session, csrf_token):
            return RedirectResponse("/", status_code=303)
        request.session.clear()
        metadata = await client.load_server_metadata()
        end_session = metadata.get("end_session_endpoint")
        after = str(request.url_for("signed_out"))
        if not end_session:
            return RedirectResponse(after, status_code=303)
        query = {"client_id": client.client_id, "post_logout_redirect_uri": after}
        return RedirectResponse(f"{end_session}?{urlencode(query)}", status_code=303)

    return router
