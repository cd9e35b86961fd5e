"""``make bench-alerts``: a district's week, before and after the alert policy (issue 12).

The four services run as processes (each run on its own SecantusDB and namespace, the
machine's RabbitMQ, the in-process SMTP sink). The same seeded scenario is played twice
in one invocation: against the code at ``BENCH_ALERTS_BASE`` (default ``ac679f4``, the
commit before issue 12; extracted with ``git archive`` and put first on the services'
PYTHONPATH) and against the working tree. It prints, per caseworker and working day,
inbox items, emails accepted by the SMTP sink and the share of items that are
critical/important (p50 and max over the 27 x 5 caseworker-days), side by side, the
issue's targets as PASS/FAIL, and the "no suggestion lost" check; it writes
``bench/results/alerts.json``. A benchmark: it exits 0 when both runs completed, whatever
the figures (1 if a run broke down).

The figures (defaults; ``BENCH_ALERTS_*`` makes it smaller, see ``alerts_scenario.Config``):

- **4,000 people, 27 caseworkers** of ~148 cases each (round robin): the issue's district.
  A mentor (volunteer, ~3 mentees each) for ~1/4, an integration guide (~25 people each)
  for ~1/4, an education coordinator of their own for ~1/10; the others' is the district's
  (``LOTSE_COORDINATORS``). German A1 30 %, A2 40 %, B1 25 %, none 5 %; residence titles
  and work permissions mixed (a fifth may not work yet and gets no suggestions); 1-3
  sectors of interest, experience in a KldB group for 40 %, a driving licence for 30 %.
  Everyone consents to matching and email (so the email figures are an upper bound).
- **Openings: 300 new in the week (60 a day), 200 open before it, all still open re-sent
  every morning, 5 withdrawn a day.** The Kassel employment agency's area lists ~3,500
  open vacancies with ~700 new a month (~160 a week); its Jobsuche also carries postings
  not registered with the agency (employers' own and partner job boards), about as many
  again, and the chambers add apprenticeships: ~1,300 new a month, i.e. ~300 a week, is
  what the district would receive. The stock before the week is deliberately not the
  3,500 (or more): a re-sent opening whose pairs were already told produces no alert
  (placement skips pairs it told), so the stock changes the counted figures only through
  which openings a completer's search finds, while each re-send costs placement a full
  re-match of the opening (~1,500 people within reach scored); 3,500 re-sent daily would
  be ~17,500 re-matches, hours on two cores. With 200 the daily re-send still grows from
  ~200 to ~430 (~1,550 re-sends in the week), enough to show that re-sends stay silent.
  Of the 5 withdrawals a day, 3 are older openings at 08:00 (their pairs were announced
  already) and 2 are openings published that morning, withdrawn at 14:00, before the
  16:00 digest (their waiting entries must be left out, and are counted as withdrawn).
  Reported by ``ba-jobsuche``, some by ``ihk-kassel``/``hwk-kassel``, each as itself.
- **Courses: 60 completions, 10 drop-outs, 20 attendance risks** (the issue), spread
  evenly over the five days (12/2/4 a day) at random among 09:00, 11:00, 13:00, 15:00.
  A completer (A2, work allowed) is enrolled before the week in an integration course
  that ends on their day; the school reports the DTZ result B1, then the completion with
  level B1. Attendance risks: four sessions present the week before (rate 1.0); on their
  day the school reports two missed sessions at once (4/5 = 0.8 is not below the 0.8
  threshold, 4/6 is): one alert, the second report must stay quiet. 300 people are
  enrolled before the week (the 90 above included); everyone still in a course gets one
  attendance report a day at 13:00 (present): ~1,400 reports that must cause no alert.
- **Simulated time** (``LOTSE_CLOCK_FILE``, ``LOTSE_QUIET_HOURS=true`` in the after run):
  setup (registering, the stock, enrolments) on the Friday before the week at 07:00, its
  digest at 16:00 that Friday, not counted. Each working day: 07:30 (what the night left
  due), 08:00 withdrawals, re-sends and new openings, course events at 09:00, 11:00, 13:00
  and 15:00 each followed by +3 min (past the 120 s a completion waits for its
  suggestions), 14:00 the afternoon withdrawals, 16:00 and 16:05 (the daily digest), 18:30
  the end of the day. After each step the bench waits until the services are quiet (no
  message waiting, no outbox row unsent, no matching pending, no email due, nothing new for
  ``BENCH_ALERTS_QUIET_S``).
- **Before**: the old code ignores the clock and sends at once (``LOTSE_QUIET_HOURS=false``
  as on the devstack); its enrolment digest is set to the minute before the run started,
  so it is not due during the run (the week has no enrolments; otherwise the setup's
  enrolments would land on whichever simulated day real 16:00 fell into).
- **Counting** (both runs alike): at the end of each simulated day every inbox item and
  every accepted email not seen before is that day's. Inbox items: the notifications
  database's ``notifications`` of the caseworker; emails: the SMTP sink's messages to
  them (digest or not, from the Message-ID); important share: items with priority >= 3.
- **No suggestion lost** (both runs; a target of the after run only): every distinct
  (person, opening) pair in placement's ``suggestion_sets`` scoring >= the announcement
  threshold (``LOTSE_ANNOUNCE_MIN_SCORE``, 20) is in exactly one of the caseworker's
  alerts or digest entries, or is a ``suggestion_entries`` row ``withdrawn``; no pair
  below it is in any of the caseworker's notifications (below-threshold pairs stay in
  placement's sets, the person's file).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from bench.alerts_count import caseworker_days, clock_agreement, per_day, suggestion_check, targets
from bench.alerts_run import Run
from bench.alerts_scenario import (
    BERLIN,
    DAYS,
    DISTRICT,
    DISTRICT_COORDINATOR,
    SCHOOL,
    SLOTS,
    Config,
    CourseEvent,
    OpeningPlan,
    Scenario,
    build,
)
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import CefrLevel
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.intake import PersonRegistered

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "alerts.json"
RABBIT_URL = os.environ.get("LOTSE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
MIN_SCORE = float(os.environ.get("LOTSE_ANNOUNCE_MIN_SCORE", "20"))


def say(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", flush=True)


# --- events ---------------------------------------------------------------------------------


def reported(o: OpeningPlan) -> Event:
    return p.OpeningReported.create(o.report, producer=o.producer)


def withdrawn(o: OpeningPlan, reason: str) -> Event:
    return p.OpeningWithdrawn.create(
        p.OpeningWithdrawnV1(source_ref=o.report.source_ref, reason=reason), producer=o.producer
    )


def attendance(sc: Scenario, e: CourseEvent, on: Any, present: bool) -> Event:
    return p.AttendanceReported.create(
        p.AttendanceReportedV1(
            person_id=sc.people[e.person].person_id,
            course=e.course,
            session_date=on,
            present=present,
        ),
        producer=SCHOOL,
    )


def course_events(sc: Scenario, e: CourseEvent) -> list[Event]:
    person_id = sc.people[e.person].person_id
    if e.kind == "attendance":
        return [attendance(sc, e, e.on, e.detail == "present")]
    if e.kind == "risk":  # two missed sessions reported at once: the previous one and today's
        previous = e.on - timedelta(days=3 if e.on.weekday() == 0 else 1)
        return [attendance(sc, e, previous, False), attendance(sc, e, e.on, False)]
    if e.kind == "dropout":
        return [
            p.DropoutReported.create(
                p.DropoutReportedV1(
                    person_id=person_id, course=e.course, dropped_on=e.on, reason=e.detail
                ),
                producer=SCHOOL,
            )
        ]
    return [
        p.ExamResultReported.create(
            p.ExamResultReportedV1(
                person_id=person_id,
                course=e.course,
                exam="dtz",
                result="B1",
                taken_on=e.on - timedelta(days=10),
            ),
            producer=SCHOOL,
        ),
        p.CompletionReported.create(
            p.CompletionReportedV1(
                person_id=person_id, course=e.course, completed_on=e.on, level_reached=CefrLevel.B1
            ),
            producer=SCHOOL,
        ),
    ]


# --- playing the week -----------------------------------------------------------------------


async def step(run: Run, sc: Scenario, day: Any, at: clock, what: str, events: list[Event]) -> None:
    run.set_clock(sc.at(day, at))
    if events:
        await run.publish(events)
    await run.settle(f"{at:%H:%M} {what}")


async def setup(run: Run, sc: Scenario, timings: dict[str, float]) -> None:
    friday = sc.setup_day
    t = time.monotonic()
    people = [PersonRegistered.create(x, producer="intake") for x in sc.people]
    run.set_clock(sc.at(friday, clock(7, 0)))
    await run.publish(people)
    await run.settle("people")
    known = {
        "placement": await run.count("placement", "people"),
        "notifications": await run.count("notifications", "recipients"),
        "courses": await run.count("courses", "known_people"),
    }
    if any(n != len(sc.people) for n in known.values()):
        run.warnings.append(f"people known after registering: {known}")
    timings["setup_people"] = time.monotonic() - t
    say(f"{run.label}: {len(people)} people registered ({timings['setup_people']:.0f} s)")

    t = time.monotonic()
    await run.publish([reported(o) for o in sc.stock])
    await run.settle("stock")
    timings["setup_stock"] = time.monotonic() - t
    say(f"{run.label}: {len(sc.stock)} openings before the week ({timings['setup_stock']:.0f} s)")

    t = time.monotonic()
    enrol = [
        p.EnrolmentReported.create(
            p.EnrolmentReportedV1(person_id=sc.people[x].person_id, course=details),
            producer=SCHOOL,
        )
        for x, details in sc.enrolments
    ]
    await run.publish(enrol)
    await run.settle("enrolments")
    events = [ev for e in sc.setup_attendance for ev in course_events(sc, e)]
    await run.publish(events)
    await run.settle("attendance before the week")
    enrolled = await run.count("courses", "enrolments")
    if enrolled != len(sc.enrolments):
        run.warnings.append(f"enrolments known: {enrolled} of {len(sc.enrolments)}")
    timings["setup_courses"] = time.monotonic() - t
    say(f"{run.label}: {len(enrol)} enrolments ({timings['setup_courses']:.0f} s)")

    t = time.monotonic()
    await step(run, sc, friday, clock(16, 0), "digest", [])
    await step(run, sc, friday, clock(16, 5), "digest", [])
    await step(run, sc, friday, clock(18, 30), "end of day", [])
    timings["setup_digest"] = time.monotonic() - t
    run.current.seconds = sum(v for k, v in timings.items() if k.startswith("setup"))
    await run.close_period(DAYS[0])


async def week(run: Run, sc: Scenario, timings: dict[str, float]) -> None:
    still_open = list(sc.stock)
    for i, day in enumerate(sc.days):
        label = DAYS[i]
        t = time.monotonic()
        d = day.date
        await step(run, sc, d, clock(7, 30), "night", [])
        still_open = [o for o in still_open if o not in day.withdraw_morning]
        morning = [withdrawn(o, "besetzt") for o in day.withdraw_morning]
        morning += [reported(o) for o in still_open]  # the agency's daily re-send: updates
        morning += [reported(o) for o in day.new]
        await step(run, sc, d, clock(8, 0), "openings", morning)
        resent = len(still_open)
        still_open += day.new
        for s, at in enumerate(SLOTS):
            if at.hour == 15:
                events = [withdrawn(o, "zurückgezogen") for o in day.withdraw_afternoon]
                await step(run, sc, d, clock(14, 0), "withdrawals", events)
                still_open = [o for o in still_open if o not in day.withdraw_afternoon]
            events = [ev for e in day.slots[s] for ev in course_events(sc, e)]
            await step(run, sc, d, at, "course events", events)
            await step(run, sc, d, clock(at.hour, 3), "+3 min", [])
        await step(run, sc, d, clock(16, 0), "digest", [])
        await step(run, sc, d, clock(16, 5), "digest", [])
        await step(run, sc, d, clock(18, 30), "end of day", [])
        timings[label] = time.monotonic() - t
        run.current.seconds = timings[label]
        period = await run.close_period(DAYS[i + 1] if i + 1 < len(DAYS) else "after")
        say(
            f"{run.label}: {label} {d}: {len(day.new)} new, {resent} re-sent, "
            f"{len(day.withdraw_morning) + len(day.withdraw_afternoon)} withdrawn; "
            f"{len(period.notifications)} inbox items, {len(period.mails)} emails "
            f"({timings[label]:.0f} s)"
        )


async def one_run(
    label: str, sc: Scenario, extra_env: dict[str, str], workdir: Path, uses_clock: bool
) -> dict[str, Any]:
    clock_file = workdir / f"clock-{label}.txt"
    run = Run(
        label,
        RABBIT_URL,
        workdir,
        extra_env
        | (
            {"LOTSE_CLOCK_FILE": str(clock_file), "LOTSE_QUIET_HOURS": "true"} if uses_clock else {}
        ),
        clock_file=clock_file,
        uses_clock=uses_clock,
        quiet_s=sc.config.quiet_s,
        settle_timeout_s=sc.config.settle_timeout_s,
    )
    run.set_clock(sc.at(sc.setup_day, clock(7, 0)))
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        t = time.monotonic()
        await run.start()
        timings["start"] = time.monotonic() - t
        say(f"{label}: stack up in {timings['start']:.0f} s (namespace {run.namespace})")
        await setup(run, sc, timings)
        await week(run, sc, timings)
        t = time.monotonic()
        check = await suggestion_check(run, sc, MIN_SCORE)
        dead = await run.dead_letters()
        timings["check"] = time.monotonic() - t
    finally:
        t = time.monotonic()
        logs = run.stack.log_dir
        await run.close()
        timings["stop"] = time.monotonic() - t
    timings["total"] = time.monotonic() - started
    counted = caseworker_days(run, sc)
    return {
        "label": label,
        "namespace": run.namespace,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "summary": counted["summary"],
        "per_period": per_day(run, sc),
        "suggestion_check": check,
        "targets": targets(counted["summary"], counted["rows"], check),
        "clock": clock_agreement(run.periods, sc),
        "dead_letters": dead,
        "warnings": run.warnings,
        "logs": str(logs),
        "settles": {
            per.label: {
                "count": len(per.settles),
                "seconds": round(sum(s["seconds"] for s in per.settles), 1),
                "slowest": max(per.settles, key=lambda s: s["seconds"], default=None),
            }
            for per in run.periods
        },
        "caseworker_days": counted["rows"],
    }


# --- the code before ------------------------------------------------------------------------


def extract_base(base: str, into: Path) -> dict[str, str]:
    """The services at ``base``, first on PYTHONPATH (before the venv's editable installs)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", base, "shared", "services"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    path = os.pathsep.join(
        [str(into / "shared")]
        + [str(into / "services" / s) for s in ("intake", "courses", "placement", "notifications")]
    )
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import lotse_notifications.domain.model as m, lotse_shared;"
            "print(hasattr(m, 'Cadence'), m.__file__, lotse_shared.__file__)",
        ],
        env={**os.environ, "PYTHONPATH": path},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if probe[0] != "False" or not all(f.startswith(str(into)) for f in probe[1:]):
        raise RuntimeError(f"the old code is not what the services import: {probe}")
    return {"PYTHONPATH": path}


