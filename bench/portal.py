"""``make bench-portal``: the portal's busiest pages at the district's scale.

Issue 13's target: with 4,000 people in the district and a caseworker holding 150 of
them, the caseload page, a person's file and the district figures each answer in
under 300 ms at p95 (server time), and the service calls each page makes are counted.

How, in one run on this machine:

1. A :class:`~lotse_devstack.stack.LocalStack` with the portal and the local OpenID
   provider, on free ports, its own namespace, a fresh SecantusDB and the machine's
   RabbitMQ (as ``make up`` runs it, with the log level at WARNING).
2. Seeded the way the district fills it, through the services' own APIs and the
   events they cause, never by writing a database: courses (``POST /courses``) and
   openings (``POST /openings``) entered by the district's coordinator; BENCH_PORTAL_PEOPLE
   people registered in intake, BENCH_PORTAL_CASELOAD of them with Petra Schmidt as
   caseworker, the rest spread over other caseworkers; enrolments for most of those
   below B1, attendance for some (a few at risk), exams and completions (B1 reached:
   placement re-matches), dropouts. Placement computes suggestions from the events;
   then suggestions are accepted and cases moved on through their stages (Petra for
   her people, the coordinator for others), so the caseload, the file and the figures
   have content. Between the steps the bench waits until the services have caught
   up: no message waiting in the namespace's queues and the read models unchanged
   for a few seconds (polled through the APIs).
3. Signed in as a browser is: ``GET /caseload`` on the portal, redirected to the
   provider's login form, the form posted with the predefined user's button
   (``sub=<email>``), redirected back to ``/auth/callback``: a session cookie.
4. Each page is requested BENCH_PORTAL_REQUESTS times one after the other (after
   BENCH_PORTAL_WARMUP): the server time from ``Server-Timing: app;dur=``, the client's
   wall time, and ``X-Lotse-Api-Calls`` (the same for every request of a page, or the
   bench fails). The caseworker's caseload, a file of one of her people with open
   suggestions and a case, the coordinator's district figures, and, for information,
   the coordinator's district-wide caseload (its first page of 200).
5. The breakdown: the calls each page makes, timed directly against the services with
   the user's own access token (read from the portal's session with the stack's
   session key), BENCH_PORTAL_BREAKDOWN times each, one after the other. The page
   makes the first call, then the others concurrently: ``critical_path_p50_ms`` is
   the first call's median plus the slowest of the others'.

Writes bench/results/portal.json and prints a table. A benchmark, not a test: a
missed target is printed as missed.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx

import lotse_portal
from bench.alerts_scenario import (
    COURSE_WORD,
    FAMILY,
    GIVEN,
    OCCUPATIONS,
    SECTOR_WORD,
    STAFF_FAMILY,
    STAFF_GIVEN,
    TITLES,
)
from lotse_devstack.cleanup import delete_namespace
from lotse_devstack.ports import free_port
from lotse_devstack.stack import DEFAULT_PORTS, LocalStack, StackConfig
from lotse_portal.sessions import SessionCodec
from lotse_shared.contracts.common import (
    CefrLevel,
    CourseType,
    EducationLevel,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.places import all_places

Json = dict[str, Any]
COURSE_REF = {CourseType.INTEGRATIONSKURS: "IK", CourseType.BERUFSSPRACHKURS: "BSK"}

CASEWORKER = "petra.schmidt@landkreis-kassel.example"
COORDINATOR = "bildungskoordination@landkreis-kassel.example"
TARGET_P95_MS = 300.0
RESULTS = Path(__file__).parent / "results" / "portal.json"
RABBIT_URL = os.environ.get("LOTSE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
SESSION_COOKIE = "lotse_session"
QUERY_CHUNK = 500  # the services' bulk queries take up to 500 people
START_FOR_TYPE = {
    "praktikum": "internship_started",
    "einstiegsqualifizierung": "internship_started",
    "ausbildung": "apprenticeship_started",
    "beschaeftigung": "job_started",
}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class Config:
    """Sizes from the environment (``BENCH_PORTAL_*``); the defaults are issue 13's."""

    people: int = 4000
    caseload: int = 150
    requests: int = 200
    warmup: int = 5
    openings: int = 300
    courses: int = 40
    caseworkers: int = 27  # Petra and 26 colleagues: ~150 people each
    breakdown: int = 50
    concurrency: int = 16
    seed: int = 13
    quiet_s: float = 6.0
    # placement matches ~2 registrations/s against 300 openings on SecantusDB (2 cores):
    # 4,000 people take over 30 minutes to settle
    settle_timeout_s: float = 3600.0

    @classmethod
    def from_env(cls) -> Config:
        people = _env_int("BENCH_PORTAL_PEOPLE", cls.people)
        config = cls(
            people=people,
            caseload=min(people, _env_int("BENCH_PORTAL_CASELOAD", cls.caseload)),
            requests=_env_int("BENCH_PORTAL_REQUESTS", cls.requests),
            warmup=_env_int("BENCH_PORTAL_WARMUP", cls.warmup),
            openings=_env_int("BENCH_PORTAL_OPENINGS", cls.openings),
            courses=_env_int("BENCH_PORTAL_COURSES", cls.courses),
            caseworkers=max(2, _env_int("BENCH_PORTAL_CASEWORKERS", cls.caseworkers)),
            breakdown=_env_int("BENCH_PORTAL_BREAKDOWN", cls.breakdown),
            concurrency=_env_int("BENCH_PORTAL_CONCURRENCY", cls.concurrency),
            seed=_env_int("BENCH_PORTAL_SEED", cls.seed),
            settle_timeout_s=_env_int("BENCH_PORTAL_SETTLE_TIMEOUT_S", int(cls.settle_timeout_s)),
        )
        if config.requests < 1 or config.caseload < 1:
            raise SystemExit("BENCH_PORTAL_REQUESTS and BENCH_PORTAL_CASELOAD must be >= 1")
        return config


