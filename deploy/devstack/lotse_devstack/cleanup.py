"""Remove what a namespace declared: its queues, exchanges and databases.

The demo and the tests each use a fresh namespace; this leaves the broker and
the database as they found them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aio_pika
from pymongo import AsyncMongoClient

from lotse_shared.contracts.catalogue import BY_ROUTING_KEY

from .partner import DevPartners
from .stack import SERVICES

MAX_RETRY_QUEUES = 20  # more delays than anyone configures


async def delete_namespace(
    rabbit_url: str,
    namespace: str,
    mongo_url: str | None = None,
    services: Sequence[str] = SERVICES,
) -> None:
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        names = [f"{namespace}.event-log"]
        for service in services:
            names.append(f"{namespace}.{service}.dead")
            names.extend(f"{namespace}.{service}.{key}" for key in BY_ROUTING_KEY)
            names.extend(f"{namespace}.{service}.retry.{n}" for n in range(1, MAX_RETRY_QUEUES))
        for name in names:
            await channel.queue_delete(name)
        for exchange in ("events", "dead", "retry", "retry-return"):
            await channel.exchange_delete(f"{namespace}.{exchange}")
    # the local partners' topic permissions on the events exchange just deleted
    await asyncio.to_thread(DevPartners.forget_exchange, f"{namespace}.events")
    if mongo_url:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
        try:
            for name in await client.list_database_names():
                if name.startswith(f"{namespace}_"):
                    await client.drop_database(name)
        finally:
            await client.close()
