"""How much latency the transactional outbox adds per event.

Three ways to get one event from a handler to a consumer, each measured N times
one after another against the machine's RabbitMQ and a MongoDB-wire server:

- direct:    publish (persistent, confirmed, mandatory) -> consumer receives it;
- tx_direct: a transaction writes one document, commits, then publishes directly
             (what a service without an outbox does, unsafely);
- outbox:    the same transaction also writes the event to the outbox; the relay,
             kicked on commit, publishes it -> consumer receives it.

``added_ms`` = outbox - tx_direct: what the outbox itself costs (one more
insert in the transaction, the relay's lease and mark-sent round trips).
Writes bench/results/outbox.json and prints it. A benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika

from lotse_devstack.cleanup import delete_namespace
from lotse_devstack.ports import free_port
from lotse_devstack.secantus import mongo_url, start_secantus, stop_secantus
from lotse_shared.contracts.partner import OpeningWithdrawn, OpeningWithdrawnV1
from lotse_shared.persistence.mongo import session_of
from lotse_shared.service import build_runtime, declare_topology
from lotse_shared.settings import ServiceSettings

N = int(os.environ.get("BENCH_N", "500"))
RESULTS = Path(__file__).parent / "results" / "outbox.json"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
    }


async def main() -> dict[str, Any]:
    given = os.environ.get("MONGO_URL")
    db_proc = None
    if not given:
        port = free_port()
        db_proc = start_secantus(port, Path(tempfile.mkdtemp(prefix="lotse-bench-")) / "db")
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    settings = ServiceSettings(
        service_name="bench",
        namespace=namespace,
        mongo_url=given or mongo_url(port),
        outbox_recover_every_s=1.0,
    )
    rt = build_runtime(settings)
    await rt.broker.connect()
    await declare_topology(rt)
    await rt.broker.start()
    await rt.relay.start()

    received: dict[str, float] = {}
    arrived = asyncio.Event()
    connection = await aio_pika.connect(settings.rabbit_url)
    channel = await connection.channel()
    exchange = await channel.get_exchange(f"{namespace}.events")
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, OpeningWithdrawn.ROUTING_KEY)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received[json.loads(message.body)["event_id"]] = time.perf_counter()
        arrived.set()

    await queue.consume(on_message, no_ack=True)

    def event() -> OpeningWithdrawn:
        return OpeningWithdrawn.create(OpeningWithdrawnV1(source_ref="R"), producer="bench")

    async def until_received(event_id: str) -> float:
        while event_id not in received:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), timeout=10)
        return received[event_id]

    async def direct(e: OpeningWithdrawn) -> None:
        await rt.broker.publish(
            e.to_wire(),
            exchange=rt.topology.events_exchange,
            routing_key=e.ROUTING_KEY,
            persist=True,
            mandatory=True,
            message_id=str(e.event_id),
        )

    things = rt.db["things"]

    async def tx_direct(e: OpeningWithdrawn) -> None:
        async with rt.uow.transaction() as tx:
            await things.insert_one({"n": 1}, session=session_of(tx))
        await direct(e)

    async def outbox(e: OpeningWithdrawn) -> None:
        async with rt.uow.transaction() as tx:
            await things.insert_one({"n": 1}, session=session_of(tx))
            tx.publish(e)

    timings: dict[str, list[float]] = {}
    for name, way in (("direct", direct), ("tx_direct", tx_direct), ("outbox", outbox)):
        samples = []
        for i in range(N + 20):
            e = event()
            started = time.perf_counter()
            await way(e)
            done = await until_received(str(e.event_id))
            if i >= 20:  # warm-up
                samples.append((done - started) * 1000)
        timings[name] = samples

    result = {
        "events_each": N,
        "database": "mongod" if given else "SecantusDB",
        **{f"{name}_ms": percentiles(samples) for name, samples in timings.items()},
        "added_ms": {
            "median": round(
                statistics.median(timings["outbox"]) - statistics.median(timings["tx_direct"]), 2
            ),
            "p99": round(
                percentiles(timings["outbox"])["p99"] - percentiles(timings["tx_direct"])["p99"], 2
            ),
        },
    }
    await connection.close()
    await rt.relay.stop()
    await rt.broker.stop()
    await rt.client.drop_database(settings.database_name)
    await rt.client.close()
    if db_proc is not None:
        stop_secantus(db_proc)
    await delete_namespace(settings.rabbit_url, namespace, services=["bench"])
    return result


if __name__ == "__main__":
    outcome = asyncio.run(main())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome, indent=2))