# --- the district, as plain request bodies ---------------------------------------------
@dataclass
class PersonPlan:
    body: Json
    petra: bool
    course: int | None = None  # index into Plan.courses
    sessions: list[bool] = field(default_factory=list)  # attendance, one per session
    outcome: str = "running"  # running, completed, dropped


@dataclass
class Plan:
    courses: list[Json]
    openings: list[Json]
    people: list[PersonPlan]


def _colleague(i: int) -> tuple[str, str]:
    given = STAFF_GIVEN[(i + 1) % len(STAFF_GIVEN)]  # 0 is Petra
    family = STAFF_FAMILY[(i * 7 + 3) % len(STAFF_FAMILY)]
    local = f"{given}.{family}".lower()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        local = local.replace(a, b)
    return f"{given} {family}", f"{local}.{i:03d}@landkreis-kassel.example"


def build_plan(config: Config, today: date) -> Plan:
    rng = random.Random(config.seed)
    places = list(all_places().values())
    district = [pl for pl in places if pl.in_district]
    kassel = all_places()["Kassel"]

    courses = []
    for k in range(config.courses):
        kind = CourseType.INTEGRATIONSKURS if k % 10 < 7 else CourseType.BERUFSSPRACHKURS
        starts = today - timedelta(days=rng.randint(20, 320))
        place = kassel if rng.random() < 0.35 else rng.choice(district)
        provider = rng.choice(["VHS Region Kassel", "Sprachschule Nordhessen", "BWHW Kassel"])
        courses.append(
            {
                "provider": provider,
                "course_ref": f"{COURSE_REF[kind]}-{k:03d}",
                "course_type": kind.value,
                "title": f"{COURSE_WORD[kind]} {place.name} {k + 1}",
                "target_level": (
                    CefrLevel.B1 if kind is CourseType.INTEGRATIONSKURS else CefrLevel.B2
                ).value,
                "starts_on": starts.isoformat(),
                "ends_on": (starts + timedelta(days=rng.randint(330, 420))).isoformat(),
                "municipality": place.name,
                "teaching_units": 700 if kind is CourseType.INTEGRATIONSKURS else 400,
            }
        )
    integration = [i for i, c in enumerate(courses) if c["course_type"] == "integrationskurs"]
    job_german = [i for i, c in enumerate(courses) if c["course_type"] == "berufssprachkurs"]

    openings = []
    for k in range(config.openings):
        sector = rng.choice(list(Sector))
        otype = rng.choices(list(OpeningType), [25, 10, 25, 40])[0]
        code = rng.choice(OCCUPATIONS[sector])
        if otype is OpeningType.BESCHAEFTIGUNG:
            need = rng.choices(["A1", "A2", "B1", "B2"], [10, 45, 35, 10])[0]
        elif otype is OpeningType.PRAKTIKUM:
            need = rng.choices(["A1", "A2", "B1"], [20, 60, 20])[0]
        else:
            need = rng.choices(["A2", "B1", "B2"], [20, 70, 10])[0]
        if sector in (Sector.HANDWERK, Sector.BAU) and rng.random() < 0.4:
            source, ref = "hwk-kassel", f"HWK-2026-{k:05d}"
        elif sector in (Sector.INDUSTRIE, Sector.HANDEL, Sector.BUERO) and rng.random() < 0.2:
            source, ref = "ihk-kassel", f"IHK-2026-{k:05d}"
        else:
            source, ref = "ba-jobsuche", f"10001-{1_000_000_000 + k}-S"
        place = rng.choice(places) if rng.random() < 0.65 else kassel
        start = None if rng.random() < 0.15 else today + timedelta(days=rng.randint(5, 240))
        title = f"{TITLES[otype]} {SECTOR_WORD[sector]}"
        if otype is OpeningType.BESCHAEFTIGUNG:
            title = f"{'Helfer/in' if code.endswith('1') else 'Fachkraft'} {SECTOR_WORD[sector]}"
        openings.append(
            {
                "source": source,
                "source_ref": ref,
                "opening_type": otype.value,
                "title": title,
                "employer": f"{rng.choice(STAFF_FAMILY)} {SECTOR_WORD[sector]} {place.name}",
                "occupation_code": code,
                "sector": sector.value,
                "required_german_level": need,
                "location": {"municipality": place.name},
                "start_date": start.isoformat() if start else None,
                "seats": rng.choice([1, 1, 1, 2, 3]),
            }
        )

    colleagues = [_colleague(i) for i in range(config.caseworkers - 1)]
    order = list(range(config.people))
    rng.shuffle(order)
    petra = set(order[: config.caseload])
    statuses = [
        (ResidenceStatus.AUFENTHALTSERLAUBNIS, 60),
        (ResidenceStatus.AUFENTHALTSGESTATTUNG, 18),
        (ResidenceStatus.DULDUNG, 8),
        (ResidenceStatus.NIEDERLASSUNGSERLAUBNIS, 10),
        (ResidenceStatus.AUSBILDUNGSDULDUNG, 2),
        (ResidenceStatus.BESCHAEFTIGUNGSDULDUNG, 2),
    ]
    people = []
    n_colleague = 0
    for i in range(config.people):
        status = rng.choices([s for s, _ in statuses], [w for _, w in statuses])[0]
        if status in (ResidenceStatus.AUFENTHALTSGESTATTUNG, ResidenceStatus.DULDUNG):
            permission = rng.choice([WorkPermission.NEEDS_APPROVAL, WorkPermission.APPROVED])
        elif status in (ResidenceStatus.AUSBILDUNGSDULDUNG, ResidenceStatus.BESCHAEFTIGUNGSDULDUNG):
            permission = WorkPermission.APPROVED
        else:
            permission = WorkPermission.ALLOWED
        level = rng.choices([None, "A1", "A2", "B1", "B2"], [5, 25, 40, 25, 5])[0]
        mine = i in petra
        if mine:
            caseworker = ("Petra Schmidt", CASEWORKER)
        else:
            caseworker = colleagues[n_colleague % len(colleagues)]
            n_colleague += 1
        contacts = [{"role": "caseworker", "name": caseworker[0], "email": caseworker[1]}]
        if rng.random() < 0.25:
            m = rng.randrange(max(1, config.people // 12))
            contacts.append(
                {
                    "role": "mentor",
                    "name": f"{STAFF_GIVEN[m % len(STAFF_GIVEN)]} {STAFF_FAMILY[m % 27]}",
                    "email": f"pate.{m:04d}@berufspaten.example",
                }
            )
        sectors = rng.sample([s.value for s in Sector], rng.choice([1, 2, 2, 3]))
        experience = []
        if rng.random() < 0.4:
            sector = rng.choice(list(Sector))
            experience = [
                {
                    "occupation_code": rng.choice(OCCUPATIONS[sector]),
                    "title": SECTOR_WORD[sector],
                    "years": rng.randint(1, 8),
                }
            ]
        body = {
            "given_name": rng.choice(GIVEN),
            "family_name": rng.choice(FAMILY),
            "birth_year": rng.randint(1968, 2006),
            "municipality": rng.choice(district).name,
            "german_level": level,
            "education": {"level": rng.choice(list(EducationLevel)).value},
            "work_experience": experience,
            "sectors_of_interest": sectors,
            "residence_status": status.value,
            "work_permission": permission.value,
            "driving_licence": rng.random() < 0.3,
            "max_commute_km": rng.choice([10, 15, 20, 25, 30, 40]),
            "consent": {
                "matching": rng.random() < 0.95,
                "share_with_employers": True,
                "email_notifications": True,
            },
            "contacts": contacts,
        }
        plan = PersonPlan(body, mine)
        below_b1 = level in (None, "A1", "A2")
        if (below_b1 and rng.random() < 0.7) or (level == "B1" and rng.random() < 0.3):
            pool = integration if below_b1 or not job_german else job_german
            plan.course = rng.choice(pool or integration or [0]) if courses else None
        if plan.course is not None:
            if rng.random() < (1.0 if mine else 0.15):  # Petra's schools report to her
                rate = 0.5 if rng.random() < 0.15 else 0.92
                plan.sessions = [rng.random() < rate for _ in range(6)]
            roll = rng.random()
            if roll < (0.15 if mine else 0.04):
                plan.outcome = "completed"
            elif roll < (0.19 if mine else 0.06):
                plan.outcome = "dropped"
        people.append(plan)
    return Plan(courses, openings, people)


# --- talking to the stack ----------------------------------------------------------------
class Seeder:
    """The services' APIs with a bounded number of requests in flight (SecantusDB is
    the bottleneck; more in flight only queues there)."""

    def __init__(self, stack: LocalStack, concurrency: int) -> None:
        self.stack = stack
        self.gate = asyncio.Semaphore(concurrency)
        self.http = httpx.AsyncClient(
            timeout=120,
            limits=httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=64),
        )
        self.coordinator = stack.token("coordinator", COORDINATOR)
        self.petra = stack.token("caseworker", CASEWORKER)
        self.calls = 0
        self.retries = 0

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        params: dict[str, Any] | None = None,
        retry_on: Sequence[int] = (),
        tries: int = 120,
    ) -> Any:
        """The answer's JSON; retried (with a pause) on ``retry_on`` while another service
        has not yet heard of what was just registered, and on 5xx."""
        headers = {"Authorization": f"Bearer {token or self.coordinator}"}
        url = self.stack.url(service) + path
        for attempt in range(tries):
            async with self.gate:
                r = await self.http.request(method, url, headers=headers, json=body, params=params)
            self.calls += 1
            if r.status_code < 400:
                return r.json() if r.content else None
            if r.status_code in retry_on or r.status_code >= 500:
                self.retries += 1
                await asyncio.sleep(min(0.25 * (attempt + 1), 2.0))
                continue
            raise RuntimeError(f"{method} {service}{path}: {r.status_code} {r.text[:400]}")
        raise RuntimeError(f"{method} {service}{path}: still refused after {tries} tries")

    async def each(self, items: Sequence[Any], one: Callable[[Any], Awaitable[Any]]) -> list[Any]:
        return list(await asyncio.gather(*(one(x) for x in items)))

    async def chunked(
        self, service: str, path: str, ids: Sequence[str], token: str | None = None
    ) -> list[Json]:
        found: list[Json] = []
        for i in range(0, len(ids), QUERY_CHUNK):
            found += await self.call(
                "POST", service, path, token=token, body={"person_ids": ids[i : i + QUERY_CHUNK]}
            )
        return found


