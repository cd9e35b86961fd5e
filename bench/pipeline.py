"""Where the time goes in the main flow: throughput, latency, the I/O floor, memory,
scale-out and a profile, in one run on this machine.

The flow: "course completed" published -> placement computes suggestions ->
"suggestions ready" -> notifications stores the caseworker's inbox row (and
e-mails it to the in-process SMTP sink, as in production). The whole stack runs
as processes (:class:`lotse_devstack.flow.FlowStack`: the machine's RabbitMQ,
its own SecantusDB), in these phases:

1. floor      bare aio-pika + PyMongo on the same broker and database, no framework,
              no validation: per event publish+consume the course-completed message,
              insert one suggestions document, publish+consume one suggestions-ready
              message, insert one notification document (quorum queues, persistent
              messages, publisher confirms, prefetch 32, as the services use);
2. throughput N events published as fast as confirms allow; events / (last inbox row
              - first publish), with the CPU each process spent: as they run by default
              (each message in a transaction of its own), with group commit in placement
              and notifications (LOTSE_BATCH_MAX=64), with a relay and dispatch round per
              event (LOTSE_OUTBOX_MARK_EVERY_S=0, LOTSE_DISPATCH_GATHER_S=0: as before
              they gathered), and as by default again (what the database's growth by
              3 N events alone changes);
3. latency    events offered at a fixed rate of half that throughput; publish ->
              inbox row (the row's created_at, stamped in the same transaction);
4. replicas   the same burst with one and with two placement processes on the same
              queues, with how busy the database was (share of one core), then a count
              of suggestion sets and notifications per event;
5. profile    pyinstrument inside the busiest service (by CPU seconds in phase 2)
              during one more burst (py-spy cannot attach to processes here);
6. db ops     the database's own profiler counts operations per event and service
              during a short burst (it slows the database, so it runs alone);
0. idle       before any traffic, the same profiler counts what each service asks of
              the database per second while nothing happens (BENCH_IDLE_S, 60 s).

The three throughput runs compare group commit and gathered rounds with their absence,
in the same run.
Writes bench/results/pipeline.json (and .png, and profile-*.txt), prints the JSON.
A benchmark: it prints figures and fails on none of them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import platform
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from pymongo import AsyncMongoClient

from lotse_devstack.flow import WITH_SUGGESTIONS, FlowStack
from lotse_devstack.partner import PartnerPublisher
from lotse_devstack.stack import SERVICES
from lotse_shared.contracts.envelope import Event

N = int(os.environ.get("BENCH_N", "5000"))
LATENCY_N = int(os.environ.get("BENCH_LATENCY_N", "1000"))
BURST_N = int(os.environ.get("BENCH_BURST_N", "600"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "60"))
OPS_N = int(os.environ.get("BENCH_OPS_N", "200"))
RABBIT_URL = os.environ.get("LOTSE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
RESULTS = Path(__file__).parent / "results"
PUBLISH_CONCURRENCY = 64
# up to 64 messages in one transaction (off by default: docs/performance.md)
GROUP_COMMIT = {"LOTSE_BATCH_MAX": "64"}
# what the relay and the dispatcher did before they gathered a burst's work into one round
ONE_ROUND_PER_EVENT = {"LOTSE_OUTBOX_MARK_EVERY_S": "0", "LOTSE_DISPATCH_GATHER_S": "0"}
FLOW_SERVICES = ("placement", "notifications")
PREFETCH = 32
OWN = "lotse-bench"  # the comment on the bench's own queries, left out of the counts
Document = dict[str, Any]


# --- publishing, the same way for the floor and the stack ------------------------------


class Publisher(PartnerPublisher):
    """A partner's publishing (persistent, confirmed, mandatory), in bursts with a bound
    on the confirms in flight or at a fixed rate, noting when each message left."""

    def __init__(self, rabbit_url: str, namespace: str, *, exchange: str | None = None) -> None:
        super().__init__(rabbit_url, namespace, exchange=exchange)
        self.sent_at: dict[str, float] = {}  # message id -> wall clock at publish

    async def one(self, body: bytes, routing_key: str, message_id: str) -> None:
        self.sent_at[message_id] = time.time()
        await self.publish_raw(body, routing_key, message_id=message_id)

    async def burst(self, messages: Sequence[tuple[bytes, str, str]]) -> None:
        """As fast as the broker confirms, at most PUBLISH_CONCURRENCY unconfirmed."""
        gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def send(message: tuple[bytes, str, str]) -> None:
            async with gate:
                await self.one(*message)

        await asyncio.gather(*(send(m) for m in messages))

    async def at_rate(self, messages: Sequence[tuple[bytes, str, str]], per_s: float) -> None:
        """Message i leaves at start + i / per_s, whatever the confirms take."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending = []
        for i, message in enumerate(messages):
            delay = start + i / per_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(self.one(*message)))
        await asyncio.gather(*pending)


