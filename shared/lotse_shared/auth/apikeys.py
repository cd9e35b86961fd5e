"""Partner API keys: ``lotse_<key id>_<secret>``, only a hash kept.

A key is 256 random bits (``secrets``) behind a public key id; the keys file
(``LOTSE_PARTNER_KEYS_FILE``, JSON) keeps per key its id, partner, district,
SHA-256 of the whole key, when it was made and, once revoked, when. A plain
hash suffices: the secret is random, not a password, so there is nothing to
guess a dictionary for. Lookup is by key id, the comparison constant-time.

The file, not a service database: keys are issued and revoked by an operator
with ``lotse partner key create|revoke`` next to the partner's broker user,
without the services running; every service that partners call reads the same
file and notices a change (revocation) by its modification time, no restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .principal import Principal, Role

PREFIX = "lotse"
_KEY = re.compile(r"^lotse_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    partner_id: str
    district: str
    sha256: str
    created_at: str
    revoked_at: str | None = None


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``; the key is shown once and never stored."""
    key_id = secrets.token_hex(8)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


class KeyFile:
    """The keys file: read by the services, written by the operator's command."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, StoredKey] = {}

    # --- reading (services) -------------------------------------------------

    def keys(self) -> dict[str, StoredKey]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return self._keys
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)  # a rewrite is a new inode
        if stamp != self._stamp:
            data = json.loads(self.path.read_text())
            self._keys = {k["key_id"]: StoredKey(**k) for k in data.get("keys", [])}
            self._stamp = stamp
        return self._keys

    def principal(self, presented: str) -> Principal | None:
        """The partner a key belongs to, or None (malformed, unknown, wrong or revoked)."""
        match = _KEY.match(presented.strip())
        if match is None:
            return None
        stored = self.keys().get(match.group(1))
        if stored is None or stored.revoked_at is not None:
            return None
        if not hmac.compare_digest(stored.sha256, _digest(presented.strip())):
            return None
        return Principal(
            user_id=f"partner:{stored.partner_id}",
            roles=frozenset({Role.PARTNER}),
            district_id=stored.district,
            partner_id=stored.partner_id,
            claims={"api_key_id": stored.key_id},
        )

    # --- writing (operator) -------------------------------------------------

    def _write(self, keys: list[StoredKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": [asdict(k) for k in keys]}, f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)  # readers never see half a file

    def create(self, partner_id: str, district: str) -> tuple[StoredKey, str]:
        """Issue a key; returns the stored record and the key (print it once)."""
        key_id, key = new_key()
        record = StoredKey(
            key_id=key_id,
            partner_id=partner_id,
            district=district,
            sha256=_digest(key),
            created_at=datetime.now(UTC).isoformat(),
        )
        self._write([*self.keys().values(), record])
        return record, key

    def revoke(self, key_id_or_partner: str) -> list[StoredKey]:
        """Revoke one key (by id) or every key of a partner; returns what was revoked."""
        now = datetime.now(UTC).isoformat()
        revoked, kept = [], []
        for k in self.keys().values():
            if k.revoked_at is None and key_id_or_partner in (k.key_id, k.partner_id):
                k = StoredKey(**{**asdict(k), "revoked_at": now})
                revoked.append(k)
            kept.append(k)
        if revoked:
            self._write(kept)
        return revoked