class Settler:
    """Waits until the services have caught up: nothing waiting in the namespace's queues
    and the read models (as the APIs show them) unchanged for ``quiet_s``."""

    def __init__(self, seeder: Seeder, namespace: str, quiet_s: float, timeout_s: float) -> None:
        self.seeder = seeder
        self.namespace = namespace
        self.quiet_s = quiet_s
        self.timeout_s = timeout_s
        self.person_ids: list[str] = []

    async def _queue_names(self) -> list[str]:
        url = os.environ.get("LOTSE_RABBIT_ADMIN_URL", "http://127.0.0.1:15672").rstrip("/")
        user = os.environ.get("LOTSE_RABBIT_ADMIN_USER", "guest")
        password = os.environ.get("LOTSE_RABBIT_ADMIN_PASSWORD", "guest")
        vhost = urllib.parse.quote(os.environ.get("LOTSE_RABBIT_VHOST", "/"), safe="")
        async with httpx.AsyncClient(timeout=10, auth=(user, password)) as http:
            r = await http.get(f"{url}/api/queues/{vhost}", params={"columns": "name"})
            r.raise_for_status()
        return [
            q["name"]
            for q in r.json()
            if q["name"].startswith(f"{self.namespace}.")
            and not q["name"].endswith((".dead", ".event-log"))
        ]

    async def _waiting(self, names: list[str]) -> int:
        """Messages ready in those queues, exactly (passive declarations)."""
        connection = await aio_pika.connect(RABBIT_URL)
        total = 0
        async with connection:
            channel = await connection.channel()
            for name in names:
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    channel = await connection.channel()
                    continue
                total += queue.declaration_result.message_count or 0
        return total

    async def _state(self) -> tuple[Any, ...]:
        s = self.seeder
        ids = self.person_ids
        overview = await s.chunked("placement", "/people/overview", ids) if ids else []
        enrolments = await s.chunked("courses", "/enrolments/query", ids) if ids else []
        unread = await s.call(
            "GET", "notifications", "/notifications/unread-by-person", token=s.petra
        )
        return (
            len(overview),
            sum(o["open_suggestions"] for o in overview),
            sum(o["open_cases"] for o in overview),
            sum(1 for o in overview if o["in_course"]),
            sum(1 for o in overview if o["course_level"]),
            len(enrolments),
            sum(len(e.get("sessions", [])) for e in enrolments),
            sum(1 for e in enrolments if e["status"] != "active"),
            sum(unread.values()),
        )

    async def settle(self, what: str) -> float:
        started = time.monotonic()
        names = await self._queue_names()
        last: tuple[Any, ...] | None = None
        quiet_since = started
        polls = 0
        while True:
            polls += 1
            if polls % 10 == 0:
                names = await self._queue_names()  # retry queues appear on first use
            waiting = await self._waiting(names)
            state = await self._state()
            now = time.monotonic()
            if waiting or state != last:
                last, quiet_since = state, now
            elif now - quiet_since >= self.quiet_s:
                break
            if now - started > self.timeout_s:
                raise RuntimeError(f"{what}: not settled after {self.timeout_s:.0f}s ({state})")
            dead = [n for n, p in self.seeder.stack.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"services exited: {dead}; see {self.seeder.stack.log_dir}")
            await asyncio.sleep(1.0)
        seconds = time.monotonic() - started
        state_now = dict(zip(STATE_NAMES, last or (), strict=False))
        say(f"   settled after {what} in {seconds:.0f}s: {state_now}")
        return seconds


