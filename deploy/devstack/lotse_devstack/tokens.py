"""Local signing keys and tokens, for ``lotse token``, the local stack and the tests.

The first use generates an EC P-256 key into a git-ignored directory
(``.lotse/dev-keys/`` or ``LOTSE_DEV_KEYS``): ``signing-key.pem`` (0600, never
leaves the machine) and ``jwks.json`` (the public key, 0644), which the services read
through ``LOTSE_AUTH_JWKS_FILE``. The directory is 0755: docker-compose mounts it into
containers that run as another user (uid 10001), who must read the public key; the
private key's own mode keeps it to its owner. Production points the services at the district's
identity provider instead (``LOTSE_AUTH_JWKS_URL``); nothing here is used then.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from lotse_shared.auth import Role

DEV_ISSUER = "lotse-dev"
DEV_AUDIENCE = "lotse"
ALGORITHM = "ES256"


def default_dir() -> Path:
    return Path(os.environ.get("LOTSE_DEV_KEYS", ".lotse/dev-keys")).resolve()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _readable_by_containers(directory: Path, jwks: Path) -> None:
    """The public half readable by any user, whatever the umask (and keys made 0700 by
    earlier versions, which answered 503 in containers); the signing key stays 0600."""
    for path, mode in ((directory, 0o755), (jwks, 0o644)):
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)


@dataclass
class DevIssuer:
    """Signs tokens as the local identity provider ``lotse-dev``."""

    directory: Path
    issuer: str = DEV_ISSUER
    audience: str = DEV_AUDIENCE

    @property
    def key_file(self) -> Path:
        return self.directory / "signing-key.pem"

    @property
    def jwks_file(self) -> Path:
        return self.directory / "jwks.json"

    def ensure(self) -> DevIssuer:
        """Create the key pair and the public JWKS unless they exist."""
        if self.key_file.exists() and self.jwks_file.exists():
            _readable_by_containers(self.directory, self.jwks_file)
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.key_file.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            _write_private(
                self.key_file,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        jwk = dict(ECAlgorithm.to_jwk(self._key().public_key(), as_dict=True))
        jwk.update(kid=self.kid, use="sig", alg=ALGORITHM)
        tmp = self.jwks_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [jwk]}, indent=2))
        tmp.replace(self.jwks_file)
        _readable_by_containers(self.directory, self.jwks_file)
        return self

    def _key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    @property
    def kid(self) -> str:
        public = (
            self._key()
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return hashlib.sha256(public).hexdigest()[:16]

    def token(
        self,
        role: Role | str,
        *,
        user: str,
        district: str | None = "kassel",
        partner: str | None = None,
        ttl_s: float = 8 * 3600,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        self.ensure()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user,
            "iat": now,
            "exp": now + int(ttl_s),
            "jti": str(uuid.uuid4()),
            "roles": [Role(role).value],
        }
        if "@" in user:
            claims["email"] = user
        if district is not None:
            claims["district"] = district
        if partner is not None:
            claims["partner_id"] = partner
        claims.update(extra or {})
        return jwt.encode(claims, self._key(), algorithm=ALGORITHM, headers={"kid": self.kid})

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Sign ``claims`` as they are (ES256, with this key's ``kid``); the caller sets
        iss/aud/exp. The local OIDC provider issues its access tokens through this."""
        self.ensure()
        return jwt.encode(dict(claims), self._key(), algorithm=ALGORITHM, headers={"kid": self.kid})

    def service_env(self) -> dict[str, str]:
        """What a service needs to accept these tokens."""
        self.ensure()
        return {
            "LOTSE_AUTH_ISSUER": self.issuer,
            "LOTSE_AUTH_AUDIENCE": self.audience,
            "LOTSE_AUTH_JWKS_FILE": str(self.jwks_file),
        }
