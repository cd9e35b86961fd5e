"""Chaos scenarios: the main flow under crashes, outages, poison and duplicates.

Each scenario starts the whole stack as processes (a :class:`FlowStack`: its own
SecantusDB, the machine's RabbitMQ, an in-process SMTP server), registers people
and openings, streams "course completed" events and does something nasty
meanwhile. It then counts, straight from the services' databases, what each
event caused:

- effects: events whose flow ended in exactly one suggestion set (placement) and
  one notification per caseworker (notifications);
- lost: events with no suggestion set or no notification;
- duplicates: suggestion sets or notifications beyond one per event.

and prints ``chaos <scenario>: events=N effects=E lost=L duplicates=D ...``.
Used by ``make chaos`` (2,000 events) and by the test suite (a few dozen).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lotse_shared.ops.dead_letters import DeadLetterDesk

from .flow import FlowStack, settle
from .observe import EventTap, eventually
from .secantus import start_secantus, stop_secantus

log = logging.getLogger("lotse.chaos")

# A killed process can leave a transaction open on the database until it times
# out (60 s); retries must outlast that, so chaos runs use longer delays.
CHAOS_RETRY_DELAYS_S = [1, 5, 15, 30, 60]
Document = dict[str, Any]


@dataclass
class Result:
    scenario: str
    events: int
    effects: int
    lost: int
    duplicates: int
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        more = " ".join(f"{k}={v}" for k, v in self.extra.items())
        return (
            f"chaos {self.scenario}: events={self.events} effects={self.effects} "
            f"lost={self.lost} duplicates={self.duplicates}" + (f" {more}" if more else "")
        )


async def measure(h: FlowStack, **extra: Any) -> Result:
    sets, notes = await h.counts()
    effects = lost = duplicates = 0
    for event in h.events:
        s, n = sets[str(event.event_id)], notes[str(event.correlation_id)]
        if s == 1 and n == 1:
            effects += 1
        if s == 0 or n == 0:
            lost += 1
        duplicates += max(0, s - 1) + max(0, n - 1)
    return Result(h.name, len(h.events), effects, lost, duplicates, extra)


class Harness(FlowStack):
    """A flow stack for one scenario, with retries long enough to outlast a kill."""

    def __init__(
        self,
        name: str,
        events: int,
        rabbit_url: str,
        workdir: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        env = {"LOTSE_RETRY_DELAYS_S": json.dumps(CHAOS_RETRY_DELAYS_S), **(extra_env or {})}
        super().__init__(f"chaos-{name}", events, rabbit_url, workdir, env)
        self.name = name


# --- scenarios -----------------------------------------------------------------------


async def scenario_kill(h: Harness, rounds: int) -> Result:
    kills = 0

    async def killer() -> None:
        nonlocal kills
        for _ in range(rounds):
            for service in ("placement", "notifications", "courses", "intake"):
                await asyncio.sleep(random.uniform(0.5, 2.0))
                await asyncio.to_thread(h.stack.stop_service, service, kill=True)
                kills += 1
                await asyncio.to_thread(h.stack.start_service, service)
                await asyncio.to_thread(h.stack.wait_healthy, (service,), 60)

    chaos = asyncio.create_task(killer())
    await h.stream(h.events)
    await chaos
    await settle(h)
    return await measure(h, kills=kills)


async def scenario_broker_restart(h: Harness, down_s: float) -> Result:
    async def restart() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(_rabbitmqctl, "stop_app")
        await asyncio.sleep(down_s)
        await asyncio.to_thread(_rabbitmqctl, "start_app")
        await asyncio.to_thread(_rabbitmqctl, "await_startup")

    await h.stream(h.events)  # all queued first; the restart hits them mid-processing
    await restart()
    await settle(h)
    return await measure(h, services_alive=h.services_alive())


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=180)


async def scenario_db_outage(h: Harness, down_s: float) -> Result:
    async def outage() -> None:
        await asyncio.sleep(1.0)
        stop_secantus(h.db_proc)
        await asyncio.sleep(down_s)
        h.db_proc = start_secantus(h.db_port, h.workdir / "db", h.workdir / "secantusdb.log")

    chaos = asyncio.create_task(outage())
    await h.stream(h.events)
    await chaos
    alive_after_outage = h.services_alive()
    await settle(h)
    return await measure(h, services_alive=alive_after_outage and h.services_alive())


async def scenario_poison(h: Harness) -> Result:
    """placement runs with one event set to fail; then 'the fix' and a replay."""
    poison = h.events[len(h.events) // 2]
    await asyncio.to_thread(h.stack.stop_service, "placement")
    h.stack.config.extra_env["LOTSE_CHAOS_FAIL_EVENT_IDS"] = json.dumps([str(poison.event_id)])
    await asyncio.to_thread(h.stack.start_service, "placement")
    await asyncio.to_thread(h.stack.wait_healthy, ("placement",), 60)
    await h.stream(h.events)
    desk = DeadLetterDesk(h.rabbit_url, h.namespace)

    async def poison_dead() -> bool:
        return any(d.message_id == str(poison.event_id) for d in await desk.list("placement"))

    await eventually(
        poison_dead, timeout_s=300, what="the poison message in the dead letters", every_s=0.5
    )
    dead = await desk.list("placement")
    await settle(h, quiet_s=10)
    before = await measure(h)
    # the fix: placement without the fault, then replay the dead letter
    await asyncio.to_thread(h.stack.stop_service, "placement")
    h.stack.config.extra_env["LOTSE_CHAOS_FAIL_EVENT_IDS"] = "[]"
    await asyncio.to_thread(h.stack.start_service, "placement")
    await asyncio.to_thread(h.stack.wait_healthy, ("placement",), 60)
    replayed = await desk.replay("placement", str(poison.event_id))
    await settle(h)
    return await measure(
        h,
        dead_lettered=len(dead),
        attempts=dead[0].attempts if dead else 0,
        effects_before_replay=before.effects,
        replayed=replayed,
    )


async def scenario_duplicates(h: Harness, copies: int) -> Result:
    stream = [e for e in h.events for _ in range(copies)]
    random.shuffle(stream)
    await h.stream(stream)
    await settle(h)
    return await measure(h, deliveries=len(stream))


async def scenario_outbox_crash(h: Harness) -> Result:
    """placement commits its suggestions but never publishes them; killed; restarted."""
    await asyncio.to_thread(h.stack.stop_service, "placement")
    h.stack.config.extra_env["LOTSE_CHAOS_HOLD_OUTBOX"] = "true"
    await asyncio.to_thread(h.stack.start_service, "placement")
    await asyncio.to_thread(h.stack.wait_healthy, ("placement",), 60)
    async with EventTap(h.rabbit_url, h.namespace, "placement.suggestions.ready.v1") as wire:
        await h.stream(h.events)
        outbox = h.db("placement")["outbox"]

        async def all_held() -> bool:
            return (
                await outbox.count_documents(
                    {"routing_key": "placement.suggestions.ready.v1", "sent_at": None}
                )
                >= h.n
            )

        await eventually(
            all_held, timeout_s=300, what="every suggestion committed to the outbox", every_s=0.5
        )
        held_on_wire = len(wire.messages)
        await asyncio.to_thread(h.stack.stop_service, "placement", kill=True)
        h.stack.config.extra_env["LOTSE_CHAOS_HOLD_OUTBOX"] = "false"
        await asyncio.to_thread(h.stack.start_service, "placement")
        await asyncio.to_thread(h.stack.wait_healthy, ("placement",), 60)
        await settle(h)
        counted = Counter(body["event_id"] for body in wire.bodies())
    return await measure(
        h,
        published_before_crash=held_on_wire,
        published=len(counted),
        published_twice=sum(1 for c in counted.values() if c > 1),
    )


SCENARIOS = ("kill", "broker-restart", "db-outage", "poison", "duplicates", "outbox-crash")


async def run_scenario(
    name: str, events: int, rabbit_url: str, workdir: Path, *, quick: bool = False
) -> Result:
    """Run one scenario on a fresh stack; ``quick`` is the short version the tests run."""
    env = {}
    if quick and name == "poison":  # nothing gets killed: short retries are enough
        env["LOTSE_RETRY_DELAYS_S"] = "[0.3, 0.6, 1.2]"
    h = Harness(name, events, rabbit_url, workdir, env)
    try:
        await h.start()
        if name == "kill":
            return await scenario_kill(h, rounds=1 if quick else 3)
        if name == "broker-restart":
            return await scenario_broker_restart(h, down_s=2 if quick else 5)
        if name == "db-outage":
            return await scenario_db_outage(h, down_s=3 if quick else 10)
        if name == "poison":
            return await scenario_poison(h)
        if name == "duplicates":
            return await scenario_duplicates(h, copies=5)
        if name == "outbox-crash":
            return await scenario_outbox_crash(h)
        raise ValueError(f"unknown scenario {name}")
    finally:
        await h.close()
