"""What ``make bench-alerts`` counts: per caseworker and working day, inbox items, emails
and the critical/important share; the issue's targets; and the "no suggestion lost"
check against placement's suggestion sets.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bench.alerts_run import Period, Run, berlin_date
from bench.alerts_scenario import DAYS, Scenario

Document = dict[str, Any]
IMPORTANT = 3  # priority: 1 low, 2 normal, 3 important, 4 critical
IMMEDIATE_KINDS = {"course_completed", "course_dropped", "attendance_at_risk"}
COURSE_KINDS = {
    "completion": "course_completed",
    "dropout": "course_dropped",
    "risk": "attendance_at_risk",
}


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p50 of [1, 2, 3, 4] is 2)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(len(ordered) * q)
    return float(ordered[max(0, min(len(ordered), rank) - 1)])


def email_kind(mail_hint: str, kinds: dict[str, str]) -> str:
    if mail_hint.startswith("digest-"):
        return "digest"  # the old code's daily digest of low-priority items
    return kinds.get(mail_hint, "unknown")


def caseworker_days(run: Run, sc: Scenario) -> dict[str, Any]:
    """Per caseworker and working day (the five periods after the setup)."""
    caseworkers = [c.email.lower() for c in sc.caseworkers]
    kinds = {str(n["_id"]): str(n["kind"]) for p in run.periods for n in p.notifications}
    own_events: Counter[tuple[str, str]] = Counter()  # (day, caseworker) -> course alerts due
    for label, day in zip(DAYS, sc.days, strict=True):
        for slot in day.slots:
            for e in slot:
                if e.kind in COURSE_KINDS:
                    own_events[(label, sc.caseworker_of(e.person).email.lower())] += 1
    week = [p for p in run.periods if p.label in DAYS]
    rows = []
    for period in week:
        for cw in caseworkers:
            mine = [
                n for n in period.notifications if str(n.get("recipient_email", "")).lower() == cw
            ]
            mails = [m for m in period.mails if cw in m.rcpts]
            by_kind = Counter(email_kind(m.hint, kinds) for m in mails)
            important = sum(1 for n in mine if int(n.get("priority") or 0) >= IMPORTANT)
            rows.append(
                {
                    "day": period.label,
                    "caseworker": cw,
                    "inbox": len(mine),
                    "important": important,
                    "emails": len(mails),
                    "digest_emails": by_kind.get("digest", 0),
                    "emails_by_kind": dict(by_kind),
                    "inbox_by_kind": dict(Counter(str(n.get("kind")) for n in mine)),
                    "own_course_alerts": own_events[(period.label, cw)],
                }
            )
    return {"rows": rows, "summary": summarise(rows)}


def summarise(rows: list[Document]) -> dict[str, Any]:
    emails = [float(r["emails"]) for r in rows]
    inbox = [float(r["inbox"]) for r in rows]
    shares = [r["important"] / r["inbox"] for r in rows if r["inbox"]]
    total_inbox = sum(r["inbox"] for r in rows)
    per_cw: dict[str, list[Document]] = {}
    for r in rows:
        per_cw.setdefault(r["caseworker"], []).append(r)
    mean_emails = [statistics.fmean(x["emails"] for x in v) for v in per_cw.values()]
    mean_inbox = [statistics.fmean(x["inbox"] for x in v) for v in per_cw.values()]
    return {
        "caseworker_days": len(rows),
        "emails_p50": pct(emails, 0.5),
        "emails_max": max(emails, default=0.0),
        "inbox_p50": pct(inbox, 0.5),
        "inbox_max": max(inbox, default=0.0),
        "important_share": round(sum(r["important"] for r in rows) / total_inbox, 3)
        if total_inbox
        else 0.0,
        "important_share_p50": round(pct(shares, 0.5), 3),
        "digest_emails_max": max((r["digest_emails"] for r in rows), default=0),
        "emails_total": int(sum(emails)),
        "inbox_total": int(total_inbox),
        "per_caseworker_mean_emails_p50": round(pct(mean_emails, 0.5), 2),
        "per_caseworker_mean_emails_max": round(max(mean_emails, default=0.0), 2),
        "per_caseworker_mean_inbox_p50": round(pct(mean_inbox, 0.5), 2),
        "per_caseworker_mean_inbox_max": round(max(mean_inbox, default=0.0), 2),
    }


def per_day(run: Run, sc: Scenario) -> list[Document]:
    """Totals per period, caseworkers and everyone (mentors, guides, coordinators)."""
    caseworkers = {c.email.lower() for c in sc.caseworkers}
    out = []
    for p in run.periods:
        cw_notes = [
            n for n in p.notifications if str(n.get("recipient_email", "")).lower() in caseworkers
        ]
        out.append(
            {
                "period": p.label,
                "seconds": round(p.seconds, 1),
                "inbox_caseworkers": len(cw_notes),
                "inbox_all": len(p.notifications),
                "emails_caseworkers": sum(1 for m in p.mails if set(m.rcpts) & caseworkers),
                "emails_all": len(p.mails),
                "inbox_by_role": dict(
                    Counter(str(n.get("recipient_role")) for n in p.notifications)
                ),
                "inbox_by_kind": dict(Counter(str(n.get("kind")) for n in cw_notes)),
                "inbox_by_kind_all": dict(Counter(str(n.get("kind")) for n in p.notifications)),
            }
        )
    return out


def clock_agreement(periods: list[Period], sc: Scenario) -> Document:
    """Whether inbox items' ``created_at`` (the service's "now") falls on the simulated
    day they were counted for: it does when the service reads the clock file."""
    dates = {label: day.date for label, day in zip(DAYS, sc.days, strict=True)}
    match = mismatch = 0
    for p in periods:
        for n in p.notifications:
            if p.label in dates and n.get("created_at") is not None:
                if berlin_date(n["created_at"]) == dates[p.label]:
                    match += 1
                else:
                    mismatch += 1
    return {"created_at_on_counted_day": match, "created_at_elsewhere": mismatch}


# --- no suggestion lost ---------------------------------------------------------------------


def _pairs_in(facts: Any, person: str | None) -> Iterator[tuple[str | None, str]]:
    """(person, opening) pairs anywhere in a notification's facts: a suggestion list,
    or a digest's groups and entries (the person taken from the nearest level naming one)."""
    if isinstance(facts, dict):
        here = str(facts["person_id"]) if facts.get("person_id") else person
        if facts.get("opening_id"):
            yield here, str(facts["opening_id"])
        for value in facts.values():
            if isinstance(value, dict | list):
                yield from _pairs_in(value, here)
    elif isinstance(facts, list):
        for item in facts:
            yield from _pairs_in(item, person)


