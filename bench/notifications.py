"""Notifications throughput and memory under a burst of events.

notifications runs as its own process (``python -m lotse_notifications``) against
the machine's RabbitMQ, a MongoDB-wire server and a real SMTP server (aiosmtpd, in
this process). After registering BENCH_PEOPLE people (one caseworker each, emails
allowed, no quiet hours), BENCH_EVENTS suggestions-ready events are published as
fast as a confirmed publisher can, and the clock runs until every event has its
inbox row *and* its email was accepted by the SMTP server.

- ``per_second``: events / seconds from the first publish to the last accepted email;
- ``inbox_per_second``: the same up to the last inbox row;
- ``peak_rss_mb``: the service's peak resident memory (VmHWM) over the burst.

Writes bench/results/notifications.json and prints it. A benchmark, not a test: it
reports what it saw, also when not everything arrived within BENCH_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from lotse_devstack import samples
from lotse_devstack.cleanup import delete_namespace
from lotse_devstack.mailsink import MailSink
from lotse_devstack.partner import PartnerPublisher
from lotse_devstack.ports import free_port
from lotse_devstack.secantus import mongo_url, start_secantus, stop_secantus
from lotse_shared.contracts.common import (
    CefrLevel,
)
from lotse_shared.contracts.intake import (
    Consent,
    PersonRegistered,
)
from lotse_shared.contracts.placement import SuggestionsReady

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000"))
PEOPLE = int(os.environ.get("BENCH_PEOPLE", "100"))
TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT_S", "1800"))
RABBIT_URL = os.environ.get("LOTSE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
RESULTS = Path(__file__).parent / "results" / "notifications.json"


def person(i: int) -> PersonRegistered:
    snapshot = samples.snapshot(
        display_name=f"Person {i}",
        birth_year=1995,
        german_level=CefrLevel.B1,
        driving_licence=False,
        sectors_of_interest=[],
        experience_occupations=[],
        consent=Consent(matching=True, email_notifications=True),
        contacts=[samples.caseworker_contact(i)],
    )
    return PersonRegistered.create(snapshot, producer="bench")


def suggestions(person_id: uuid.UUID) -> SuggestionsReady:
    return samples.suggestions_ready(person_id)


def memory_kb(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"notifications exited; see {log}")
            try:
                if (await client.get(f"{url}/readyz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"notifications not healthy; see {log}")


async def main() -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lotse-bench-notifications-"))
    given = os.environ.get("MONGO_URL")
    db_proc = None
    if not given:
        port = free_port()
        db_proc = start_secantus(port, workdir / "db", workdir / "secantusdb.log")
    db_url = given or mongo_url(port)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    sink = MailSink()
    sink.start()
    http_port = free_port()
    log = workdir / "notifications.log"
    env = {
        **os.environ,
        "LOTSE_NAMESPACE": namespace,
        "LOTSE_RABBIT_URL": RABBIT_URL,
        "LOTSE_MONGO_URL": db_url,
        "LOTSE_HTTP_PORT": str(http_port),
        "LOTSE_SMTP_HOST": sink.host,
        "LOTSE_SMTP_PORT": str(sink.port),
        "LOTSE_QUIET_HOURS": "false",
        # the channel machinery at full speed: every event its own alert and email, as
        # before digests and caps (what a caseworker gets is make bench-alerts' question)
        "LOTSE_ALERT_CADENCE": '{"suggestions_ready": "immediate"}',
        "LOTSE_DAILY_EMAIL_CAP": "0",
        "LOTSE_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (once, before anything is measured)
            [sys.executable, "-m", "lotse_notifications"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(db_url, tz_aware=True)
    db = client[f"{namespace}_notifications"]
    try:
        await wait_healthy(f"http://127.0.0.1:{http_port}", proc, log)
        people = [person(i) for i in range(PEOPLE)]
        events = [suggestions(people[i % PEOPLE].payload.person_id) for i in range(EVENTS)]
        async with PartnerPublisher(RABBIT_URL, namespace) as publisher:
            for p in people:
                await publisher.publish(p)
            while await db["recipients"].count_documents({}) < PEOPLE:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            before = memory_kb(proc.pid)

            started = time.perf_counter()
            for e in events:
                await publisher.publish(e)
            published_s = time.perf_counter() - started

        inbox_done = mail_done = None
        peak_sampled = 0
        deadline = started + TIMEOUT_S
        rows = 0
        while time.perf_counter() < deadline and (inbox_done is None or mail_done is None):
            await asyncio.sleep(0.5)
            peak_sampled = max(peak_sampled, memory_kb(proc.pid)["VmRSS"])
            if inbox_done is None:
                rows = await db["notifications"].estimated_document_count()  # a count scans
                if rows >= EVENTS:
                    inbox_done = time.perf_counter() - started
            if mail_done is None and len(sink.mails) >= EVENTS:
                mail_done = time.perf_counter() - started
        after = memory_kb(proc.pid)
        mails = len(sink.mails)
        result: dict[str, Any] = {
            "events": EVENTS,
            "people": PEOPLE,
            "per_second": round(EVENTS / mail_done, 1) if mail_done and inbox_done else None,
            "inbox_per_second": round(EVENTS / inbox_done, 1) if inbox_done else None,
            "peak_rss_mb": round(after["VmHWM"] / 1024, 1),
            "rss_before_burst_mb": round(before["VmRSS"] / 1024, 1),
            "peak_rss_sampled_during_burst_mb": round(peak_sampled / 1024, 1),
            "seconds_to_last_email": round(mail_done, 1) if mail_done else None,
            "seconds_to_last_inbox_row": round(inbox_done, 1) if inbox_done else None,
            "publish_seconds": round(published_s, 1),
            "inbox_rows": rows if inbox_done is None else EVENTS,
            "emails_accepted": mails,
            "database": "mongo (MONGO_URL)" if given else "secantusdb",
            "cores": os.cpu_count(),
        }
        if mail_done is None or inbox_done is None:
            result["note"] = f"not all arrived within {TIMEOUT_S:.0f}s"
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        await client.close()
        sink.stop()
        await delete_namespace(RABBIT_URL, namespace, db_url)
        if db_proc is not None:
            stop_secantus(db_proc)


def run() -> None:
    result = asyncio.run(main())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run()
