"""One run of ``make bench-alerts``: the stack as processes on its own SecantusDB and
namespace, publishing as intake and the partners do, simulated time, settling, and
snapshots of what reached the inboxes and the SMTP sink.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from pymongo import AsyncMongoClient

from bench.alerts_scenario import BERLIN
from lotse_devstack.cleanup import delete_namespace
from lotse_devstack.mailsink import ReceivedMail
from lotse_devstack.partner import PartnerPublisher
from lotse_devstack.ports import free_port
from lotse_devstack.secantus import mongo_url, start_secantus, stop_secantus
from lotse_devstack.stack import SERVICES, LocalStack, StackConfig
from lotse_shared.clock import FileClock
from lotse_shared.contracts.envelope import Event

Document = dict[str, Any]
PUBLISH_CONCURRENCY = 32


@dataclass
class Mail:
    rcpts: tuple[str, ...]
    subject: str
    hint: str  # the Message-ID's idstring: a notification id, or "digest-<id>" (old code)

    @classmethod
    def of(cls, mail: ReceivedMail) -> Mail:
        msgid = str(mail.message.get("Message-ID", ""))
        # make_msgid: <time.pid.random.IDSTRING@domain>
        hint = msgid.strip("<>").split("@", 1)[0].split(".", 3)[-1] if msgid else ""
        return cls(tuple(r.lower() for r in mail.rcpt_tos), mail.subject, hint)


@dataclass
class Period:
    """What one simulated day (or the setup) added: new inbox items and accepted emails."""

    label: str
    notifications: list[Document] = field(default_factory=list)
    mails: list[Mail] = field(default_factory=list)
    settles: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class Run:
    def __init__(
        self,
        label: str,
        rabbit_url: str,
        workdir: Path,
        extra_env: dict[str, str],
        *,
        clock_file: Path,
        uses_clock: bool,
        quiet_s: float,
        settle_timeout_s: float,
    ) -> None:
        self.label = label
        self.rabbit_url = rabbit_url
        self.namespace = f"alerts-{label}-{uuid.uuid4().hex[:6]}"
        self.workdir = workdir / self.namespace
        self.clock_file = clock_file
        self.uses_clock = uses_clock
        self.quiet_s = quiet_s
        self.settle_timeout_s = settle_timeout_s
        self.now: datetime = datetime.now(UTC)
        self.db_port = free_port()
        self.db_proc = start_secantus(
            self.db_port, self.workdir / "db", self.workdir / "secantusdb.log"
        )
        self.stack = LocalStack(
            StackConfig(
                namespace=self.namespace,
                ports={s: free_port() for s in SERVICES},
                rabbit_url=rabbit_url,
                mongo_url=mongo_url(self.db_port),
                log_dir=self.workdir / "logs",
                extra_env={"LOTSE_LOG_LEVEL": "WARNING", **extra_env},
            )
        )
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            self.stack.mongo_url, tz_aware=True, uuidRepresentation="standard"
        )
        self._publisher: PartnerPublisher | None = None
        self._amqp: aio_pika.abc.AbstractConnection | None = None
        self._seen: set[Any] = set()
        self._mails_seen = 0
        self.periods: list[Period] = []
        self.current = Period("setup")
        self.warnings: list[str] = []

    def db(self, service: str) -> Any:
        return self.client[f"{self.namespace}_{service}"]

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.stack.start)
        self._publisher = PartnerPublisher(self.rabbit_url, self.namespace)
        await self._publisher.__aenter__()
        self._amqp = await aio_pika.connect(self.rabbit_url)

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.__aexit__(None, None, None)
        if self._amqp is not None:
            await self._amqp.close()
        await asyncio.to_thread(self.stack.stop)
        await self.client.close()
        stop_secantus(self.db_proc)
        await delete_namespace(self.rabbit_url, self.namespace)
        shutil.rmtree(self.workdir / "db", ignore_errors=True)
        shutil.rmtree(self.stack.workdir, ignore_errors=True)  # empty: its logs are ours

    def alive(self) -> list[str]:
        """Services that exited (they should not)."""
        return [name for name, proc in self.stack.procs.items() if proc.poll() is not None]

    # --- time ------------------------------------------------------------------------------
    def set_clock(self, now: datetime) -> None:
        """Move simulated time (the old code ignores the file; it runs on real time)."""
        self.now = now
        FileClock.write(self.clock_file, now)

    def service_now(self) -> datetime:
        return self.now if self.uses_clock else datetime.now(UTC)

    # --- publishing ------------------------------------------------------------------------
    async def publish(self, events: Sequence[Event]) -> None:
        """Confirmed, persistent, as each event's producer (partners as their broker users);
        ``occurred_at`` is the simulated time."""
        assert self._publisher is not None
        publisher = self._publisher
        gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def one(event: Event) -> None:
            async with gate:
                await publisher.publish(event.model_copy(update={"occurred_at": self.now}))

        await asyncio.gather(*(one(e) for e in events))

    # --- settling --------------------------------------------------------------------------
    async def _queues(self) -> list[str]:
        url = os.environ.get("LOTSE_RABBIT_ADMIN_URL", "http://127.0.0.1:15672").rstrip("/")
        user = os.environ.get("LOTSE_RABBIT_ADMIN_USER", "guest")
        password = os.environ.get("LOTSE_RABBIT_ADMIN_PASSWORD", "guest")
        vhost = urllib.parse.quote(os.environ.get("LOTSE_RABBIT_VHOST", "/"), safe="")
        async with httpx.AsyncClient(timeout=10, auth=(user, password)) as http:
            r = await http.get(f"{url}/api/queues/{vhost}", params={"columns": "name"})
            r.raise_for_status()
        prefix = f"{self.namespace}."
        return [
            q["name"]
            for q in r.json()
            if q["name"].startswith(prefix) and not q["name"].endswith((".dead", ".event-log"))
        ]

    async def _ready(self, names: list[str]) -> int:
        """Messages waiting in the namespace's queues (retry queues included), exactly:
        passive declarations, not the management API's statistics (seconds behind)."""
        assert self._amqp is not None
        channel = await self._amqp.channel()
        total = 0
        try:
            for name in names:
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    channel = await self._amqp.channel()  # gone meanwhile
                    continue
                total += queue.declaration_result.message_count or 0
        finally:
            if not channel.is_closed:
                await channel.close()
        return total

    async def _state(self) -> tuple[tuple[Any, ...], bool]:
        """(what changes while the services work, whether work is visibly pending)."""
        latest = []
        pending = False
        for svc in SERVICES:
            doc = await self.db(svc)["inbox"].find_one(
                {}, {"applied_at": 1}, sort=[("applied_at", -1)]
            )
            latest.append(doc["applied_at"] if doc else None)
            if await self.db(svc)["outbox"].find_one({"sent_at": None}, {"_id": 1}):
                pending = True
        for kind in ("people", "openings"):
            if await self.db("placement")[kind].find_one(
                {"match_pending.at": {"$gt": datetime(2000, 1, 1, tzinfo=UTC)}}, {"_id": 1}
            ):
                pending = True
        due = await self.db("notifications")["notifications"].find_one(
            {"email.status": "pending", "email.next_attempt_at": {"$lte": self.service_now()}},
            {"_id": 1},
        )
        pending = pending or due is not None
        notes = await self.db("notifications")["notifications"].estimated_document_count()
        mails = len(self.stack.mail_sink.mails) if self.stack.mail_sink else 0
        return (*latest, notes, mails), pending

    async def settle(self, what: str) -> dict[str, Any]:
        """Wait until the services are quiet: no message waiting in a queue, no outbox row
        unsent, no matching pending, no email due, and nothing applied, stored or sent
        for ``quiet_s``."""
        started = time.monotonic()
        deadline = started + self.settle_timeout_s
        names = await self._queues()
        last: tuple[Any, ...] | None = None
        quiet_since = time.monotonic()
        polls = 0
        while True:
            polls += 1
            if polls % 20 == 0:
                names = await self._queues()  # retry queues appear on first use
            ready = await self._ready(names)
            state, pending = await self._state()
            now = time.monotonic()
            if ready or pending or state != last:
                last, quiet_since = state, now
            elif now - quiet_since >= self.quiet_s:
                break
            if now > deadline:
                self.warnings.append(
                    f"{self.current.label} {what}: not quiet after {self.settle_timeout_s:.0f}s "
                    f"(ready={ready}, pending={pending})"
                )
                break
            if dead := self.alive():
                raise RuntimeError(f"{self.label}: services exited: {dead}; see {self.workdir}")
            await asyncio.sleep(0.25)
        done = {"what": what, "seconds": round(time.monotonic() - started, 1)}
        self.current.settles.append(done)
        return done

    # --- snapshots -------------------------------------------------------------------------
    async def close_period(self, next_label: str) -> Period:
        """Attribute what appeared since the last snapshot to the current period."""
        period = self.current
        async for doc in self.db("notifications")["notifications"].find(
            {},
            {
                "_id": 1,
                "recipient_email": 1,
                "recipient_role": 1,
                "kind": 1,
                "priority": 1,
                "created_at": 1,
                "person_id": 1,
            },
        ):
            if doc["_id"] not in self._seen:
                self._seen.add(doc["_id"])
                period.notifications.append(doc)
        mails = self.stack.mail_sink.mails if self.stack.mail_sink else []
        period.mails = [Mail.of(m) for m in mails[self._mails_seen :]]
        self._mails_seen = len(mails)
        self.periods.append(period)
        self.current = Period(next_label)
        return period

    async def count(self, service: str, collection: str, query: Document | None = None) -> int:
        return int(await self.db(service)[collection].count_documents(query or {}))

    async def dead_letters(self) -> dict[str, int]:
        """Messages in the services' dead-letter queues (should be none)."""
        assert self._amqp is not None
        found = {}
        channel = await self._amqp.channel()
        for svc in SERVICES:
            try:
                queue = await channel.declare_queue(f"{self.namespace}.{svc}.dead", passive=True)
            except aio_pika.exceptions.ChannelClosed:
                channel = await self._amqp.channel()
                continue
            if n := queue.declaration_result.message_count:
                found[svc] = n
        await channel.close()
        return found


def berlin_date(at: datetime) -> date:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(BERLIN).date()