async def suggestion_check(run: Run, sc: Scenario, min_score: float) -> Document:
    caseworker_of = {
        str(x.person_id): sc.caseworker_of(i).email.lower() for i, x in enumerate(sc.people)
    }
    caseworkers = set(caseworker_of.values())
    pairs: dict[tuple[str, str], Document] = {}
    sets = 0
    async for s in run.db("placement")["suggestion_sets"].find(
        {}, {"person_id": 1, "suggestions": 1, "trigger": 1}
    ):
        sets += 1
        for sug in s.get("suggestions", []):
            key = (str(s["person_id"]), str(sug["opening_id"]))
            info = pairs.setdefault(key, {"max": float("-inf"), "sets": 0, "forecast": False})
            info["max"] = max(info["max"], float(sug.get("score", 0)))
            info["sets"] += 1
            info["forecast"] = info["forecast"] or bool(sug.get("forecast"))
    announced: Counter[tuple[str, str]] = Counter()
    unattributed = 0
    async for n in run.db("notifications")["notifications"].find(
        {"recipient_email": {"$in": sorted(caseworkers)}},
        {"recipient_email": 1, "person_id": 1, "facts": 1, "kind": 1},
    ):
        recipient = str(n["recipient_email"]).lower()
        person = str(n["person_id"]) if n.get("person_id") else None
        found = set(_pairs_in(n.get("facts") or {}, person))
        for who, opening in found:
            if who is None:
                unattributed += 1
            elif caseworker_of.get(who) == recipient:
                announced[(who, opening)] += 1
    withdrawn: set[tuple[str, str]] = set()
    entry_status: Counter[str] = Counter()
    async for e in run.db("notifications")["suggestion_entries"].find(
        {}, {"recipient_email": 1, "person_id": 1, "opening_id": 1, "status": 1}
    ):
        person = str(e.get("person_id"))
        if caseworker_of.get(person) != str(e.get("recipient_email", "")).lower():
            continue
        entry_status[str(e.get("status"))] += 1
        if e.get("status") == "withdrawn":
            withdrawn.add((person, str(e.get("opening_id"))))
    above = {k for k, v in pairs.items() if v["max"] >= min_score}
    below = set(pairs) - above
    missing = [k for k in above if announced[k] == 0 and k not in withdrawn]
    duplicated = [k for k, c in announced.items() if c > 1]
    return {
        "min_score": min_score,
        "suggestion_sets": sets,
        "pairs": len(pairs),
        "pairs_above": len(above),
        "pairs_below": len(below),
        "announced_once": sum(1 for k in above if announced[k] == 1),
        "withdrawn_before_digest": sum(1 for k in above if announced[k] == 0 and k in withdrawn),
        "missing": len(missing),
        "duplicated": len(duplicated),
        "duplicated_forecast_then_confirmed": sum(
            1 for k in duplicated if pairs.get(k, {}).get("forecast")
        ),
        "below_leaked": sum(1 for k in below if announced[k] > 0),
        "announced_unknown_pair": sum(1 for k in announced if k not in pairs),
        "entries_without_person": unattributed,
        "pairs_told_twice_by_placement": sum(1 for v in pairs.values() if v["sets"] > 1),
        "entry_status": dict(entry_status),
        "examples": {
            "missing": [list(k) for k in missing[:3]],
            "duplicated": [list(k) for k in duplicated[:3]],
        },
    }


