"""Helpers the integration and end-to-end tests share."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aio_pika
import httpx
from fastapi import FastAPI

from lotse_devstack.partner import PartnerPublisher
from lotse_shared.contracts.envelope import Event

T = TypeVar("T")


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start a service in this process (lifespan included) and talk HTTP to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout_s: float = 15.0, what: str = "condition"
) -> T:
    """Poll until probe returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


class EventTap:
    """A temporary queue bound to the events exchange: what was really published."""

    def __init__(self, rabbit_url: str, namespace: str, *routing_keys: str) -> None:
        self.rabbit_url = rabbit_url
        self.exchange = f"{namespace}.events"
        self.routing_keys = routing_keys or ("#",)
        self.messages: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def __aenter__(self) -> EventTap:
        self._connection = await aio_pika.connect(self.rabbit_url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in self.routing_keys:
            await self._queue.bind(exchange, key)
        await self._queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.messages.append(message)

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    def bodies(self, routing_key: str | None = None) -> list[dict[str, Any]]:
        return [
            json.loads(m.body)
            for m in self.messages
            if routing_key is None or m.routing_key == routing_key
        ]

    async def wait_for(
        self, routing_key: str, count: int = 1, timeout_s: float = 15.0
    ) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]]:
            found = self.bodies(routing_key)
            return found if len(found) >= count else []

        return await eventually(enough, timeout_s=timeout_s, what=f"{count}x {routing_key}")


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
