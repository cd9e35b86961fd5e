"""Watching a running stack from outside: wait for a condition, see what is published.

Shared by the demo, the chaos scenarios and the tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout_s: float = 15.0,
    what: str = "condition",
    every_s: float = 0.05,
) -> T:
    """Poll until probe returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(every_s)


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
