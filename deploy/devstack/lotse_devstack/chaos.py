"""Chaos scenarios: the main flow under crashes, outages, poison and duplicates.

Each scenario starts the whole stack as processes (its own SecantusDB, the
machine's RabbitMQ, an in-process SMTP server), registers people and openings,
streams "course completed" events and does something nasty meanwhile. It then
counts, straight from the services' databases, what each event caused:

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
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from lotse_shared.contracts.common import (
    CefrLevel,
    ContactRole,
    CourseType,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import (
    Consent,
    PersonRegistered,
    PersonSnapshotV1,
    ResponsibleContact,
)
from lotse_shared.contracts.partner import OpeningLocation, OpeningReported, OpeningReportedV1
from lotse_shared.ops.dead_letters import DeadLetterDesk
from lotse_shared.places import all_places

from .cleanup import delete_namespace
from .observe import EventTap, eventually
from .partner import PartnerPublisher
from .ports import free_port
from .secantus import start_secantus, stop_secantus
from .stack import SERVICES, LocalStack, StackConfig

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


def people(n: int) -> list[PersonRegistered]:
    places = [p for p in all_places().values()]
    found = []
    for i in range(n):
        place = places[i % len(places)]
        snapshot = PersonSnapshotV1(
            person_id=uuid.uuid4(),
            district_id="kassel",
            revision=1,
            display_name=f"Person {i:05d}",
            birth_year=1990 + i % 15,
            municipality=place.name,
            german_level=CefrLevel.A1,
            residence_status=ResidenceStatus.AUFENTHALTSERLAUBNIS,
            work_permission=WorkPermission.ALLOWED,
            driving_licence=True,
            max_commute_km=80,
            sectors_of_interest=[Sector.LOGISTIK],
            consent=Consent(matching=True, email_notifications=True),
            contacts=[
                ResponsibleContact(
                    role=ContactRole.CASEWORKER,
                    name=f"Caseworker {i % 10}",
                    email=f"caseworker{i % 10}@landkreis-kassel.example",
                )
            ],
        )
        found.append(PersonRegistered.create(snapshot, producer="intake"))
    return found


def openings() -> list[OpeningReported]:
    return [
        OpeningReported.create(
            OpeningReportedV1(
                source_ref=f"CHAOS-{town}",
                opening_type=OpeningType.PRAKTIKUM,
                title=f"Praktikum Lager {town}",
                employer=f"Logistik {town}",
                occupation_code="51311",
                sector=Sector.LOGISTIK,
                required_german_level=CefrLevel.A2,
                location=OpeningLocation(municipality=town),
                seats=500,
            ),
            producer="ba-jobsuche",
        )
        for town in ("Kassel", "Baunatal", "Hofgeismar")
    ]


def completions(registered: list[PersonRegistered]) -> list[CourseCompleted]:
    return [
        CourseCompleted.create(
            CourseCompletedV1(
                enrolment_id=uuid.uuid4(),
                person_id=p.payload.person_id,
                district_id="kassel",
                course_id=uuid.uuid4(),
                course_type=CourseType.INTEGRATIONSKURS,
                target_level=CefrLevel.B1,
                level_reached=CefrLevel.A2,
                completed_on=date.today(),
            ),
            producer="courses",
        )
        for p in registered
    ]


class Harness:
    """One stack for one scenario, with its own database server and namespace."""

    def __init__(
        self,
        name: str,
        events: int,
        rabbit_url: str,
        workdir: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.n = events
        self.rabbit_url = rabbit_url
        self.namespace = f"chaos-{name}-{uuid.uuid4().hex[:6]}"
        self.workdir = workdir / self.namespace
        self.db_port = free_port()
        self.db_proc = start_secantus(
            self.db_port, self.workdir / "db", self.workdir / "secantusdb.log"
        )
        env = {
            "LOTSE_RETRY_DELAYS_S": json.dumps(CHAOS_RETRY_DELAYS_S),
            "LOTSE_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.stack = LocalStack(
            StackConfig(
                namespace=self.namespace,
                ports={s: free_port() for s in SERVICES},
                rabbit_url=rabbit_url,
                mongo_url=f"mongodb://127.0.0.1:{self.db_port}/?replicaSet=secantus&retryWrites=false",
                log_dir=self.workdir / "logs",
                extra_env=env,
            )
        )
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(self.stack.mongo_url)
        self.registered = people(events)
        self.events = completions(self.registered)

    def db(self, service: str) -> Any:
        return self.client[f"{self.namespace}_{service}"]

    async def start(self) -> None:
        await asyncio.to_thread(self.stack.start)
        async with PartnerPublisher(self.rabbit_url, self.namespace) as pub:
            for event in [*openings(), *self.registered]:
                await pub.publish(event)
        await eventually(
            self._everyone_known, timeout_s=120, what="people and openings known", every_s=0.5
        )

    async def _everyone_known(self) -> bool:
        return (
            await self.db("placement")["people"].count_documents({}) == self.n
            and await self.db("placement")["openings"].count_documents({}) == 3
            and await self.db("notifications")["recipients"].count_documents({}) == self.n
        )

    async def stream(
        self, events: Sequence[Event], *, chunk: int = 100, pause_s: float = 0.05
    ) -> None:
        async with PartnerPublisher(self.rabbit_url, self.namespace) as pub:
            for start in range(0, len(events), chunk):
                for event in events[start : start + chunk]:
                    await pub.publish(event)
                await asyncio.sleep(pause_s)

    async def counts(self) -> tuple[Counter[str], Counter[str]]:
        sets = Counter[str]()
        async for doc in self.db("placement")["suggestion_sets"].find(
            {"trigger": "course_completed"}, {"cause_event_id": 1}
        ):
            sets[str(doc["cause_event_id"])] += 1
        notes = Counter[str]()
        async for doc in self.db("notifications")["notifications"].find(
            {"kind": "suggestions_ready"}, {"correlation_id": 1}
        ):
            notes[str(doc["correlation_id"])] += 1
        return sets, notes

    async def measure(self, **extra: Any) -> Result:
        sets, notes = await self.counts()
        effects = lost = duplicates = 0
        for event in self.events:
            s, n = sets[str(event.event_id)], notes[str(event.correlation_id)]
            if s == 1 and n == 1:
                effects += 1
            if s == 0 or n == 0:
                lost += 1
            duplicates += max(0, s - 1) + max(0, n - 1)
        return Result(self.name, len(self.events), effects, lost, duplicates, extra)

    def services_alive(self) -> bool:
        return all(p.poll() is None for p in self.stack.procs.values())

    async def close(self) -> None:
        await asyncio.to_thread(self.stack.stop)
        await self.client.close()
        stop_secantus(self.db_proc)
        await delete_namespace(self.rabbit_url, self.namespace)


async def settle(h: Harness, timeout_s: float = 420, quiet_s: float = 90) -> None:
    """Wait until every event has its effects, or nothing moved for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last, last_change = (-1, -1), time.monotonic()
    while time.monotonic() < deadline:
        sets, notes = await h.counts()
        now = (sum(sets.values()), sum(notes.values()))
        if now != last:
            last, last_change = now, time.monotonic()
        if now[0] >= h.n and now[1] >= h.n:
            await asyncio.sleep(2)  # let late duplicates show, if there are any
            return
        if time.monotonic() - last_change > quiet_s:
            return
        await asyncio.sleep(1)


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
    return await h.measure(kills=kills)


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
    return await h.measure(services_alive=h.services_alive())


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
    return await h.measure(services_alive=alive_after_outage and h.services_alive())


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
    before = await h.measure()
    # the fix: placement without the fault, then replay the dead letter
    await asyncio.to_thread(h.stack.stop_service, "placement")
    h.stack.config.extra_env["LOTSE_CHAOS_FAIL_EVENT_IDS"] = "[]"
    await asyncio.to_thread(h.stack.start_service, "placement")
    await asyncio.to_thread(h.stack.wait_healthy, ("placement",), 60)
    replayed = await desk.replay("placement", str(poison.event_id))
    await settle(h)
    return await h.measure(
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
    return await h.measure(deliveries=len(stream))


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
    return await h.measure(
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
