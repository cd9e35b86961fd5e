"""Publish events the way a partner system does: plain AMQP, persistent, confirmed,
as the partner's own broker user with ``user_id`` set to its partner id.

A partner event (routing key ``partner.…``) goes out over a connection of the
event's ``producer``; the services refuse one whose broker-checked ``user_id``
differs from its producer. Other events (tests that stand in for a service)
go out as the connection of ``rabbit_url``.

Locally (``make demo``/``make up``, chaos, bench, tests) the partners' broker users
are made on first use (:class:`DevPartners`): rights as ``deploy/partners.json``
gives them (an id not listed there may publish its event's kind, e.g.
``partner.course.*``), on the events exchange of whatever namespace is used,
and a password derived from a secret kept outside the repository
(``LOTSE_DEV_PARTNER_SECRET`` or ``~/.lotse/dev-partner-secret``), so every
checkout and test run on a machine agrees on it. Real partners are added with
``lotse partner add|sync`` (see docs/operations.md, "Adding a partner").
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import threading
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Self

import aio_pika

from lotse_shared.contracts.envelope import Event
from lotse_shared.ops.partners import (
    PARTNER_ID,
    BrokerAdmin,
    Partner,
    grant,
    load_definitions,
)

PARTNER_PREFIX = "partner."
DEFINITIONS = Path(__file__).resolve().parents[2] / "partners.json"
# Local partners may write the events exchange of any namespace (tests make one per
# test); what they may publish there is fixed per exchange by a topic permission.
DEV_WRITABLE_EXCHANGES = r"^[a-z0-9][a-z0-9_-]*\.events$"


def dev_secret() -> bytes:
    given = os.environ.get("LOTSE_DEV_PARTNER_SECRET")
    if given:
        return given.encode()
    path = Path.home() / ".lotse" / "dev-partner-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the first process on this machine makes it; the others read it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    for _ in range(50):
        secret = path.read_text().strip()
        if secret:
            return secret.encode()
        threading.Event().wait(0.05)  # written by another process a moment ago
    raise RuntimeError(f"{path} is empty; delete it and retry")


def dev_password(partner_id: str) -> str:
    return hmac.new(dev_secret(), partner_id.encode(), hashlib.sha256).hexdigest()


def producer_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    producer = data.get("producer") if isinstance(data, dict) else None
    return producer if isinstance(producer, str) else None


class DevPartners:
    """Makes local partners' broker users on first use (idempotent, once per process)."""

    _lock = threading.Lock()
    _users: ClassVar[set[str]] = set()
    _granted: ClassVar[set[tuple[str, str]]] = set()

    def __init__(self, admin: BrokerAdmin | None = None, definitions: Path = DEFINITIONS) -> None:
        self.admin = admin or BrokerAdmin.from_env()
        self.defined = (
            {p.id: p for p in load_definitions(definitions)} if definitions.exists() else {}
        )

    def partner(self, partner_id: str, routing_key: str) -> Partner:
        if partner_id in self.defined:
            return self.defined[partner_id]
        kind = ".".join(routing_key.split(".")[:2])  # partner.course, partner.opening
        return Partner(id=partner_id, district="kassel", publishes=(f"{kind}.*",))

    def ensure(self, partner_id: str, routing_key: str, events_exchange: str) -> str:
        """The partner's password, after making sure it may publish on ``events_exchange``."""
        if not PARTNER_ID.match(partner_id):
            raise ValueError(f"producer {partner_id!r} is no valid partner id")
        password = dev_password(partner_id)
        with self._lock:
            if partner_id not in self._users:
                self.admin.put_user(partner_id, password)
                self._users.add(partner_id)
            if (partner_id, events_exchange) not in self._granted:
                grant(
                    self.admin,
                    self.partner(partner_id, routing_key),
                    events_exchange=events_exchange,
                    writable_exchanges=DEV_WRITABLE_EXCHANGES,
                )
                self._granted.add((partner_id, events_exchange))
        return password

    def ensure_all(self, events_exchange: str) -> dict[str, str]:
        """Every partner of deploy/partners.json, ready on ``events_exchange``: id -> password."""
        return {
            pid: self.ensure(pid, partner.publishes[0], events_exchange)
            for pid, partner in self.defined.items()
        }

    @classmethod
    def forget_exchange(cls, events_exchange: str, admin: BrokerAdmin | None = None) -> None:
        """Drop the topic permissions this process granted on a deleted exchange."""
        with cls._lock:
            done = {g for g in cls._granted if g[1] == events_exchange}
            cls._granted -= done
        admin = admin or BrokerAdmin.from_env()
        for partner_id, exchange in done:
            admin.clear_topic_permission(partner_id, exchange)