STATE_NAMES = (
    "placement_people",
    "open_suggestions",
    "open_cases",
    "in_course",
    "course_level",
    "enrolments",
    "sessions",
    "finished_enrolments",
    "petra_unread",
)


def say(line: str) -> None:
    print(line, flush=True)


# --- seeding -----------------------------------------------------------------------------
async def seed(seeder: Seeder, settler: Settler, plan: Plan, rng: random.Random) -> Json:
    """Everything through the APIs, in the order the district fills it."""
    s = seeder
    today = datetime.now(UTC).date()
    phases: dict[str, float] = {}
    counts: dict[str, Any] = {}

    async def phase(name: str, work: Awaitable[Any]) -> Any:
        started = time.monotonic()
        result = await work
        phases[name] = round(time.monotonic() - started, 1)
        say(f"   {name}: {phases[name]:.0f}s")
        return result

    say(f"2. seeding: {len(plan.courses)} courses, {len(plan.openings)} openings ...")
    courses = await phase(
        "courses", s.each(plan.courses, lambda c: s.call("POST", "courses", "/courses", body=c))
    )
    course_ids = [c["course_id"] for c in courses]
    await phase(
        "openings",
        s.each(plan.openings, lambda o: s.call("POST", "placement", "/openings", body=o)),
    )

    say(f"   {len(plan.people)} people registered in intake ...")
    registered = await phase(
        "people",
        s.each(plan.people, lambda p: s.call("POST", "intake", "/people", body=p.body)),
    )
    ids = [r["person_id"] for r in registered]
    settler.person_ids = ids

    weekdays = [today - timedelta(days=d) for d in range(40, 0, -1)]
    session_days = [d for d in weekdays if d.weekday() < 5][-6:]

    async def course_life(item: tuple[str, PersonPlan]) -> None:
        pid, p = item
        if p.course is None:
            return
        e = await s.call(
            "POST",
            "courses",
            "/enrolments",
            body={"person_id": pid, "course_id": course_ids[p.course]},
            retry_on=(404, 422),  # courses has not yet heard of the person from intake
        )
        eid = e["enrolment_id"]
        for day, present in zip(session_days, p.sessions, strict=False):
            await s.call(
                "POST",
                "courses",
                f"/enrolments/{eid}/attendance",
                body={"session_date": day.isoformat(), "present": present},
            )
        if p.outcome == "completed":
            await s.call(
                "POST",
                "courses",
                f"/enrolments/{eid}/exams",
                body={"exam": "dtz", "result": "B1", "taken_on": str(today - timedelta(days=3))},
            )
            await s.call(
                "POST",
                "courses",
                f"/enrolments/{eid}/completion",
                body={"completed_on": today.isoformat()},
            )
        elif p.outcome == "dropped":
            await s.call(
                "POST",
                "courses",
                f"/enrolments/{eid}/dropout",
                body={"dropped_on": today.isoformat(), "reason": "Umzug"},
            )

    in_course = [(pid, p) for pid, p in zip(ids, plan.people, strict=True) if p.course is not None]
    say(f"   {len(in_course)} enrolments with attendance, exams, completions, dropouts ...")
    await phase("course_events", s.each(in_course, course_life))
    counts.update(
        enrolments=len(in_course),
        attendance_records=sum(len(p.sessions) for _, p in in_course),
        attendance_at_risk_planned=sum(
            1 for _, p in in_course if len(p.sessions) >= 5 and sum(p.sessions) / 6 < 0.7
        ),
        completions=sum(1 for _, p in in_course if p.outcome == "completed"),
        dropouts=sum(1 for _, p in in_course if p.outcome == "dropped"),
    )
    phases["settle_matching"] = round(await settler.settle("people, courses, matching"), 1)

    # cases: Petra moves a third of her people on; the coordinator some of the others
    mine = [pid for pid, p in zip(ids, plan.people, strict=True) if p.petra]
    others = [pid for pid, p in zip(ids, plan.people, strict=True) if not p.petra]
    overview = {o["person_id"]: o for o in await s.chunked("placement", "/people/overview", ids)}
    with_suggestions_mine = [pid for pid in mine if overview[pid]["open_suggestions"]]
    with_suggestions_others = [pid for pid in others if overview[pid]["open_suggestions"]]
    chosen_mine = rng.sample(
        with_suggestions_mine, min(len(with_suggestions_mine), round(len(mine) * 0.3))
    )
    chosen_others = rng.sample(
        with_suggestions_others, min(len(with_suggestions_others), round(len(others) * 0.06))
    )
    stages: dict[str, int] = {}

    async def case_life(item: tuple[str, str]) -> None:
        pid, token = item
        page = await s.call(
            "GET", "placement", f"/people/{pid}/suggestions/open", token=token, params={"limit": 3}
        )
        take = page["items"][: 2 if rng.random() < 0.2 else 1]
        for suggestion in take:
            case = await s.call(
                "POST",
                "placement",
                f"/people/{pid}/suggestions/{suggestion['opening_id']}/accept",
                token=token,
                body={"note": "Mit der Person besprochen"},
            )
            path = rng.choices(
                ["proposed", "interview", "started", "employed", "declined"], [30, 25, 30, 8, 7]
            )[0]
            steps: list[tuple[str, date]] = []
            start_on = today + timedelta(days=rng.randint(0, 30))
            if path in ("interview", "started", "employed") and rng.random() < 0.8:
                steps.append(("interview", today))
            if path in ("started", "employed"):
                steps.append((START_FOR_TYPE[case["opening_type"]], start_on))
            if path == "employed" and case["opening_type"] != "praktikum":
                if steps[-1][0] == "internship_started":  # EQ: then the apprenticeship
                    steps.append(("apprenticeship_started", start_on))
                steps.append(("employed_3_months", start_on + timedelta(days=91)))
            for stage, on in steps:
                case = await s.call(
                    "POST",
                    "placement",
                    f"/cases/{case['case_id']}/stage",
                    token=token,
                    body={"stage": stage, "on": on.isoformat()},
                )
            if path == "declined":
                case = await s.call(
                    "POST",
                    "placement",
                    f"/cases/{case['case_id']}/close",
                    token=token,
                    body={"reason": "declined_by_employer", "on": today.isoformat()},
                )
                stages["closed"] = stages.get("closed", 0) + 1
            else:
                stages[case["stage"]] = stages.get(case["stage"], 0) + 1

    say(
        f"   cases: Petra accepts suggestions for {len(chosen_mine)} of her people, the "
        f"coordinator for {len(chosen_others)} others; stages moved on ..."
    )
    await phase(
        "cases",
        s.each(
            [(pid, s.petra) for pid in chosen_mine]
            + [(pid, s.coordinator) for pid in chosen_others],
            case_life,
        ),
    )
    counts.update(
        people_with_cases_petra=len(chosen_mine),
        people_with_cases_others=len(chosen_others),
        cases_by_stage=dict(sorted(stages.items())),
    )
    phases["settle_cases"] = round(await settler.settle("cases"), 1)
    return {"phases_s": phases, "counts": counts, "person_ids": ids, "petra_ids": mine}


