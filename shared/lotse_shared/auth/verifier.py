"""Verifying bearer tokens (JWT) against the issuer's published keys (JWKS).

The keys come from ``LOTSE_AUTH_JWKS_URL`` (an identity provider such as
Keycloak: ``<realm>/protocol/openid-connect/certs``) or ``LOTSE_AUTH_JWKS_FILE``
(the local dev keys ``lotse token`` writes). Only asymmetric algorithms are
accepted, so a token can never be signed with a key the services hold.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt

from .principal import Principal, Role

ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by the issuer (401)."""


class KeysUnavailable(Exception):
    """The issuer's keys cannot be fetched right now (503, not the caller's fault)."""


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks_file: Path | None = None,
        leeway_s: float = 30.0,
        district_claim: str = "district",
        algorithms: Sequence[str] = ASYMMETRIC_ALGORITHMS,
        file_recheck_s: float = 5.0,
    ) -> None:
        if (jwks_url is None) == (jwks_file is None):
            raise ValueError("give exactly one of jwks_url and jwks_file")
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self.district_claim = district_claim
        self.algorithms = list(algorithms)
        self._jwks_file = jwks_file
        self._file_keys: jwt.PyJWKSet | None = None
        self._file_checked = 0.0
        self._file_mtime = 0.0
        self._file_recheck_s = file_recheck_s
        # cache_jwk_set: fetched once, refreshed after `lifespan` s or for an unknown kid
        self._client = (
            jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=300, timeout=5)
            if jwks_url
            else None
        )

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims: signature, exp/nbf/iat, issuer and audience checked."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise InvalidToken(f"malformed token: {e}") from e
        if header.get("alg") not in self.algorithms:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
        key = await self._signing_key(header.get("kid"))
        try:
            return jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from e

    async def principal(self, token: str) -> Principal:
        return principal_from_claims(
            await self.claims(token), audience=self.audience, district_claim=self.district_claim
        )

    async def _signing_key(self, kid: str | None) -> jwt.PyJWK:
        if self._client is not None:
            return await asyncio.to_thread(self._key_from_url, kid)
        return self._key_from_file(kid)

    def _key_from_url(self, kid: str | None) -> jwt.PyJWK:
        assert self._client is not None
        try:
            if kid is None:
                keys = self._client.get_signing_keys()
                if len(keys) != 1:
                    raise InvalidToken("token names no key (kid) and the issuer has several")
                return keys[0]
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as e:
            raise KeysUnavailable(str(e)) from e
        except jwt.PyJWKClientError as e:
            raise InvalidToken(str(e)) from e

    def _key_from_file(self, kid: str | None) -> jwt.PyJWK:
        keys = self._load_file()
        if kid is None:
            if len(keys.keys) != 1:
                raise InvalidToken("token names no key (kid) and the issuer has several")
            return keys.keys[0]
        try:
            return keys[kid]
        except KeyError:
            raise InvalidToken(f"unknown signing key {kid!r}") from None

    def _load_file(self) -> jwt.PyJWKSet:
        assert self._jwks_file is not None
        now = time.monotonic()
        if self._file_keys is not None and now - self._file_checked < self._file_recheck_s:
            return self._file_keys
        self._file_checked = now
        try:
            mtime = self._jwks_file.stat().st_mtime
            if self._file_keys is None or mtime != self._file_mtime:
                self._file_keys = jwt.PyJWKSet.from_dict(json.loads(self._jwks_file.read_text()))
                self._file_mtime = mtime
        except (OSError, ValueError, jwt.PyJWTError) as e:
            raise KeysUnavailable(f"cannot read JWKS file {self._jwks_file}: {e}") from e
        return self._file_keys


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def principal_from_claims(
    claims: Mapping[str, Any], *, audience: str, district_claim: str = "district"
) -> Principal:
    """Read a principal from verified claims, tolerating how Keycloak shapes them:
    roles in ``roles``, ``realm_access.roles`` or ``resource_access.<client>.roles``;
    the district in a custom claim (a user attribute mapper may give a list)."""
    found: list[str] = _strings(claims.get("roles"))
    realm = claims.get("realm_access")
    if isinstance(realm, Mapping):
        found += _strings(realm.get("roles"))
    resources = claims.get("resource_access")
    if isinstance(resources, Mapping):
        client = resources.get(audience) or resources.get(str(claims.get("azp", "")))
        if isinstance(client, Mapping):
            found += _strings(client.get("roles"))
    roles = frozenset(Role(r) for r in found if r in Role._value2member_map_)
    districts = _strings(claims.get(district_claim))
    if len(districts) > 1:
        raise InvalidToken(f"claim {district_claim!r} names more than one district")
    email = claims.get("email")
    user = email or claims.get("preferred_username") or claims["sub"]
    partner = claims.get("partner_id")
    return Principal(
        user_id=str(user),
        roles=roles,
        district_id=districts[0] if districts else None,
        email=str(email) if isinstance(email, str) else None,
        partner_id=str(partner) if isinstance(partner, str) else None,
        claims=dict(claims),
    )
