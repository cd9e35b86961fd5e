"""Publish events the way a partner system does: plain AMQP, persistent, confirmed."""

from __future__ import annotations

from typing import Self

import aio_pika

from lotse_shared.contracts.envelope import Event


class PartnerPublisher:
    def __init__(self, rabbit_url: str, namespace: str, *, exchange: str | None = None) -> None:
        """Publishes to the namespace's events exchange, or to ``exchange`` if given
        (``""`` is the broker's default exchange, which routes by queue name)."""
        self.rabbit_url = rabbit_url
        self.exchange_name = f"{namespace}.events" if exchange is None else exchange
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def __aenter__(self) -> Self:
        self._connection = await aio_pika.connect_robust(self.rabbit_url)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = (
            await channel.get_exchange(self.exchange_name, ensure=True)
            if self.exchange_name
            else channel.default_exchange
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(self, event: Event) -> None:
        await self.publish_raw(event.to_wire(), event.ROUTING_KEY, message_id=str(event.event_id))

    async def publish_raw(self, body: bytes, routing_key: str, *, message_id: str) -> None:
        assert self._exchange is not None, "use 'async with PartnerPublisher(...)'"
        await self._exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
            ),
            routing_key=routing_key,
            mandatory=True,
        )