# --- the browser --------------------------------------------------------------------------
async def sign_in(stack: LocalStack, user: str) -> httpx.AsyncClient:
    """A browser's way in: the portal sends it to the provider's login form, the user
    clicks their name (a predefined user's button), the provider sends it back."""
    browser = httpx.AsyncClient(timeout=60, follow_redirects=True)
    form = await browser.get(f"{stack.url('portal')}/caseload")
    if "/oauth2/authorize" not in str(form.url) or form.status_code != 200:
        raise RuntimeError(f"expected the provider's login form, got {form.url} {form.status_code}")
    if f'name="sub" value="{user}"' not in form.text:
        raise RuntimeError(f"the login form offers no button for {user}")
    landed = await browser.post(str(form.url), data={"sub": user})
    if landed.status_code != 200 or not str(landed.url).startswith(stack.url("portal")):
        raise RuntimeError(f"sign-in as {user} ended at {landed.url} ({landed.status_code})")
    if SESSION_COOKIE not in browser.cookies:
        raise RuntimeError(f"sign-in as {user}: no session cookie")
    browser.follow_redirects = False
    return browser


def access_token(stack: LocalStack, browser: httpx.AsyncClient) -> str:
    """The user's access token as the portal holds it (the bench has the session key)."""
    cookie = browser.cookies[SESSION_COOKIE]
    session = SessionCodec(stack.session_key, max_age_s=3600).decode(cookie)
    return str(session["user"]["access_token"])