def wire(events: Sequence[Event]) -> list[tuple[bytes, str, str]]:
    return [(e.to_wire(), e.ROUTING_KEY, str(e.event_id)) for e in events]


# --- 1. the floor ------------------------------------------------------------------------


async def floor(rabbit_url: str, mongo_url: str, events: Sequence[Event]) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    completed_q, ready_q = f"floor-{run}.completed", f"floor-{run}.ready"
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
    db = client[f"floor_{run}"]
    connection = await aio_pika.connect(rabbit_url)
    done = asyncio.Event()
    stored = 0
    try:
        setup = await connection.channel()
        for name in (completed_q, ready_q):
            await setup.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        placement_ch = await connection.channel(publisher_confirms=True)
        await placement_ch.set_qos(prefetch_count=PREFETCH)
        notify_ch = await connection.channel()
        await notify_ch.set_qos(prefetch_count=PREFETCH)

        async def placement(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            cause = json.loads(message.body)
            await db["suggestions"].insert_one(
                {"cause": cause["event_id"], "person": cause["payload"]["person_id"]}
            )
            await placement_ch.default_exchange.publish(
                aio_pika.Message(
                    json.dumps({"cause": cause["event_id"]}).encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=ready_q,
            )
            await message.ack()

        async def notifications(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal stored
            ready = json.loads(message.body)
            await db["notifications"].insert_one({"cause": ready["cause"], "at": datetime.now(UTC)})
            await message.ack()
            stored += 1
            if stored == len(events):
                done.set()

        await (await placement_ch.get_queue(completed_q)).consume(placement)
        await (await notify_ch.get_queue(ready_q)).consume(notifications)
        started = time.perf_counter()
        async with Publisher(rabbit_url, "", exchange="") as pub:
            await pub.burst([(body, completed_q, mid) for body, _, mid in wire(events)])
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()  # consumers first, so deleting their queues cancels none
        async with await aio_pika.connect(rabbit_url) as cleanup:
            channel = await cleanup.channel()
            for name in (completed_q, ready_q):
                await channel.queue_delete(name)
        await client.drop_database(f"floor_{run}")
        await client.close()
    return {"events": len(events), "seconds": round(elapsed, 2), "eps": len(events) / elapsed}


# --- the stack ---------------------------------------------------------------------------


SHARED = ("database", "rabbitmq", "bench")  # the processes both the floor and the stack use


def shared_pids(db_pid: int) -> dict[str, int]:
    """The database, the machine's RabbitMQ and this process (publisher, SMTP sink)."""
    pids = {"database": db_pid, "bench": os.getpid()}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "beam.smp":
                    pids["rabbitmq"] = int(proc.name)
            except OSError:
                continue
    return pids


class Probe:
    """CPU seconds and peak RSS of processes, from /proc."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._tick = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> dict[str, float]:
        found = {}
        for name, pid in self.pids.items():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            found[name] = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
        return found

    def cpu_ms_per_event(self, before: dict[str, float], events: int) -> dict[str, float]:
        after = self.cpu_s()
        return {k: round((after[k] - before[k]) * 1000 / events, 2) for k in self.pids}

    def peak_rss_mb(self) -> dict[str, float]:
        found = {}
        for name, pid in self.pids.items():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    found[name] = round(int(line.split()[1]) / 1024, 1)
        return found

    def services_peak_rss_mb(self) -> dict[str, float]:
        return {k: v for k, v in self.peak_rss_mb().items() if k not in SHARED}


async def inbox_times(h: FlowStack, events: Sequence[Event]) -> dict[str, datetime]:
    """correlation id -> when its suggestions joined the completion's alert in the inbox."""
    wanted = {str(e.correlation_id) for e in events}
    found = {}
    async for doc in h.db("notifications")["notifications"].find(
        WITH_SUGGESTIONS, {"correlation_id": 1, "updated_at": 1}, comment=OWN
    ):
        if str(doc["correlation_id"]) in wanted:
            found[str(doc["correlation_id"])] = doc["updated_at"].replace(tzinfo=UTC)
    return found


async def until_stored(h: FlowStack, events: Sequence[Event], timeout_s: float) -> None:
    """Wait until every event has its inbox row (or give up).

    Polls the correlation-id index for the last 50 events published (the flow is
    roughly first in, first out) and checks the whole phase only once those are in: a
    count over the whole collection every second cost the database more than a third
    of its time at 10,000 rows, and slowed down what it measured."""
    notes = h.db("notifications")["notifications"]
    ids = [str(e.correlation_id) for e in events]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for wanted in (ids[-50:], ids):
            query = {"correlation_id": {"$in": wanted}, **WITH_SUGGESTIONS}
            if await notes.count_documents(query, comment=OWN) < len(wanted):
                break
        else:
            return
        await asyncio.sleep(0.5)


async def until_quiet(h: FlowStack, timeout_s: float = 300.0) -> None:
    """Wait until what the previous phase left is done: no email due and no event
    unpublished in any service's outbox. A phase's inbox rows are in long before its
    emails are sent (the dispatcher works through them after the burst); measured on top
    of that backlog, the next phase's throughput and latency were the backlog's too."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        due = {"email.status": "pending", "email.next_attempt_at": {"$lte": now}}
        notes = h.db("notifications")["notifications"]
        waiting = await notes.count_documents(due, limit=1, comment=OWN)
        for svc in SERVICES:
            unsent = {"sent_at": None}
            waiting += await h.db(svc)["outbox"].count_documents(unsent, limit=1, comment=OWN)
        if not waiting:
            return
        await asyncio.sleep(0.5)
    print(f"bench: still busy after {timeout_s:.0f} s; measuring anyway", flush=True)


async def burst(h: FlowStack, events: Sequence[Event]) -> dict[str, Any]:
    """Publish as fast as possible; events per second from first publish to last row."""
    await until_quiet(h)
    first = time.time()
    async with Publisher(h.rabbit_url, h.namespace) as pub:
        await pub.burst(wire(events))
    await until_stored(h, events, timeout_s=120 + len(events) / 5)
    rows = await inbox_times(h, events)
    last = max(rows.values()).timestamp() if rows else time.time()
    return {
        "events": len(events),
        "completed": len(rows),
        "seconds": round(last - first, 2),
        "eps": len(rows) / (last - first),
    }


def stack_probe(h: FlowStack) -> Probe:
    """The stack's processes as they run now (a restart gives new ones) and the shared."""
    assert h.db_proc is not None
    return Probe({**{s: p.pid for s, p in h.stack.procs.items()}, **shared_pids(h.db_proc.pid)})


async def measured_burst(
    h: FlowStack, events: Sequence[Event]
) -> tuple[dict[str, Any], dict[str, float]]:
    """``burst``, and the CPU milliseconds per event each process spent on it."""
    probe = stack_probe(h)
    before = probe.cpu_s()
    run = await burst(h, events)
    return run, probe.cpu_ms_per_event(before, len(events))


def busy(run: dict[str, Any], cpu_ms: dict[str, float]) -> float:
    """The share of one core the database used during ``run`` (1.0: saturated)."""
    return round(cpu_ms["database"] * run["events"] / 1000 / run["seconds"], 2)


async def offered(
    h: FlowStack, events: Sequence[Event], per_s: float
) -> tuple[list[float], list[float]]:
    """At a fixed offered rate: ms from publish to the inbox row, and (to see which
    half of the flow the time goes to) ms from publish to placement's suggestion set."""
    await until_quiet(h)
    async with Publisher(h.rabbit_url, h.namespace) as pub:
        await pub.at_rate(wire(events), per_s)
        sent = dict(pub.sent_at)
    await until_stored(h, events, timeout_s=120)
    rows = await inbox_times(h, events)
    by_corr = {str(e.correlation_id): str(e.event_id) for e in events}
    to_inbox = sorted((at.timestamp() - sent[by_corr[corr]]) * 1000 for corr, at in rows.items())
    to_suggestions = []
    async for doc in h.db("placement")["suggestion_sets"].find(
        {"cause_event_id": {"$in": list(sent)}}, {"cause_event_id": 1, "created_at": 1}
    ):
        at = doc["created_at"].replace(tzinfo=UTC).timestamp()
        to_suggestions.append((at - sent[str(doc["cause_event_id"])]) * 1000)
    return to_inbox, sorted(to_suggestions)


def pct(samples: Sequence[float], p: float) -> float:
    return round(samples[min(len(samples) - 1, int(len(samples) * p))], 1)


async def restart(h: FlowStack, services: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Restart services with ``env`` added to their settings (none: as configured)."""
    for service in services:
        await asyncio.to_thread(h.stack.stop_service, service)
        h.stack.start_service(service, env=env)
    await asyncio.to_thread(h.stack.wait_healthy, tuple(services), 60)


async def profile(h: FlowStack, service: str, events: Sequence[Event]) -> dict[str, Any]:
    """pyinstrument inside ``service`` (restarted under it) during one burst. py-spy
    cannot read other processes' memory on these machines."""
    stats_file = RESULTS / f"profile-{service}.pstats"
    await asyncio.to_thread(h.stack.stop_service, service)
    h.stack.start_service(
        service, python_args=["-m", "pyinstrument", "-r", "pstats", "-o", str(stats_file)]
    )
    await asyncio.to_thread(h.stack.wait_healthy, (service,), 60)
    run = await burst(h, events)
    # uvicorn re-raises SIGTERM after its shutdown, which would kill pyinstrument
    # before it writes; SIGINT ends in a KeyboardInterrupt that pyinstrument handles
    await asyncio.to_thread(
        functools.partial(h.stack.stop_service, service, timeout_s=120, stop_signal=signal.SIGINT)
    )
    h.stack.start_service(service)
    await asyncio.to_thread(h.stack.wait_healthy, (service,), 60)
    return {
        "service": service,
        "burst_eps": round(run["eps"], 1),
        **summarise_pstats(service, stats_file),
    }


async def idle_database_ops(h: FlowStack, seconds: float) -> dict[str, Any]:
    """Operations per second each service's processes cause with no traffic at all:
    their background loops (outbox recovery, parking sweep, delivery, matching)."""
    await asyncio.sleep(15)  # past start-up, when every loop has run once
    for svc in SERVICES:
        await h.db(svc).command({"profile": 2, "slowms": 0})
    await asyncio.sleep(seconds)
    found: dict[str, Any] = {}
    for svc in SERVICES:
        await h.db(svc).command({"profile": 0})
        shapes: Counter[str] = Counter()
        async for doc in h.db(svc)["system.profile"].find({}, {"op": 1, "ns": 1}):
            shapes[f"{doc.get('op')} {str(doc.get('ns', '')).split('.', 1)[-1]}"] += 1
        await h.db(svc)["system.profile"].drop()  # the later count starts from nothing
        found[svc] = {
            "ops_per_s": round(sum(shapes.values()) / seconds, 2),
            "by_shape": {k: round(n / seconds, 2) for k, n in shapes.most_common(8)},
        }
    return found


async def count_database_ops(h: FlowStack, events: Sequence[Event]) -> dict[str, Any]:
    """The database's own profiler (every operation into ``system.profile``) on every
    service's database during one burst; it slows the burst down, so it runs alone."""
    for svc in SERVICES:
        await h.db(svc).command({"profile": 2, "slowms": 0})
    run = await burst(h, events)
    for svc in SERVICES:
        await h.db(svc).command({"profile": 0})
    return await database_ops(h, run["completed"] or 1)


def summarise_pstats(service: str, stats_file: Path) -> dict[str, Any]:
    """Where the service's event-loop thread spent its (wall-clock) time."""
    if not stats_file.exists():
        return {"error": f"pyinstrument wrote no {stats_file.name}"}
    stats = pstats.Stats(str(stats_file))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values()) or 1.0
    own = sorted(entries.items(), key=lambda kv: -kv[1][2])
    ours = sorted(
        ((k, v) for k, v in entries.items() if "lotse_" in k[0]), key=lambda kv: -kv[1][3]
    )

    def name(key: tuple[str, int, str]) -> str:
        path, line, func = key
        return f"{func} ({'/'.join(Path(path).parts[-2:])}:{line})"

    waiting = ("epoll.poll", "select")  # the event loop with nothing to run
    idle = sum(v[2] for k, v in entries.items() if k[2] in waiting)
    busy = max(total - idle, 1e-9)
    lines = [
        f"pyinstrument profile of {service} during one burst: {total:.1f} s sampled,",
        f"{idle / total:.0%} of it idle in epoll (waiting for the broker and the database)",
        "",
        "own time while busy (where the event loop's thread computed):",
    ]
    busy_own = [(k, v) for k, v in own if v[2] and k[2] not in waiting]
    lines += [f"  {v[2] / busy:6.1%}  {name(k)}" for k, v in busy_own[:25]]
    lines += ["", "Lotse functions, cumulative (callees and awaited I/O included):"]
    lines += [f"  {v[3] / total:6.1%}  {name(k)}" for k, v in ours[:25]]
    text_file = stats_file.with_suffix(".txt")
    text_file.write_text("\n".join(lines) + "\n")
    stats_file.unlink()
    return {
        "file": str(text_file.relative_to(RESULTS.parent.parent)),
        "idle_share": round(idle / total, 3),
        "top_own_while_busy": [f"{v[2] / busy:.1%} {name(k)}" for k, v in busy_own[:8]],
        "top_lotse": [f"{v[3] / total:.1%} {name(k)}" for k, v in ours[:8]],
    }


async def database_ops(h: FlowStack, events: int) -> dict[str, Any]:
    """Operations per event on each service's database, by collection and kind, with
    the milliseconds the server reported for them (queueing behind others included)."""
    found: dict[str, Any] = {}
    for svc in SERVICES:
        shapes: Counter[str] = Counter()
        millis: Counter[str] = Counter()
        fields = {"op": 1, "ns": 1, "millis": 1, "command": 1}
        async for doc in h.db(svc)["system.profile"].find({}, fields):
            command = doc.get("command")
            if isinstance(command, dict) and command.get("comment") == OWN:
                continue  # the bench's own polling
            op, collection = doc.get("op"), str(doc.get("ns", "")).split(".", 1)[-1]
            if op == "command" and isinstance(doc.get("command"), dict) and doc["command"]:
                op = next(iter(doc["command"]))  # count, distinct, aggregate, ...
            shape = f"{op} {collection}"
            shapes[shape] += 1
            millis[shape] += doc.get("millis", 0)
        if not shapes:
            continue
        found[svc] = {
            "ops_per_event": round(sum(shapes.values()) / events, 1),
            "by_shape": {
                shape: {
                    "per_event": round(n / events, 2),
                    "ms_per_event": round(millis[shape] / events, 2),
                }
                for shape, n in shapes.most_common(12)
            },
        }
    return found


async def duplicates(h: FlowStack, events: Sequence[Event]) -> dict[str, int]:
    sets, notes = await h.counts()
    return {
        "events": len(events),
        "without_effect": sum(
            1 for e in events if not sets[str(e.event_id)] or not notes[str(e.correlation_id)]
        ),
        "processed_twice": sum(max(0, c - 1) for c in [*sets.values(), *notes.values()]),
    }


def cpu_per_event(ax: Any, cpu: dict[str, dict[str, float]]) -> None:
    """Stacked CPU milliseconds per event by process, for each way the flow ran."""
    runs = {
        "floor": "floor",
        "flow": "as configured",
        "again": "again",
        "one_round_per_event": "a round\nper event",
        "group_commit": "group\ncommit",
    }
    runs = {k: label for k, label in runs.items() if k in cpu}
    parts = ["database", "placement", "notifications", "rabbitmq", "bench", "intake", "courses"]
    colours = ["#c44", "#2a6f97", "#61a5c2", "#f4a261", "#999", "#bbb", "#ddd"]
    bottom = [0.0] * len(runs)
    for part, colour in zip(parts, colours, strict=True):
        values = [cpu[k].get(part, 0.0) for k in runs]
        ax.bar(list(runs.values()), values, bottom=bottom, color=colour, label=part)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:.0f}", ha="center", va="bottom")
    ax.set_ylabel("CPU ms per event")
    ax.set_title("Where the time goes (CPU per event, 2 cores)")
    ax.set_ylim(0, max(bottom) * 1.35)
    ax.legend(loc="upper left", fontsize=7, ncols=4)


def draw(result: dict[str, Any], latencies: Sequence[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(
        1, 3, figsize=(16, 4.4), gridspec_kw={"width_ratios": [1.0, 1.2, 1.0]}
    )
    bars = {
        "floor\n(bare I/O)": result["floor_eps"],
        "flow": result["throughput_eps"],
        "flow\nagain": result.get("throughput_again_eps", 0.0),
        "group\ncommit": result.get("group_commit_eps", 0.0),
        "1 place-\nment": result["placement_replicas"]["1"],
        "2 place-\nments": result["placement_replicas"]["2"],
    }
    colours = ["#999", "#2a6f97", "#2a6f97", "#2a6f97", "#61a5c2", "#61a5c2"]
    left.bar(list(bars), list(bars.values()), color=colours)
    left.set_yscale("log")  # the floor is twenty times the flow
    for i, v in enumerate(bars.values()):
        left.text(i, v, f"{v:.0f}", ha="center", va="bottom")
    left.set_ylabel("events per second")
    left.set_title(f"Throughput (efficiency {result['efficiency']:.2f})")
    cpu_per_event(middle, result["cpu_ms_per_event"])
    ordered = sorted(latencies)
    right.plot(ordered, [i / len(ordered) for i in range(len(ordered))], color="#2a6f97")
    for key, style in (("p50", ":"), ("p95", "--"), ("p99", "-")):
        value = result["latency_ms"][key]
        right.axvline(value, linestyle=style, color="#c44", label=f"{key} {value:.0f} ms")
    right.set_xlim(0, ordered[-1] * 1.05)
    right.set_xlabel("ms from 'course completed' published to inbox row")
    right.set_ylabel("share of events")
    right.set_title(f"Latency at {result['latency_ms']['offered_eps']:.0f} events/s offered")
    right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main() -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    total = 4 * N + LATENCY_N + 3 * BURST_N + OPS_N
    workdir = Path(tempfile.mkdtemp(prefix="lotse-bench-"))
    h = FlowStack("bench", total, RABBIT_URL, workdir)
    events = h.events
    phases = {
        "group_commit": events[-N:],
        "one_round_per_event": events[-2 * N : -N],
        "throughput_again": events[-3 * N : -2 * N],
        "throughput": events[:N],
        "latency": events[N : N + LATENCY_N],
        "one_placement": events[N + LATENCY_N : N + LATENCY_N + BURST_N],
        "two_placements": events[N + LATENCY_N + BURST_N : N + LATENCY_N + 2 * BURST_N],
        "profile": events[N + LATENCY_N + 2 * BURST_N : N + LATENCY_N + 3 * BURST_N],
        "database_ops": events[N + LATENCY_N + 3 * BURST_N : N + LATENCY_N + 3 * BURST_N + OPS_N],
    }
    try:
        print(f"bench: floor, {N} events ...", flush=True)
        assert h.db_proc is not None
        floor_probe = Probe(shared_pids(h.db_proc.pid))
        cpu_before = floor_probe.cpu_s()
        floor_run = await floor(RABBIT_URL, h.stack.mongo_url, phases["throughput"])
        floor_cpu = floor_probe.cpu_ms_per_event(cpu_before, N)
        print(f"bench: starting the stack and registering {total} people ...", flush=True)
        await h.start()
        probe = Probe(
            {**{s: p.pid for s, p in h.stack.procs.items()}, **shared_pids(h.db_proc.pid)}
        )
        print(f"bench: idle, {IDLE_S:.0f} s without traffic ...", flush=True)
        idle = await idle_database_ops(h, IDLE_S)

        # as configured first and again last: what the database's growth alone changes
        print(f"bench: throughput, {N} events, as configured ...", flush=True)
        run, cpu = await measured_burst(h, phases["throughput"])
        print(f"bench: throughput, {N} events, group commit ...", flush=True)
        await restart(h, FLOW_SERVICES, GROUP_COMMIT)
        group_commit, group_commit_cpu = await measured_burst(h, phases["group_commit"])
        print(f"bench: throughput, {N} events, a relay/dispatch round per event ...", flush=True)
        await restart(h, FLOW_SERVICES, ONE_ROUND_PER_EVENT)
        per_round, per_round_cpu = await measured_burst(h, phases["one_round_per_event"])
        await restart(h, FLOW_SERVICES)
        print(f"bench: throughput, {N} events, as configured, again ...", flush=True)
        again, again_cpu = await measured_burst(h, phases["throughput_again"])
        probe = stack_probe(h)

        rate = run["eps"] / 2
        print(f"bench: latency, {LATENCY_N} events at {rate:.0f}/s ...", flush=True)
        latencies, to_suggestions = await offered(h, phases["latency"], rate)
        rss = probe.services_peak_rss_mb()

        print(f"bench: one placement process, {BURST_N} events ...", flush=True)
        one, one_cpu = await measured_burst(h, phases["one_placement"])
        second = h.stack.start_service("placement", replica=2)
        await asyncio.to_thread(h.stack.wait_healthy, (second,), 60)
        print(f"bench: two placement processes, {BURST_N} events ...", flush=True)
        two, two_cpu = await measured_burst(h, phases["two_placements"])

        busiest = max((s for s in cpu if s in SERVICES), key=lambda s: cpu[s])
        print(f"bench: profiling {busiest}, {BURST_N} events ...", flush=True)
        profiles = await profile(h, busiest, phases["profile"])
        print(f"bench: counting database operations, {OPS_N} events ...", flush=True)
        ops = await count_database_ops(h, phases["database_ops"])
        checked = await duplicates(h, events)
    finally:
        await h.close()
        shutil.rmtree(workdir, ignore_errors=True)

    result: dict[str, Any] = {
        "throughput_eps": round(run["eps"], 1),
        "group_commit_eps": round(group_commit["eps"], 1),
        "group_commit_efficiency": round(group_commit["eps"] / floor_run["eps"], 3),
        "one_round_per_event_eps": round(per_round["eps"], 1),
        "throughput_again_eps": round(again["eps"], 1),
        "one_round_per_event_efficiency": round(per_round["eps"] / floor_run["eps"], 3),
        "latency_ms": {
            "offered_eps": round(rate, 1),
            "events": len(latencies),
            "p50": pct(latencies, 0.50),
            "p95": pct(latencies, 0.95),
            "p99": pct(latencies, 0.99),
            "max": round(max(latencies), 1),
            "mean": round(statistics.fmean(latencies), 1),
            "to_suggestions_p50": pct(to_suggestions, 0.50),
            "to_suggestions_p99": pct(to_suggestions, 0.99),
        },
        "floor_eps": round(floor_run["eps"], 1),
        "efficiency": round(run["eps"] / floor_run["eps"], 3),
        "rss_mb": rss,
        "placement_replicas": {"1": round(one["eps"], 1), "2": round(two["eps"], 1)},
        # how much of one core the database was busy during each: it runs on one
        "database_busy": {"1": busy(one, one_cpu), "2": busy(two, two_cpu)},
        "duplicates": checked,
        "cpu_ms_per_event": {
            "flow": {**cpu, "total": round(sum(cpu.values()), 2)},
            "one_round_per_event": {
                **per_round_cpu,
                "total": round(sum(per_round_cpu.values()), 2),
            },
            "group_commit": {**group_commit_cpu, "total": round(sum(group_commit_cpu.values()), 2)},
            "again": {**again_cpu, "total": round(sum(again_cpu.values()), 2)},
            "floor": {**floor_cpu, "total": round(sum(floor_cpu.values()), 2)},
        },
        "profile": profiles,
        "database_ops_per_event": ops,
        "idle_database_ops_per_s": idle,
        "runs": {
            "floor": floor_run,
            "group_commit": group_commit,
            "one_round_per_event": per_round,
            "throughput_again": again,
            "throughput": run,
            "one": one,
            "two": two,
        },
        "setup": {
            "events": N,
            "database": "SecantusDB (MongoDB wire, Python, one process)",
            "broker": "RabbitMQ on this machine, quorum queues",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    (RESULTS / "pipeline-latencies.json").write_text(json.dumps([round(x, 1) for x in latencies]))
    draw(result, latencies, RESULTS / "pipeline.png")
    return result


if __name__ == "__main__":
    if "--draw" in sys.argv:  # the chart again, from the last run's results
        drawn = json.loads((RESULTS / "pipeline.json").read_text())
        samples = json.loads((RESULTS / "pipeline-latencies.json").read_text())
        draw(drawn, samples, RESULTS / "pipeline.png")
        raise SystemExit(0)
    outcome = asyncio.run(main())
    (RESULTS / "pipeline.json").write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome, indent=2))
