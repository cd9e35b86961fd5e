"""List, show and replay a service's dead letters.

Dead letters stay in ``<ns>.<service>.dead`` until replayed. Listing reads them
without taking them: they are fetched unacknowledged and go back when the
channel closes. Replaying republishes a message to ``<ns>.retry-return`` with
the routing key ``<service>.replay.<original key>``, where only that service's
queue for the original key picks it up, then removes it from the dead letters.
The service applies it at most once: an event it already applied is ignored.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from lotse_shared.messaging.deadletter import (
    HEADER_AT,
    HEADER_ATTEMPTS,
    HEADER_ERROR_TYPE,
    HEADER_REASON,
    HEADER_ROUTING_KEY,
)
from lotse_shared.messaging.topology import Topology

HEADER_REPLAYED = "x-lotse-replayed"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    service: str
    routing_key: str
    reason: str
    error_type: str
    attempts: int
    dead_at: str
    body: bytes
    headers: dict[str, Any]

    @classmethod
    def of(cls, service: str, message: AbstractIncomingMessage) -> DeadLetter:
        headers: dict[str, Any] = dict(message.headers or {})
        reason = headers.get(HEADER_REASON)
        if reason is None:  # dead-lettered by RabbitMQ itself (e.g. delivery limit)
            deaths = headers.get("x-death")
            death = deaths[0] if isinstance(deaths, list) and deaths else {}
            cause = death.get("reason", "unknown") if isinstance(death, dict) else "unknown"
            reason = f"rabbitmq: {cause!s}"
        return cls(
            message_id=message.message_id or "",
            service=service,
            routing_key=str(headers.get(HEADER_ROUTING_KEY) or message.routing_key or ""),
            reason=str(reason),
            error_type=str(headers.get(HEADER_ERROR_TYPE, "")),
            attempts=int(headers.get(HEADER_ATTEMPTS, 1) or 1),
            dead_at=str(headers.get(HEADER_AT, "")),
            body=message.body,
            headers=headers,
        )


class DeadLetterDesk:
    def __init__(
        self, rabbit_url: str, namespace: str, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.rabbit_url = rabbit_url
        self.namespace = namespace
        self.ssl_context = ssl_context  # for amqps:// (lotse_shared.transport)

    async def _connect(self) -> aio_pika.abc.AbstractConnection:
        if self.ssl_context is None:
            return await aio_pika.connect(self.rabbit_url)
        return await aio_pika.connect(self.rabbit_url, ssl_context=self.ssl_context)

    async def list(self, service: str) -> list[DeadLetter]:
        connection = await self._connect()
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                Topology(self.namespace, service).dead_letter_queue.name, passive=True
            )
            letters = []
            for _ in range(queue.declaration_result.message_count or 0):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                letters.append(DeadLetter.of(service, message))
            # closing the channel returns every fetched message to the queue
        return letters

    async def replay(self, service: str, message_id: str | None) -> int:
        """Replay one dead letter (by message id) or, with None, all of them."""
        topology = Topology(self.namespace, service)
        replayed = 0
        connection = await self._connect()
        async with connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            queue = await channel.declare_queue(topology.dead_letter_queue.name, passive=True)
            target = await channel.get_exchange(topology.retry_return_exchange.name)
            # only what is there now: a replayed message that fails again comes back
            # to this queue and must not be replayed in the same run
            waiting = queue.declaration_result.message_count or 0
            for _ in range(waiting):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                if message_id is not None and message.message_id != message_id:
                    continue  # left unacknowledged: back to the queue on close
                letter = DeadLetter.of(service, message)
                headers = {
                    k: v
                    for k, v in letter.headers.items()
                    if not k.startswith("x-death") and k not in (HEADER_REASON, HEADER_ATTEMPTS)
                }
                headers[HEADER_REPLAYED] = True
                await target.publish(
                    aio_pika.Message(
                        letter.body,
                        headers=headers,
                        message_id=message.message_id,
                        correlation_id=message.correlation_id,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=topology.retry_routing_key("replay", letter.routing_key),
                    mandatory=True,
                )
                await message.ack()
                replayed += 1
        return replayed