def summary(samples: Sequence[float]) -> Json:
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else []

    def pct(p: int) -> float:
        return round(cuts[p - 1] if cuts else ordered[0], 1)

    return {
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


async def measure_page(
    browser: httpx.AsyncClient, url: str, requests: int, warmup: int, check: Callable[[str], Json]
) -> Json:
    async def one() -> tuple[float, float, int, str]:
        started = time.perf_counter()
        r = await browser.get(url)
        wall = (time.perf_counter() - started) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"GET {url}: {r.status_code} {r.headers.get('location', '')}")
        timing = SERVER_TIMING.search(r.headers.get("server-timing", ""))
        if timing is None or "x-lotse-api-calls" not in r.headers:
            raise RuntimeError(f"GET {url}: no Server-Timing or X-Lotse-Api-Calls header")
        return float(timing.group(1)), wall, int(r.headers["x-lotse-api-calls"]), r.text

    for _ in range(warmup):
        await one()
    server, client, calls = [], [], set()
    html = ""
    for _ in range(requests):
        s, w, n, html = await one()
        server.append(s)
        client.append(w)
        calls.add(n)
    if len(calls) != 1:
        raise RuntimeError(f"GET {url}: the page made a varying number of calls: {sorted(calls)}")
    return {
        "requests": requests,
        "server_ms": summary(server),
        "client_ms": summary(client),
        "api_calls": calls.pop(),
        "shows": check(html),
    }


def missing_parts(html: str) -> bool:
    return 'class="missing"' in html


def check_caseload(expected_rows: int) -> Callable[[str], Json]:
    def check(html: str) -> Json:
        rows = html.count('<th scope="row"><a href="/people/')
        if rows != expected_rows or missing_parts(html):
            raise RuntimeError(
                f"caseload: {rows} rows (expected {expected_rows}) or a part missing"
            )
        return {"rows": rows}

    return check


def check_plain(what: str) -> Callable[[str], Json]:
    def check(html: str) -> Json:
        if missing_parts(html):
            raise RuntimeError(f"{what}: a part of the page is missing (a service did not answer)")
        return {"bytes": len(html.encode())}

    return check


# --- the breakdown -------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    service: str
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None

    @property
    def label(self) -> str:
        """The call with a person's id shown as ``{id}``: the same call for anyone."""
        query = f"?{urllib.parse.urlencode(self.params)}" if self.params else ""
        return re.sub(
            r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", f"{self.method} {self.service} {self.path}{query}"
        )


def caseload_calls(ids: list[str]) -> tuple[Call, list[Call]]:
    """What ``views.caseload`` calls: intake first, then four at once."""
    return Call("intake", "GET", "/people", {"limit": 200, "offset": 0}), [
        Call("courses", "POST", "/enrolments/query", body={"person_ids": ids}),
        Call("placement", "POST", "/people/overview", body={"person_ids": ids}),
        Call("notifications", "GET", "/notifications/unread-by-person"),
        Call("courses", "GET", "/courses", {"limit": 500}),
    ]


