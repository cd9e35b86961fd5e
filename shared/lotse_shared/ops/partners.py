"""Partners on the broker: who may publish which events.

Each partner gets its own RabbitMQ user, named by its partner id, the same id its
events carry as ``producer``. Its permissions on the virtual host:

- configure ``^$`` and read ``^$``: it declares nothing and consumes nothing;
- write only the events exchange (``^<namespace>\\.events$``);
- a **topic permission** on that exchange whose write regex allows only its own
  routing keys (e.g. ``^partner\\.course\\.[a-z0-9_.]+$`` for a school).

No ``impersonator`` tag: RabbitMQ then refuses a message whose ``user_id``
property names anyone but the connection's user, so ``user_id`` is vouched for
by the broker. The services accept a partner event only when that ``user_id``
equals the event's ``producer`` (``messaging.deadletter``).

The broker is managed over the management plugin's HTTP API (stdlib only, so
this runs in a service image too): ``LOTSE_RABBIT_ADMIN_URL``
(http://127.0.0.1:15672), ``LOTSE_RABBIT_ADMIN_USER`` / ``LOTSE_RABBIT_ADMIN_PASSWORD``
(guest/guest, which RabbitMQ accepts from localhost only).
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lotse_shared.settings import env_value

PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_WORD = re.compile(r"^[a-z0-9_]+$")
# a routing key a partner may be granted is always under "partner."
PARTNER_PREFIX = "partner"


class PartnerConfigError(ValueError):
    """A definition that cannot be turned into permissions; the message names it."""


def routing_key_regex(patterns: Sequence[str]) -> str:
    """The topic-permission write regex for ``patterns``.

    A pattern is a routing key (``partner.opening.reported.v1``: that key only) or
    a prefix ending in ``*`` (``partner.course.*``: every key under
    ``partner.course.``). Every pattern must lie under ``partner.`` so no
    partner can ever be granted a service's own events.
    """
    if not patterns:
        raise PartnerConfigError("publishes: name at least one routing-key pattern")
    alternatives = []
    for pattern in patterns:
        words = pattern.split(".")
        if words[0] != PARTNER_PREFIX or len(words) < 2:
            raise PartnerConfigError(
                f"publishes: {pattern!r} is not under 'partner.' (a partner publishes "
                "partner events only)"
            )
        wildcard = words[-1] == "*"
        fixed = words[:-1] if wildcard else words
        for word in fixed:
            if not _WORD.match(word):
                raise PartnerConfigError(
                    f"publishes: {pattern!r}: {word!r} is not a routing-key word "
                    "(a-z, 0-9, _; '*' only as the last word)"
                )
        if wildcard and len(fixed) < 2:
            raise PartnerConfigError(
                f"publishes: {pattern!r} is too wide; name the kind, e.g. 'partner.course.*'"
            )
        regex = r"\.".join(re.escape(w) for w in fixed)
        alternatives.append(regex + (r"\.[a-z0-9_.]+" if wildcard else ""))
    return "^(" + "|".join(alternatives) + ")$"


def exchange_regex(exchanges: Iterable[str]) -> str:
    names = sorted(set(exchanges))
    if not names:
        raise PartnerConfigError("no events exchange to grant")
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


@dataclass(frozen=True)
class Partner:
    id: str
    district: str
    publishes: tuple[str, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not PARTNER_ID.match(self.id):
            raise PartnerConfigError(
                f"id: {self.id!r} must be 2-63 characters of a-z, 0-9 and '-' "
                "(it is the broker user and the events' producer)"
            )
        if not self.district:
            raise PartnerConfigError(f"{self.id}: district: missing")
        routing_key_regex(self.publishes)  # refuses bad patterns early

    @property
    def write_regex(self) -> str:
        return routing_key_regex(self.publishes)


def load_definitions(path: Path) -> list[Partner]:
    """Read ``deploy/partners.json``: ``{"partners": [{"id", "district", "publishes"}]}``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PartnerConfigError(f"{path}: {e}") from None
    partners = []
    for i, entry in enumerate(data.get("partners", [])):
        try:
            partners.append(
                Partner(
                    id=str(entry["id"]),
                    district=str(entry["district"]),
                    publishes=tuple(entry["publishes"]),
                    name=str(entry.get("name", "")),
                )
            )
        except KeyError as e:
            raise PartnerConfigError(f"{path}: partners[{i}].{e.args[0]}: missing") from None
        except PartnerConfigError as e:
            raise PartnerConfigError(f"{path}: partners[{i}]: {e}") from None
    ids = [p.id for p in partners]
    if len(ids) != len(set(ids)):
        raise PartnerConfigError(f"{path}: a partner id is listed twice")
    return partners


