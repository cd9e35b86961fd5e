"""FastAPI dependencies: ``auth.require(Role.CASEWORKER, ...)`` gives the Principal.

- no or an invalid token: 401 with ``WWW-Authenticate: Bearer`` (RFC 6750);
- a valid token without one of the roles: 403;
- the issuer's keys unreachable: 503.
All as the services' problem details (``lotse_shared.problems``). The roles an endpoint
accepts appear in its OpenAPI security requirement (``{"bearer": [roles]}``,
as OpenAPI 3.1 allows for non-OAuth schemes), so tests can be generated from it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    SecurityScopes,
)

from lotse_shared.settings import ServiceSettings

from .apikeys import KeyFile
from .principal import Principal, Role
from .verifier import InvalidToken, KeysUnavailable, TokenVerifier

log = logging.getLogger("lotse.auth")

REALM = "lotse"

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A JWT from the district's identity provider (or `lotse token` locally). "
    "The roles an endpoint accepts are listed with its security requirement.",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]

# Partners may call their endpoints with an API key instead (`lotse partner key create`).
API_KEY_HEADER = "X-Api-Key"
API_KEY_SCHEME = "partnerApiKey"
api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name=API_KEY_SCHEME,
    description="A partner's API key (`lotse_<key id>_<secret>`), also accepted as "
    "`Authorization: ApiKey <key>`. Only on endpoints that accept the partner role.",
)
ApiKey = Annotated[str | None, Depends(api_key_scheme)]


def unauthenticated(reason: str | None) -> HTTPException:
    challenge = f'Bearer realm="{REALM}"'
    if reason is not None:  # no token at all: a bare challenge (RFC 6750 section 3)
        quoted = reason.replace('"', "'")
        challenge += f', error="invalid_token", error_description="{quoted}"'
    return HTTPException(
        status_code=401,
        detail=f"not authenticated: {reason}" if reason else "not authenticated",
        headers={"WWW-Authenticate": challenge},
    )


class Authenticator:
    """Verifies the caller's token and checks their role, for one service."""

    def __init__(self, verifier: TokenVerifier | None, api_keys: KeyFile | None = None) -> None:
        self.verifier = verifier
        self.api_keys = api_keys

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Authenticator:
        keys = KeyFile(settings.partner_keys_file) if settings.partner_keys_file else None
        if not settings.auth_jwks_url and not settings.auth_jwks_file:
            log.warning(
                "%s: neither LOTSE_AUTH_JWKS_URL nor LOTSE_AUTH_JWKS_FILE is set; "
                "every request but health and docs is refused",
                settings.service_name,
            )
            return cls(None, keys)
        url = settings.auth_jwks_url or None  # an identity provider wins over a file
        return cls(
            TokenVerifier(
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                jwks_url=url,
                jwks_file=None if url else settings.auth_jwks_file,
                leeway_s=settings.auth_leeway_s,
                district_claim=settings.auth_district_claim,
            ),
            keys,
        )

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise unauthenticated(None)
        if self.verifier is None:
            raise unauthenticated("no token issuer is configured")
        try:
            return await self.verifier.principal(token)
        except InvalidToken as e:
            raise unauthenticated(str(e)) from None
        except KeysUnavailable as e:
            log.error("issuer keys unavailable: %s", e)
            raise HTTPException(503, detail="the identity provider's keys are unavailable") from e

    async def _bearer(
        self, scopes: SecurityScopes, request: Request, credentials: Credentials
    ) -> Principal:
        token = credentials.credentials if credentials else None
        return self._authorise(scopes, request, await self.authenticate(token))

    async def _bearer_or_api_key(
        self, scopes: SecurityScopes, request: Request, credentials: Credentials, api_key: ApiKey
    ) -> Principal:
        if api_key is None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "apikey":
                api_key = value.strip()
        if api_key is None:
            return await self._bearer(scopes, request, credentials)
        principal = self.api_keys.principal(api_key) if self.api_keys is not None else None
        if principal is None:  # names no part of what was sent
            raise unauthenticated("unknown or revoked API key")
        return self._authorise(scopes, request, principal)

    @staticmethod
    def _authorise(scopes: SecurityScopes, request: Request, principal: Principal) -> Principal:
        request.state.principal = principal  # for the audit trail, refusals included
        if scopes.scopes and not principal.has_any(scopes.scopes):
            raise HTTPException(
                status_code=403,
                detail=f"this needs one of the roles: {', '.join(scopes.scopes)}",
            )
        return principal

    def require(self, *roles: Role) -> Any:
        """A dependency giving the Principal if they hold one of ``roles``.

        Only a bearer token is read (no cookie: a browser signs in to the portal, which
        calls the services with the user's token). Endpoints that accept partners also
        accept a partner API key (listed as a second, alternative security requirement
        in OpenAPI).
        """
        if not roles:
            raise ValueError("name the roles an endpoint accepts")
        dependency: Any = self._bearer
        if Role.PARTNER in roles:
            dependency = self._bearer_or_api_key
        return Security(dependency, scopes=[r.value for r in roles])