def person_calls(pid: str) -> tuple[Call, list[Call]]:
    """What ``views.person_file`` calls: intake first, then six at once."""
    return Call("intake", "GET", f"/people/{pid}"), [
        Call("courses", "GET", "/enrolments", {"person_id": pid}),
        Call("courses", "GET", "/courses", {"limit": 500}),
        Call("placement", "GET", f"/people/{pid}/suggestions/open", {"limit": 50, "offset": 0}),
        Call("placement", "GET", f"/people/{pid}/evaluation", {"limit": 40}),
        Call("placement", "GET", f"/people/{pid}/cases"),
        Call("notifications", "GET", "/notifications", {"person_id": pid, "limit": 20}),
    ]


def figures_calls() -> tuple[Call, list[Call]]:
    return Call("placement", "GET", "/reports/placement"), []


async def breakdown(
    stack: LocalStack, token: str, first: Call, rest: list[Call], times: int
) -> Json:
    headers = {"Authorization": f"Bearer {token}"}
    rows: list[Json] = []
    async with httpx.AsyncClient(timeout=60, headers=headers) as http:
        for call in [first, *rest]:
            samples = []
            for i in range(times + 2):  # two warm-ups
                started = time.perf_counter()
                r = await http.request(
                    call.method,
                    stack.url(call.service) + call.path,
                    params=call.params,
                    json=call.body,
                )
                ms = (time.perf_counter() - started) * 1000
                if r.status_code != 200:
                    raise RuntimeError(f"{call.label}: {r.status_code} {r.text[:300]}")
                if i >= 2:
                    samples.append(ms)
            rows.append({"call": call.label, "ms": summary(samples), "bytes": len(r.content)})
    p50 = [row["ms"]["p50"] for row in rows]
    slowest = max(rows, key=lambda row: row["ms"]["p50"])
    return {
        "calls": rows,
        "critical_path_p50_ms": round(p50[0] + max(p50[1:], default=0.0), 1),
        "slowest_call": slowest["call"],
    }


# --- the run ----------------------------------------------------------------------------------
def git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


async def main(config: Config) -> Json:
    begun = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lotse-bench-portal-"))
    namespace = f"bench-portal-{uuid.uuid4().hex[:6]}"
    stack = LocalStack(
        StackConfig(
            namespace=namespace,
            ports={name: free_port() for name in DEFAULT_PORTS},
            rabbit_url=RABBIT_URL,
            log_dir=workdir / "logs",
            dev_keys=workdir / "keys",
            extra_env={"LOTSE_LOG_LEVEL": "WARNING"},
            portal=True,
        )
    )
    load_before = os.getloadavg()
    say(f"1. the stack with the portal (namespace {namespace}, logs {workdir / 'logs'})")
    seeder = Seeder(stack, config.concurrency)
    settler = Settler(seeder, namespace, config.quiet_s, config.settle_timeout_s)
    browsers: list[httpx.AsyncClient] = []
    try:
        await asyncio.to_thread(stack.start)  # in the try: a failed start stops what began
        plan = build_plan(config, datetime.now(UTC).date())
        started = time.monotonic()
        seeded = await seed(seeder, settler, plan, random.Random(config.seed + 1))
        seeding_s = round(time.monotonic() - started, 1)
        say(f"   seeding took {seeding_s:.0f}s ({seeder.calls} API calls)")

        # the file: one of Petra's people with open suggestions and an open case
        petra_ids: list[str] = seeded["petra_ids"]
        overview = await seeder.chunked("placement", "/people/overview", petra_ids, seeder.petra)
        candidates = [o for o in overview if o["open_cases"] and o["open_suggestions"]]
        candidates.sort(key=lambda o: (-o["open_suggestions"], o["person_id"]))
        if not candidates:
            raise RuntimeError("none of Petra's people has open suggestions and a case")
        person = candidates[0]["person_id"]
        report = await seeder.call("GET", "placement", "/reports/placement")

        say("3. signing in through the provider's login form; measuring each page")
        petra = await sign_in(stack, CASEWORKER)
        coordinator = await sign_in(stack, COORDINATOR)
        browsers += [petra, coordinator]
        portal = stack.url("portal")
        n, w = config.requests, config.warmup
        pages: dict[str, Json] = {}
        pages["caseload"] = {
            "path": "/caseload",
            "user": CASEWORKER,
            **await measure_page(
                petra, f"{portal}/caseload", n, w, check_caseload(min(config.caseload, 200))
            ),
        }
        say(f"   caseload: {pages['caseload']['server_ms']}")
        pages["person_file"] = {
            "path": f"/people/{person}",
            "user": CASEWORKER,
            "person": {k: candidates[0][k] for k in ("open_suggestions", "open_cases")},
            **await measure_page(
                petra, f"{portal}/people/{person}", n, w, check_plain("person file")
            ),
        }
        say(f"   person file: {pages['person_file']['server_ms']}")
        pages["figures"] = {
            "path": "/figures",
            "user": COORDINATOR,
            **await measure_page(coordinator, f"{portal}/figures", n, w, check_plain("figures")),
        }
        say(f"   figures: {pages['figures']['server_ms']}")
        pages["caseload_district"] = {
            "path": "/caseload",
            "user": COORDINATOR,
            "note": "information only: the district-wide view, its first page of 200",
            **await measure_page(
                coordinator,
                f"{portal}/caseload",
                n,
                w,
                check_caseload(min(config.people, 200)),
            ),
        }
        say(f"   district caseload: {pages['caseload_district']['server_ms']}")
        for name in ("caseload", "person_file", "figures"):
            pages[name]["target_p95_ms"] = TARGET_P95_MS
            pages[name]["met"] = pages[name]["server_ms"]["p95"] < TARGET_P95_MS

        say("4. the calls behind each page, timed directly with the user's own token")
        petra_token = access_token(stack, petra)
        coordinator_token = access_token(stack, coordinator)
        listing = await seeder.call(
            "GET", "intake", "/people", token=petra_token, params={"limit": 200}
        )
        district = await seeder.call(
            "GET", "intake", "/people", token=coordinator_token, params={"limit": 200}
        )
        plans = {
            "caseload": (petra_token, caseload_calls([p["person_id"] for p in listing["items"]])),
            "person_file": (petra_token, person_calls(person)),
            "figures": (coordinator_token, figures_calls()),
            "caseload_district": (
                coordinator_token,
                caseload_calls([p["person_id"] for p in district["items"]]),
            ),
        }
        for name, (token, (first, rest)) in plans.items():
            pages[name]["breakdown"] = await breakdown(stack, token, first, rest, config.breakdown)
            if pages[name]["api_calls"] != 1 + len(rest):
                pages[name]["breakdown"]["warning"] = (
                    f"the page made {pages[name]['api_calls']} calls; the bench times "
                    f"{1 + len(rest)} (views.py changed?)"
                )

        return {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - begun, 1),
            "config": {
                k: getattr(config, k)
                for k in (
                    "people",
                    "caseload",
                    "requests",
                    "warmup",
                    "openings",
                    "courses",
                    "caseworkers",
                    "breakdown",
                    "concurrency",
                    "seed",
                )
            },
            "head_commit": git("rev-parse", "--short", "HEAD"),
            # where the services' code came from (a clean export of HEAD, or the tree)
            "services_from": str(Path(lotse_portal.__file__).parents[2]),
            "uncommitted": [
                line[3:]
                for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
                if line[3:].startswith(("services/", "shared/", "deploy/devstack/"))
            ],
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_before": [round(x, 2) for x in load_before],
                "database": "secantusdb",
            },
            "seeding": {
                "seconds": seeding_s,
                "api_calls": seeder.calls,
                "retries": seeder.retries,
                "phases_s": seeded["phases_s"],
                "counts": {
                    "people": len(seeded["person_ids"]),
                    "petra": len(petra_ids),
                    "courses": len(plan.courses),
                    "openings": len(plan.openings),
                    **seeded["counts"],
                },
            },
            "district_figures": {
                k: report[k]
                for k in (
                    "people_registered",
                    "people_in_work_or_training",
                    "in_work_or_training_rate",
                    "open_cases_by_stage",
                    "closed_cases_by_reason",
                )
            },
            "target_p95_ms": TARGET_P95_MS,
            "pages": pages,
            "targets_met": all(pages[k]["met"] for k in ("caseload", "person_file", "figures")),
        }
    finally:
        for browser in browsers:
            await browser.aclose()
        await seeder.close()
        await asyncio.to_thread(stack.stop)
        await delete_namespace(RABBIT_URL, namespace)
        shutil.rmtree(stack.workdir, ignore_errors=True)
        shutil.rmtree(workdir / "keys", ignore_errors=True)


