"""The main flow on a whole local stack, for the chaos scenarios and the benchmark.

A :class:`FlowStack` starts the four services as processes on their own
SecantusDB (the machine's RabbitMQ, an in-process SMTP sink), registers people
and openings as partners and intake would, streams "course completed" events and
counts from the services' databases what each event caused: suggestion sets in
placement (by cause event) and, in notifications, the completion alerts its suggestions
joined (by correlation id).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from lotse_shared.contracts.common import (
    CefrLevel,
    CourseType,
    OpeningType,
)
from lotse_shared.contracts.courses import CourseCompleted, CourseCompletedV1
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import (
    PersonRegistered,
)
from lotse_shared.contracts.partner import OpeningLocation, OpeningReported
from lotse_shared.places import all_places

from . import samples
from .cleanup import delete_namespace
from .observe import eventually
from .partner import PartnerPublisher
from .ports import free_port
from .secantus import mongo_url, start_secantus, stop_secantus
from .stack import SERVICES, LocalStack, StackConfig

Document = dict[str, Any]
# a completion's alert once its suggestions joined it (one alert per completion)
WITH_SUGGESTIONS: Document = {"kind": "course_completed", "facts.suggestions.0": {"$exists": True}}


def people(n: int) -> list[PersonRegistered]:
    places = list(all_places().values())
    return [
        PersonRegistered.create(
            samples.snapshot(
                display_name=f"Person {i:05d}",
                birth_year=1990 + i % 15,
                municipality=places[i % len(places)].name,
                german_level=CefrLevel.A1,
                driving_licence=True,
                max_commute_km=80,
                experience_occupations=[],
                contacts=[samples.caseworker_contact(i)],
            ),
            producer="intake",
        )
        for i in range(n)
    ]


def openings() -> list[OpeningReported]:
    return [
        OpeningReported.create(
            samples.opening_report(
                source_ref=f"CHAOS-{town}",
                opening_type=OpeningType.PRAKTIKUM,
                title=f"Praktikum Lager {town}",
                employer=f"Logistik {town}",
                occupation_code="51311",
                required_german_level=CefrLevel.A2,
                location=OpeningLocation(municipality=town),
                start_date=None,
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


class FlowStack:
    """One whole stack with its own database server and namespace."""

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
        self.namespace = f"{name}-{uuid.uuid4().hex[:6]}"
        self.workdir = workdir / self.namespace
        self.db_port = free_port()
        self.db_proc = start_secantus(
            self.db_port, self.workdir / "db", self.workdir / "secantusdb.log"
        )
        env = {"LOTSE_LOG_LEVEL": "WARNING", **(extra_env or {})}
        self.stack = LocalStack(
            StackConfig(
                namespace=self.namespace,
                ports={s: free_port() for s in SERVICES},
                rabbit_url=rabbit_url,
                mongo_url=mongo_url(self.db_port),
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
            self._everyone_known,
            timeout_s=120 + self.n / 15,  # registering takes placement ~30 ms a person
            what="people and openings known",
            every_s=0.5,
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
            WITH_SUGGESTIONS, {"correlation_id": 1}
        ):
            notes[str(doc["correlation_id"])] += 1
        return sets, notes

    def services_alive(self) -> bool:
        return all(p.poll() is None for p in self.stack.procs.values())

    async def close(self) -> None:
        await asyncio.to_thread(self.stack.stop)
        await self.client.close()
        stop_secantus(self.db_proc)
        await delete_namespace(self.rabbit_url, self.namespace)


async def settle(h: FlowStack, timeout_s: float = 420, quiet_s: float = 90) -> None:
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