def partner_url(rabbit_url: str, partner_id: str, password: str) -> str:
    """``rabbit_url`` with the partner's credentials instead of its own."""
    parts = urllib.parse.urlsplit(rabbit_url)
    host = parts.hostname or "127.0.0.1"
    netloc = (
        f"{urllib.parse.quote(partner_id, safe='')}:{urllib.parse.quote(password, safe='')}"
        f"@{host}{f':{parts.port}' if parts.port else ''}"
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class PartnerPublisher:
    def __init__(
        self,
        rabbit_url: str,
        namespace: str,
        *,
        exchange: str | None = None,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        """Publishes to the namespace's events exchange, or to ``exchange`` if given
        (``""`` is the broker's default exchange, which routes by queue name; only a
        measuring floor uses it, as the connection of ``rabbit_url``).

        ``passwords``: partners whose broker users exist already (docker-compose's, made
        by its provision job), signed in with these passwords as they are; any other
        partner is made a local one on first use (:class:`DevPartners`)."""
        self.passwords = dict(passwords or {})
        self.rabbit_url = rabbit_url
        self.exchange_name = f"{namespace}.events" if exchange is None else exchange
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._partners: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._partner_connections: list[aio_pika.abc.AbstractRobustConnection] = []
        self._opening: dict[str, asyncio.Lock] = {}
        self._dev: DevPartners | None = None

    async def __aenter__(self) -> Self:
        self._connection = await aio_pika.connect_robust(self.rabbit_url)
        self._exchange = await self._open_exchange(self._connection)
        return self

    async def _open_exchange(
        self, connection: aio_pika.abc.AbstractRobustConnection
    ) -> aio_pika.abc.AbstractExchange:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return (
            await channel.get_exchange(self.exchange_name, ensure=True)
            if self.exchange_name
            else channel.default_exchange
        )

    async def __aexit__(self, *exc: object) -> None:
        for connection in self._partner_connections:
            await connection.close()
        if self._connection is not None:
            await self._connection.close()

    async def _as_partner(self, partner_id: str, routing_key: str) -> aio_pika.abc.AbstractExchange:
        if partner_id in self._partners:
            return self._partners[partner_id]
        async with self._opening.setdefault(partner_id, asyncio.Lock()):
            if partner_id not in self._partners:
                password = self.passwords.get(partner_id)
                if password is None:
                    if self._dev is None:
                        self._dev = await asyncio.to_thread(DevPartners)
                    password = await asyncio.to_thread(
                        self._dev.ensure, partner_id, routing_key, self.exchange_name
                    )
                connection = await aio_pika.connect_robust(
                    partner_url(self.rabbit_url, partner_id, password)
                )
                self._partner_connections.append(connection)
                self._partners[partner_id] = await self._open_exchange(connection)
        return self._partners[partner_id]

    async def publish(self, event: Event) -> None:
        await self.publish_raw(
            event.to_wire(),
            event.ROUTING_KEY,
            message_id=str(event.event_id),
            producer=event.producer,
        )

    async def publish_raw(
        self, body: bytes, routing_key: str, *, message_id: str, producer: str | None = None
    ) -> None:
        """A partner event goes out as its producer (read from the body if not given);
        a body without one (a malformed message) as the connection of ``rabbit_url``."""
        assert self._exchange is not None, "use 'async with PartnerPublisher(...)'"
        exchange, user_id = self._exchange, None
        if self.exchange_name and routing_key.startswith(PARTNER_PREFIX):
            producer = producer or producer_of(body)
            if producer is not None and PARTNER_ID.match(producer):
                exchange, user_id = await self._as_partner(producer, routing_key), producer
        await exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
                user_id=user_id,
            ),
            routing_key=routing_key,
            mandatory=True,
        )