PAGE_LABELS = {
    "caseload": "caseload (caseworker)",
    "person_file": "person's file",
    "figures": "district figures",
    "caseload_district": "caseload (coordinator, 200)",
}


def print_table(result: Json) -> None:
    pages = result["pages"]
    say("")
    say(
        f"{result['config']['people']} people, {result['config']['caseload']} with the "
        f"caseworker; seeding {result['seeding']['seconds']:.0f}s; "
        f"{result['config']['requests']} requests per page"
    )
    say(
        f"{'page':30} {'calls':>5} {'server p50':>10} {'p95':>7} {'p99':>7} {'max':>7}"
        f" {'client p50':>10} {'p95':>7}  target p95 < {TARGET_P95_MS:.0f} ms"
    )
    for name, page in pages.items():
        s, c = page["server_ms"], page["client_ms"]
        verdict = ("met" if page["met"] else "MISSED") if "met" in page else "(information)"
        say(
            f"{PAGE_LABELS[name]:30} {page['api_calls']:>5} {s['p50']:>10.1f} {s['p95']:>7.1f}"
            f" {s['p99']:>7.1f} {s['max']:>7.1f} {c['p50']:>10.1f} {c['p95']:>7.1f}  {verdict}"
        )
    say("")
    say("the calls behind each page (direct, the user's token; ms):")
    for name, page in pages.items():
        b = page["breakdown"]
        say(
            f"  {PAGE_LABELS[name]}: critical path p50 ~{b['critical_path_p50_ms']:.1f} ms;"
            f" slowest: {b['slowest_call']}"
        )
        for row in b["calls"]:
            m = row["ms"]
            say(
                f"    {row['call']:70.70} p50 {m['p50']:7.1f}  p95 {m['p95']:7.1f}"
                f"  {row['bytes'] / 1024:7.1f} KiB"
            )
        if "warning" in b:
            say(f"    ! {b['warning']}")
    say("")
    say(f"targets met: {'yes' if result['targets_met'] else 'NO'}")


def run() -> None:
    config = Config.from_env()
    result = asyncio.run(main(config))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print_table(result)
    say(f"written to {RESULTS}")


if __name__ == "__main__":
    run()