def git(*args: str) -> str:
    found = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return found.stdout.strip()


# --- output ---------------------------------------------------------------------------------


def table(results: dict[str, dict[str, Any]]) -> str:
    runs = [r for r in ("before", "after") if r in results]
    rows = [
        ("emails / caseworker-day, p50", "emails_p50"),
        ("emails / caseworker-day, max", "emails_max"),
        ("inbox items / caseworker-day, p50", "inbox_p50"),
        ("inbox items / caseworker-day, max", "inbox_max"),
        ("critical+important share of inbox items", "important_share"),
        ("  same, p50 over caseworker-days", "important_share_p50"),
        ("digest emails / caseworker-day, max", "digest_emails_max"),
        ("emails to caseworkers, week", "emails_total"),
        ("inbox items of caseworkers, week", "inbox_total"),
        ("per caseworker, mean emails/day: p50", "per_caseworker_mean_emails_p50"),
        ("per caseworker, mean emails/day: max", "per_caseworker_mean_emails_max"),
        ("per caseworker, mean inbox/day: p50", "per_caseworker_mean_inbox_p50"),
        ("per caseworker, mean inbox/day: max", "per_caseworker_mean_inbox_max"),
    ]
    width = 44
    lines = [f"{'':{width}}" + "".join(f"{r:>12}" for r in runs)]
    for name, key in rows:
        lines.append(f"{name:{width}}" + "".join(f"{results[r]['summary'][key]:>12}" for r in runs))
    lines.append("")
    lines.append("per day: caseworkers' inbox items / emails (everyone's: mentors, guides, ...)")
    lines.append(f"  {'':8}" + "".join(f"{r:>7}{'':24}" for r in runs))
    for i, label in enumerate(["setup", *DAYS]):
        cells = []
        for r in runs:
            d = results[r]["per_period"][i]
            everyone = f"({d['inbox_all']} / {d['emails_all']})"
            cells.append(
                f"{d['inbox_caseworkers']:>7} / {d['emails_caseworkers']:<6}{everyone:<16}"
            )
        lines.append(f"  {label:8}" + "".join(cells))
    lines.append("")
    lines.append("no suggestion lost:")
    keys = [
        "pairs_above",
        "announced_once",
        "withdrawn_before_digest",
        "missing",
        "duplicated",
        "duplicated_forecast_then_confirmed",
        "pairs_below",
        "below_leaked",
        "announced_unknown_pair",
    ]
    for key in keys:
        lines.append(
            f"  {key:42}" + "".join(f"{results[r]['suggestion_check'][key]:>12}" for r in runs)
        )
    for r in runs:
        lines.append("")
        lines.append(f"targets ({r}):")
        for t in results[r]["targets"]:
            lines.append(f"  {'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['measured']}")
    return "\n".join(lines)


