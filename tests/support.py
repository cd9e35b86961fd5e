"""Helpers the integration and end-to-end tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import httpx
from fastapi import FastAPI

from lotse_devstack.observe import EventTap, eventually
from lotse_devstack.partner import PartnerPublisher
from lotse_shared.contracts.envelope import Event

__all__ = ["EventTap", "applied", "dead_letters", "eventually", "publish", "running"]

__all__ = ["EventTap", "applied", "dead_letters", "eventually", "publish", "running"]


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start a service in this process (lifespan included) and talk HTTP to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
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
