"""What every service is made of, assembled without I/O.

``build_runtime`` creates the broker, the Mongo client, the unit of work, the
outbox relay, the dead-letter target and the parking lot. ``run_lifespan`` is
the one place they connect, declare and start (in order), and stop (in
reverse). Each service's ``bootstrap.create_app`` calls both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faststream.rabbit import Channel, RabbitBroker, RabbitQueue
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from faststream.rabbit.schemas import QueueType
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from . import logs, tracing
from .contracts.catalogue import BY_ROUTING_KEY
from .contracts.envelope import Event
from .messaging.deadletter import DeadLetters, failure_middleware
from .messaging.log_context import EventLogContext
from .messaging.outbox import OutboxRelay
from .messaging.outcomes import PartnerMessages
from .messaging.parking import ParkingLot
from .messaging.subscriptions import Subscriptions
from .messaging.topology import Topology
from .metrics import Metrics
from .persistence.mongo import MongoUnitOfWork, ensure_plumbing_indexes, make_client
from .settings import ServiceSettings
from .transport import broker_security, mongo_tls_options

log = logging.getLogger("lotse.service")

Document = dict[str, Any]
StartHook = Callable[[], Awaitable[None]]


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    topology: Topology
    broker: RabbitBroker
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    uow: MongoUnitOfWork
    relay: OutboxRelay
    dead_letters: DeadLetters
    parking: ParkingLot
    subscriptions: Subscriptions
    partner_messages: PartnerMessages
    metrics: Metrics


def build_runtime(settings: ServiceSettings) -> ServiceRuntime:
    logs.install()  # no personal data in any log line of this process
    topology = Topology(settings.namespace, settings.service_name)
    metrics = Metrics(settings.service_name)
    dead_letters = DeadLetters(topology, metrics)
    client = make_client(settings.mongo_url, **mongo_tls_options(settings))
    db = client[settings.database_name]
    partner_messages = PartnerMessages(db, keep_s=settings.partner_messages_keep_days * 86400)
    parking = ParkingLot(
        db,
        dead_letters,
        max_age_s=settings.parked_max_age_s,
        recheck_s=settings.parking_recheck_s,
        outcomes=partner_messages,
    )
    tracing_middleware = [RabbitTelemetryMiddleware()] if tracing.enabled() else []
    metrics_middleware = (
        [RabbitPrometheusMiddleware(registry=metrics.registry, app_name=settings.service_name)]
        if settings.metrics
        else []
    )
    broker = RabbitBroker(
        settings.rabbit_url,
        security=broker_security(settings),  # TLS for amqps:// URLs
        default_channel=Channel(prefetch_count=settings.prefetch, on_return_raises=True),
        app_id=settings.service_name,
        graceful_timeout=15.0,
        middlewares=[
            *tracing_middleware,  # outermost: the consumer's span covers all that follows
            *metrics_middleware,
            EventLogContext,  # the dead-letter and retry logs name the event too
            failure_middleware(
                dead_letters,
                parking,
                settings.retry_delays_s,
                settings.redelivery_delay_s,
                outcomes=partner_messages,
                metrics=metrics,
            ),
        ],
        log_level=logging.DEBUG,
    )
    dead_letters.broker = broker
    relay = OutboxRelay(
        db,
        broker,
        topology.events_exchange,
        recover_every_s=settings.outbox_recover_every_s,
        mark_every_s=settings.outbox_mark_every_s,
    )
    uow = MongoUnitOfWork(
        client,
        db,
        on_committed=relay.kick,
        max_concurrent=settings.transaction_concurrency,
        batch_max=settings.batch_max,
        batch_wait_s=settings.batch_wait_ms / 1000,
        on_batch=metrics.batched,
    )
    return ServiceRuntime(
        settings=settings,
        topology=topology,
        broker=broker,
        client=client,
        db=db,
        uow=uow,
        relay=relay,
        dead_letters=dead_letters,
        parking=parking,
        subscriptions=Subscriptions(
            broker,
            topology,
            delivery_limit=settings.delivery_limit,
            fail_event_ids=frozenset(settings.chaos_fail_event_ids),
        ),
        partner_messages=partner_messages,
        metrics=metrics,
    )


def document_publications(rt: ServiceRuntime, events: Sequence[type[Event]]) -> None:
    """Declare what the service publishes, so its AsyncAPI document lists it.

    Publishing itself goes through the outbox relay; these publishers carry the
    exchange, routing key and payload schema for the documentation.
    """
    for event_cls in events:
        rt.broker.publisher(
            exchange=rt.topology.events_exchange,
            routing_key=event_cls.ROUTING_KEY,
            title=f"{rt.settings.service_name}:{event_cls.ROUTING_KEY}",
            description=event_cls.DESCRIPTION,
            schema=event_cls,
            persist=True,
        )


def event_log_queue(topology: Topology) -> RabbitQueue:
    """A stream of every event (7 days), for operators and for debugging flows.

    It is bound to the catalogue's routing keys, not ``#``: so every known event is
    routable even before its consumer declared its queue, while a routing key no
    one knows (a partner's typo, ``partner.opening.reportd.v1``) reaches no queue
    and a ``mandatory`` publish comes back to its publisher as unroutable.
    """
    return RabbitQueue(
        f"{topology.namespace}.event-log",
        queue_type=QueueType.STREAM,
        durable=True,
        arguments={"x-max-age": "7D"},
    )


async def declare_topology(rt: ServiceRuntime) -> None:
    """Exchanges and queues beyond the subscriptions FastStream declares itself."""
    t = rt.topology
    events = await rt.broker.declare_exchange(t.events_exchange)
    await rt.broker.declare_exchange(t.dead_exchange)
    dead_queue = await rt.broker.declare_queue(t.dead_letter_queue)
    await dead_queue.bind(t.dead_exchange.name, t.dead_letter_routing_key)
    log_queue = await rt.broker.declare_queue(event_log_queue(t))
    await log_queue.unbind(events, "#")  # declared so by earlier versions
    for routing_key in BY_ROUTING_KEY:
        await log_queue.bind(events, routing_key)
    retry = await rt.broker.declare_exchange(t.retry_exchange)
    retry_return = await rt.broker.declare_exchange(t.retry_return_exchange)
    for attempt, delay in enumerate(rt.settings.retry_delays_s, start=1):
        queue = await rt.broker.declare_queue(t.retry_queue(attempt, delay))
        await queue.bind(retry, t.retry_routing_key(attempt, "#"))
    for routing_key in rt.subscriptions.routing_keys:
        queue = await rt.broker.declare_queue(t.queue_for(routing_key, rt.settings.delivery_limit))
        # retried and replayed messages come back to the same queue
        await queue.bind(retry_return, t.retry_routing_key("*", routing_key))


async def ping_database(rt: ServiceRuntime, timeout_s: float = 1.0) -> bool:
    try:
        await asyncio.wait_for(rt.client.admin.command("ping"), timeout=timeout_s)
    except Exception:
        return False
    return True


async def ping_broker(rt: ServiceRuntime, timeout_s: float = 1.0) -> bool:
    try:
        return bool(await rt.broker.ping(timeout=timeout_s))
    except Exception:
        return False


@contextlib.asynccontextmanager
async def run_lifespan(
    rt: ServiceRuntime,
    *,
    index_setup: Sequence[StartHook] = (),
    background: Sequence[tuple[StartHook, StartHook]] = (),
) -> AsyncIterator[None]:
    """Connect, declare, start. On exit: the background loops and the relay stop first
    (unsent rows stay in the outbox; the next start or another replica publishes them
    once their lease runs out), then the broker, which lets in-flight handlers finish
    (graceful_timeout) and returns unacknowledged messages to their queues."""
    await ensure_plumbing_indexes(rt.db)
    await rt.parking.ensure_indexes()
    await rt.partner_messages.ensure_indexes()
    for setup in index_setup:
        await setup()
    await rt.broker.connect()
    await declare_topology(rt)
    await rt.broker.start()
    if not rt.settings.chaos_hold_outbox:
        await rt.relay.start()
    rt.relay.kick()  # publish whatever a previous run left in the outbox
    await rt.parking.start()
    for start, _ in background:
        await start()
    log.info("%s started", rt.settings.service_name)
    try:
        yield
    finally:
        for _, stop in reversed(background):
            await stop()
        await rt.parking.stop()
        await rt.relay.stop()  # what is still unsent stays in the outbox for the next start
        await rt.broker.stop()  # waits for in-flight handlers (graceful_timeout)
        await rt.client.close()
        log.info("%s stopped", rt.settings.service_name)