class BrokerAdminError(RuntimeError):
    pass


@dataclass
class BrokerAdmin:
    """The few management-API calls partners need."""

    url: str = "http://127.0.0.1:15672"
    user: str = "guest"
    password: str = field(default="guest", repr=False)
    vhost: str = "/"
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> BrokerAdmin:
        return cls(
            url=os.environ.get("LOTSE_RABBIT_ADMIN_URL", "http://127.0.0.1:15672"),
            user=os.environ.get("LOTSE_RABBIT_ADMIN_USER", "guest"),
            # RabbitMQ's local guest account by default; LOTSE_RABBIT_ADMIN_PASSWORD_FILE too
            password=env_value("LOTSE_RABBIT_ADMIN_PASSWORD", "guest"),
            vhost=os.environ.get("LOTSE_RABBIT_VHOST", "/"),
        )

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {auth}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            if e.code == 404 and method == "GET":
                return None
            detail = e.read().decode(errors="replace")[:300]
            raise BrokerAdminError(f"{method} {path}: {e.code} {detail}") from None
        except urllib.error.URLError as e:
            raise BrokerAdminError(
                f"the RabbitMQ management API at {self.url} does not answer ({e.reason}); "
                "enable it with 'rabbitmq-plugins enable rabbitmq_management'"
            ) from None
        return json.loads(raw) if raw else None

    def _vhost(self) -> str:
        return urllib.parse.quote(self.vhost, safe="")

    @staticmethod
    def _name(user: str) -> str:
        return urllib.parse.quote(user, safe="")

    def user_exists(self, user: str) -> bool:
        return self._call("GET", f"/api/users/{self._name(user)}") is not None

    def put_user(self, user: str, password: str) -> None:
        """Create or reset a user; no tags (no impersonator, no management access)."""
        self._call("PUT", f"/api/users/{self._name(user)}", {"password": password, "tags": ""})

    def delete_user(self, user: str) -> None:
        try:
            self._call("DELETE", f"/api/users/{self._name(user)}")
        except BrokerAdminError as e:
            if " 404 " not in str(e):
                raise

    def set_permissions(self, user: str, *, configure: str, write: str, read: str) -> None:
        self._call(
            "PUT",
            f"/api/permissions/{self._vhost()}/{self._name(user)}",
            {"configure": configure, "write": write, "read": read},
        )

    def topic_permissions(self, user: str) -> list[dict[str, str]]:
        found = self._call("GET", f"/api/users/{self._name(user)}/topic-permissions")
        return [p for p in found or [] if p.get("vhost") == self.vhost]

    def set_topic_permission(self, user: str, exchange: str, *, write: str, read: str) -> None:
        self._call(
            "PUT",
            f"/api/topic-permissions/{self._vhost()}/{self._name(user)}",
            {"exchange": exchange, "write": write, "read": read},
        )

    def clear_topic_permission(self, user: str, exchange: str) -> None:
        """The API clears all of a user's topic permissions; the others are put back."""
        kept = [p for p in self.topic_permissions(user) if p["exchange"] != exchange]
        if len(kept) == len(self.topic_permissions(user)):
            return
        self._call("DELETE", f"/api/topic-permissions/{self._vhost()}/{self._name(user)}")
        for p in kept:
            self.set_topic_permission(user, p["exchange"], write=p["write"], read=p["read"])


def grant(
    admin: BrokerAdmin,
    partner: Partner,
    *,
    events_exchange: str,
    writable_exchanges: str | None = None,
) -> None:
    """Give an existing broker user exactly a partner's rights on ``events_exchange``.

    ``writable_exchanges``: the vhost write regex, by default only that exchange
    (the local dev stack and the tests pass one covering their throwaway namespaces).
    """
    admin.set_permissions(
        partner.id,
        configure="^$",
        write=writable_exchanges or exchange_regex([events_exchange]),
        read="^$",
    )
    admin.set_topic_permission(partner.id, events_exchange, write=partner.write_regex, read="^$")
