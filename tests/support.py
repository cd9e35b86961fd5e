"""Helpers the integration and end-to-end tests share."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
import httpx
from fastapi import FastAPI

from lotse_devstack.observe import EventTap, eventually
from lotse_devstack.partner import PartnerPublisher
from lotse_devstack.samples import CASEWORKER
from lotse_devstack.tokens import DevIssuer
from lotse_shared.auth import Role
from lotse_shared.contracts.envelope import Event

__all__ = [
    "EventTap",
    "applied",
    "as_user",
    "bearer",
    "dead_letters",
    "eventually",
    "publish",
    "running",
    "token_for",
]


def as_user(
    user: str, role: Role = Role.CASEWORKER, *, district: str | None = "kassel"
) -> dict[str, str]:
    """Headers that act as ``user``, signed with the keys ``service_env`` points at."""
    issuer = DevIssuer(Path(os.environ["LOTSE_AUTH_JWKS_FILE"]).parent)
    return {"Authorization": f"Bearer {issuer.token(role, user=user, district=district)}"}


def token_for(
    app: FastAPI,
    role: Role = Role.CASEWORKER,
    *,
    user: str = CASEWORKER,
    district: str | None = "kassel",
    partner: str | None = None,
) -> str:
    """A token the app trusts: signed with the dev keys whose JWKS it reads."""
    jwks_file = app.state.runtime.settings.auth_jwks_file
    assert jwks_file is not None, "service_env sets LOTSE_AUTH_JWKS_FILE"
    issuer = DevIssuer(Path(jwks_file).parent)
    return issuer.token(role, user=user, district=district, partner=partner)


def bearer(
    app: FastAPI,
    role: Role = Role.CASEWORKER,
    *,
    user: str = CASEWORKER,
    district: str | None = "kassel",
    partner: str | None = None,
) -> dict[str, str]:
    token = token_for(app, role, user=user, district=district, partner=partner)
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def running(
    app: FastAPI,
    role: Role | None = Role.CASEWORKER,
    *,
    user: str = CASEWORKER,
    district: str | None = "kassel",
) -> AsyncIterator[httpx.AsyncClient]:
    """Start a service in this process (lifespan included) and talk HTTP to it, by
    default as the sample person's caseworker in Kassel (``role=None``: no token)."""
    headers = bearer(app, role, user=user, district=district) if role is not None else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://service", headers=headers
        ) as client:
            yield client


async def dead_letters(
    rabbit_url: str, namespace: str, service: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message from a service's dead-letter queue."""
    found = []
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{namespace}.{service}.dead", ensure=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(message)
    return found


async def publish(rabbit_url: str, namespace: str, *events: Event) -> None:
    """Publish events as a partner (or another service) would."""
    async with PartnerPublisher(rabbit_url, namespace) as publisher:
        for event in events:
            await publisher.publish(event)


async def applied(app: FastAPI, event: Event, timeout_s: float = 15.0) -> None:
    """Wait until a service has applied (or deliberately ignored) an event."""
    inbox = app.state.runtime.db["inbox"]

    async def done() -> bool:
        return bool(await inbox.count_documents({"_id": str(event.event_id)}))

    await eventually(done, timeout_s=timeout_s, what=f"{event.event_type} applied")