def targets(summary: Document, rows: list[Document], check: Document | None) -> list[Document]:
    """The issue's targets, each PASS or FAIL with what was measured."""
    over_digest = sum(1 for r in rows if r["digest_emails"] > 1)
    wrong_kind = sum(
        1 for r in rows if any(k not in IMMEDIATE_KINDS | {"digest"} for k in r["emails_by_kind"])
    )
    too_many = sum(1 for r in rows if r["emails"] - r["digest_emails"] > r["own_course_alerts"])
    found = [
        ("emails per caseworker-day p50 <= 3", summary["emails_p50"] <= 3, summary["emails_p50"]),
        ("emails per caseworker-day max <= 10", summary["emails_max"] <= 10, summary["emails_max"]),
        (
            "inbox items per caseworker-day p50 <= 10",
            summary["inbox_p50"] <= 10,
            summary["inbox_p50"],
        ),
        ("at most one digest email per caseworker-day", over_digest == 0, f"{over_digest} over"),
        (
            "other emails only for own completions, drop-outs, risks",
            wrong_kind == 0 and too_many == 0,
            f"{wrong_kind} caseworker-days with other kinds, {too_many} with more than own events",
        ),
    ]
    if check is not None:
        found.append(
            (
                "no suggestion lost (missing, duplicated, below-threshold leaked = 0)",
                check["missing"] == 0 and check["duplicated"] == 0 and check["below_leaked"] == 0,
                f"missing {check['missing']}, duplicated {check['duplicated']}, "
                f"leaked {check['below_leaked']}",
            )
        )
    return [{"target": t, "pass": bool(ok), "measured": m} for t, ok, m in found]
