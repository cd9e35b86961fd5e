"""The inbox at volume: one caseworker with 5,000 notifications, through the JSON API.

The inbox page is the portal's (``/inbox``); it asks notifications for one page of
items (``GET /notifications``) and the unread counts (``GET /notifications/unread-counts``)
at once. The service's own HTML page, which this measured before, is gone; the figures
keep their names and now time those two calls together, as the portal makes them.

notifications runs in this process (``create_app``, its lifespan against the machine's
RabbitMQ and its own SecantusDB); BENCH_ITEMS notifications for one caseworker (and
BENCH_OTHERS for nine colleagues) are written straight into its database as the use
cases write them: a year of alerts, newest every ~1.75 h, all kinds, the older ones
mostly read, a few digests with 20 entries each, suggestion alerts with three. Then
each request goes through the HTTP route (httpx's ASGI transport, token and audit
row included, no network), BENCH_REPEAT times; the figure is the median server time:

- ``first_page``: ``GET /notifications?limit=50`` with ``GET /notifications/unread-counts``
  (50 items, counts, unread per kind); ``first_page_cold`` is the very first one, which
  also counts the inbox once (the tally);
- ``filtered_page``: one kind, unread only; ``person_page``: one person;
- ``page_100``: ``offset=4950``, the last of 100 pages;
- ``json_first_page``: ``GET /notifications`` alone;
- ``unread_counts``: ``GET /notifications/unread-counts``;
- ``read_all_kind``: ``POST /notifications/read-all?kind=enrolled`` once (it changes
  state), then the first page again;
- ``server_sorted_page`` / ``server_count``: for comparison, what the page did before:
  the database sorting, skipping and counting the whole inbox (PyMongo, no HTTP).

A quick run: ``BENCH_ITEMS=500 BENCH_OTHERS=90 BENCH_REPEAT=3``. Writes
bench/results/inbox.json and prints it. A benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from lotse_devstack.cleanup import delete_namespace
from lotse_devstack.mailsink import MailSink
from lotse_devstack.ports import free_port
from lotse_devstack.secantus import mongo_url, start_secantus, stop_secantus
from lotse_devstack.tokens import DevIssuer
from lotse_notifications.bootstrap import create_app
from lotse_notifications.domain.model import (
    ChannelState,
    DeliveryStatus,
    Kind,
    Notification,
    Priority,
)
from lotse_shared.auth import Role
from lotse_shared.contracts.common import ContactRole, Language

ITEMS = int(os.environ.get("BENCH_ITEMS", "5000"))
OTHERS = int(os.environ.get("BENCH_OTHERS", "1000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "7"))
RABBIT_URL = os.environ.get("LOTSE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
RESULTS = Path(__file__).parent / "results" / "inbox.json"
CASEWORKER = "petra.schmidt@landkreis-kassel.example"
GOAL_MS = 300.0

# how often each kind arrives in a caseworker's year (digests: one in 200)
MIX = [
    (Kind.SUGGESTIONS_READY, 30),
    (Kind.COURSE_COMPLETED, 20),
    (Kind.ENROLLED, 25),
    (Kind.ATTENDANCE_AT_RISK, 12),
    (Kind.COURSE_DROPPED, 8),
    (Kind.ESCALATION, 4),
    (Kind.DIGEST, 1),
]
NAMES = ["Amal Haddad", "Omar Nasser", "Yonas Tesfaye", "Mariam Ahmadi", "Oksana Koval"]


def entry(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "opening_id": str(uuid.uuid4()),
        "title": f"Ausbildung Fachkraft für Lagerlogistik ({i})",
        "employer": "Nordhessen Logistik GmbH",
        "municipality": rng.choice(["Kassel", "Baunatal", "Vellmar", "Hofgeismar"]),
        "opening_type": rng.choice(["ausbildung", "praktikum", "beschaeftigung"]),
        "distance_km": round(rng.uniform(2, 30), 1),
        "score": round(rng.uniform(20, 95), 1),
        "reasons": ["B1 erreicht, Stelle verlangt B1", "8 km, ohne Führerschein", "Logistik"],
        "forecast": rng.random() < 0.1,
        "unavailable": rng.random() < 0.1,
        "confirmed_note": "B1 jetzt erreicht" if rng.random() < 0.05 else None,
    }


def notification(
    rng: random.Random,
    recipient: str,
    kind: Kind,
    created_at: datetime,
    people: list[uuid.UUID],
    read: bool,
) -> Notification:
    person = rng.choice(people)
    name = NAMES[people.index(person) % len(NAMES)]
    facts: dict[str, Any] = {}
    lines = [f"es gibt Neues zu {name}."]
    if kind is Kind.DIGEST:
        chosen = rng.sample(people, 4)
        facts = {
            "groups": [
                {
                    "person_id": str(p),
                    "person": NAMES[people.index(p) % len(NAMES)],
                    "entries": [entry(rng, i) for i in range(5)],
                }
                for p in chosen
            ],
            "items": [
                {
                    "notification_id": str(uuid.uuid4()),
                    "subject": f"{name} wurde angemeldet",
                    "kind": "enrolled",
                    "person": name,
                }
                for _ in range(3)
            ],
        }
    elif kind in (Kind.SUGGESTIONS_READY, Kind.COURSE_COMPLETED):
        facts = {"german_level": "B1", "suggestions": [entry(rng, i) for i in range(3)]}
        lines += [
            f"{i + 1}. {s['title']} – {s['employer']}" for i, s in enumerate(facts["suggestions"])
        ]
    body = "Guten Tag Petra Schmidt,\n\n" + "\n".join(lines) + "\n\nAlle Details: …\n"
    return Notification(
        person_id=None if kind is Kind.DIGEST else person,
        district_id="kassel",
        kind=kind,
        priority=Priority.CRITICAL if kind is Kind.COURSE_DROPPED else Priority.NORMAL,
        recipient_email=recipient,
        recipient_name="Petra Schmidt",
        recipient_role=ContactRole.CASEWORKER,
        language=Language.DE,
        subject=f"{kind.value}: {name}, {created_at:%d.%m.%Y}",
        body=body,
        email_body=body,
        facts=facts,
        cause_event_id=str(uuid.uuid4()),
        correlation_id=str(uuid.uuid4()),
        created_at=created_at,
        read_at=created_at + timedelta(hours=3) if read else None,
        email=ChannelState(status=DeliveryStatus.SENT),
    )


def inbox_of(recipient: str, n: int, now: datetime, seed: int) -> list[Notification]:
    """``n`` notifications over the year before ``now``: the last two weeks unread, older
    ones read but one in ten."""
    rng = random.Random(seed)
    people = [uuid.uuid4() for _ in range(60)]
    kinds, weights = zip(*MIX, strict=True)
    step = timedelta(days=365) / max(n, 1)
    items = []
    for i in range(n):
        created = now - step * (i + 0.5)
        read = created < now - timedelta(days=14) and rng.random() > 0.1
        items.append(
            notification(rng, recipient, rng.choices(kinds, weights)[0], created, people, read)
        )
    return items


async def timed(call: Callable[[], Awaitable[httpx.Response]], times: int) -> dict[str, Any]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        r = await call()
        samples.append((time.perf_counter() - started) * 1000)
        if r.status_code >= 400:
            raise RuntimeError(f"{r.request.url}: {r.status_code} {r.text[:200]}")
    return {
        "median_ms": round(statistics.median(samples), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
    }


async def main() -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lotse-bench-inbox-"))
    given = os.environ.get("MONGO_URL")
    db_proc = None
    if not given:
        port = free_port()
        db_proc = start_secantus(port, workdir / "db", workdir / "secantusdb.log")
    db_url = given or mongo_url(port)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    sink = MailSink()
    sink.start()
    issuer = DevIssuer(workdir / "keys")
    os.environ.update(
        {
            **issuer.service_env(),
            "LOTSE_NAMESPACE": namespace,
            "LOTSE_RABBIT_URL": RABBIT_URL,
            "LOTSE_MONGO_URL": db_url,
            "LOTSE_SMTP_HOST": sink.host,
            "LOTSE_SMTP_PORT": str(sink.port),
            "LOTSE_LOG_LEVEL": "WARNING",
        }
    )
    app = create_app()
    token = issuer.token(Role.CASEWORKER, user=CASEWORKER, district="kassel")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with app.router.lifespan_context(app):
            now = datetime.now(UTC)
            mine = inbox_of(CASEWORKER, ITEMS, now, seed=1)
            others = [
                n
                for c in range(9)
                for n in inbox_of(
                    f"kollege{c}@landkreis-kassel.example", OTHERS // 9, now, seed=c + 2
                )
            ]
            started = time.perf_counter()
            repo = app.state.handlers.repo
            everything = mine + others
            for i in range(0, len(everything), 500):
                async with app.state.runtime.uow.transaction() as tx:
                    await repo.add(tx, everything[i : i + 500])
            inserted_s = time.perf_counter() - started
            person = next(n.person_id for n in mine if n.person_id is not None)
            kind = Kind.COURSE_DROPPED

            transport = httpx.ASGITransport(app=app)
            last_offset = (ITEMS // 50 - 1) * 50
            async with httpx.AsyncClient(
                transport=transport, base_url="http://service", headers=headers, timeout=120
            ) as http:

                async def page(**params: Any) -> httpx.Response:
                    """What the portal's inbox page asks for, both at once."""
                    items, counts = await asyncio.gather(
                        http.get("/notifications", params={"limit": 50, **params}),
                        http.get("/notifications/unread-counts"),
                    )
                    return counts if counts.status_code >= 400 else items

                figures: dict[str, Any] = {
                    "first_page_cold": await timed(page, 1),
                    "first_page": await timed(page, REPEAT),
                    "filtered_page": await timed(
                        lambda: page(kind=kind.value, unread_only="true"), REPEAT
                    ),
                    "person_page": await timed(lambda: page(person_id=str(person)), REPEAT),
                    "page_100": await timed(lambda: page(offset=last_offset), REPEAT),
                    "json_first_page": await timed(lambda: http.get("/notifications"), REPEAT),
                    "unread_counts": await timed(
                        lambda: http.get("/notifications/unread-counts"), REPEAT
                    ),
                }
                counts = (await http.get("/notifications/unread-counts")).json()
                last = (await page(offset=last_offset)).json()
                started = time.perf_counter()
                read_all = await http.post(
                    "/notifications/read-all", params={"kind": Kind.ENROLLED.value}
                )
                figures["read_all_kind"] = {
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "kind": Kind.ENROLLED.value,
                    "marked": read_all.json()["marked"],
                }
                after = (await http.get("/notifications/unread-counts")).json()
                figures["first_page_after_read_all"] = await timed(page, REPEAT)

            notifications = app.state.runtime.db["notifications"]
            query = {"recipient_email": CASEWORKER, "archived_at": None}
            server_sorted = await timed_db(
                lambda: (
                    notifications.find(query)
                    .sort([("read_at", 1), ("created_at", -1)])
                    .limit(50)
                    .to_list()
                ),
                3,
            )
            server_count = await timed_db(lambda: notifications.count_documents(query), 3)

        result: dict[str, Any] = {
            "items": ITEMS,
            "other_recipients_items": len(others),
            "unread_before": counts["total"],
            "unread_by_kind_before": {k: n for k, n in counts["by_kind"].items() if n},
            "unread_after_read_all": after["total"],
            "last_page_items": len(last),  # 50 when the inbox reaches its last item
            **{f"{name}_ms": f for name, f in figures.items()},
            "server_sorted_page_ms": server_sorted,
            "server_count_ms": server_count,
            "goal_first_page_ms": GOAL_MS,
            "goal_met": figures["first_page"]["median_ms"] < GOAL_MS,
            "insert_seconds": round(inserted_s, 1),
            "database": "mongo (MONGO_URL)" if given else "secantusdb",
            "cores": os.cpu_count(),
        }
        return result
    finally:
        sink.stop()
        await delete_namespace(RABBIT_URL, namespace, db_url)
        if db_proc is not None:
            stop_secantus(db_proc)


async def timed_db(call: Callable[[], Awaitable[Any]], times: int) -> dict[str, Any]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)}


def run() -> None:
    result = asyncio.run(main())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    run()