async def main() -> int:
    config = Config.from_env()
    sc = build(config)
    say(f"bench-alerts: week of {sc.monday}, {json.dumps(sc.summary())}")
    workdir = Path(tempfile.mkdtemp(prefix="lotse-alerts-"))
    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    common = {"LOTSE_COORDINATORS": json.dumps({DISTRICT: DISTRICT_COORDINATOR})}
    started = time.monotonic()
    for label in config.runs:
        try:
            if label == "before":
                env = extract_base(config.base, workdir / "base")
                # the old code's enrolment digest: not due during the run (see above)
                digest_at = datetime.now(BERLIN) - timedelta(minutes=2)
                env |= {"LOTSE_QUIET_HOURS": "false", "LOTSE_DIGEST_AT": f"{digest_at:%H:%M}"}
                results[label] = await one_run(label, sc, common | env, workdir, False)
            else:
                results[label] = await one_run(label, sc, common, workdir, True)
        except Exception as exc:
            traceback.print_exc()
            failed[label] = f"{type(exc).__name__}: {exc}"
    outcome = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "config": {**config.__dict__, "runs": list(config.runs)},
        "base_commit": config.base,
        "head_commit": git("rev-parse", "--short", "HEAD"),
        # the after run runs the working tree: what in it was not committed
        "uncommitted": git("status", "--porcelain", "--", "shared", "services").splitlines(),
        "week": str(sc.monday),
        "scenario": sc.summary(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "failed": failed,
        "runs": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(outcome, indent=1, default=str) + "\n")
    print()
    if results:
        print(table(results))
    for label, r in results.items():
        print(f"\n{label}: timings {r['timings_s']}")
        print(f"{label}: clock {r['clock']}, dead letters {r['dead_letters']}")
        for w in r["warnings"]:
            print(f"{label}: WARNING {w}")
    for label, why in failed.items():
        print(f"{label}: FAILED {why}")
    print(f"\nwritten: {RESULTS.relative_to(REPO)} ({outcome['seconds']:.0f} s in all)")
    if (
        failed
        or any(r["warnings"] for r in results.values())
        or os.environ.get("BENCH_ALERTS_KEEP")
    ):
        print(f"services' logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
