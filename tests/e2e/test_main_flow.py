"""The four services as processes: person registered -> enrolled -> course completed ->
suggestions -> the caseworker's inbox holds the alert and the SMTP server got the email.

The flow is the one ``make demo`` runs (lotse_devstack.demo), so the demo is tested too;
the assertions here check its outcome through each service's own API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lotse_devstack.demo import PEOPLE, run_demo
from lotse_devstack.ports import free_port
from lotse_devstack.stack import SERVICES, LocalStack, StackConfig
from tests.support import eventually

pytestmark = pytest.mark.e2e
CASEWORKER = PEOPLE[0]["contacts"][0]["email"]


@pytest.fixture
def stack(rabbit_url: str, mongo_url: str, namespace: str, tmp_path: Path) -> Iterator[LocalStack]:
    config = StackConfig(
        namespace=namespace,
        ports={s: free_port() for s in SERVICES},
        rabbit_url=rabbit_url,
        mongo_url=mongo_url,
        log_dir=tmp_path / "logs",
        dev_keys=tmp_path / "dev-keys",
        # every process writes its spans to a file of its own there (lotse_shared.tracing)
        extra_env={"LOTSE_TRACE_DIR": str(tmp_path / "traces")},
    )
    with LocalStack(config) as running:
        yield running


async def test_course_completion_alerts_the_caseworker(stack: LocalStack) -> None:
    assert await run_demo(stack) == 0

    petra = {"Authorization": f"Bearer {stack.token('caseworker', CASEWORKER)}"}
    async with httpx.AsyncClient(timeout=10, headers=petra) as http:
        people = (
            await http.get(f"{stack.url('intake')}/people", params={"contact_email": CASEWORKER})
        ).json()["items"]
        amal = next(p["person_id"] for p in people if p["given_name"] == "Amal")

        enrolments = (
            await http.get(f"{stack.url('courses')}/enrolments", params={"person_id": amal})
        ).json()
        assert [(e["status"], e["level_reached"]) for e in enrolments] == [("completed", "B1")]

        sets = (await http.get(f"{stack.url('placement')}/people/{amal}/suggestions")).json()
        assert sets[0]["trigger"] == "course_completed"
        titles = [s["title"] for s in sets[0]["suggestions"]]
        assert "Ausbildung Fachkraft für Lagerlogistik" in titles

        inbox = (await http.get(f"{stack.url('notifications')}/notifications")).json()
        alert = next(
            n
            for n in inbox
            if n["kind"] == "course_completed"
            and "Amal Haddad" in n["subject"]
            and "Lagerlogistik" in n["body"]
        )
        assert "Warum: B1 erreicht, Stelle verlangt B1" in alert["body"]
        assert "Interesse an Logistik" in alert["body"]
        # Yonas has no work permit yet: nobody is told about suggestions for him
        assert not [n for n in inbox if "Yonas" in n["subject"]]

        # the same caseworker's name in another district: Amal does not exist there
        fulda = stack.token("caseworker", CASEWORKER, district="fulda")
        r = await http.get(
            f"{stack.url('intake')}/people/{amal}", headers={"Authorization": f"Bearer {fulda}"}
        )
        assert r.status_code == 404
    async with httpx.AsyncClient(timeout=10) as anonymous:
        r = await anonymous.get(f"{stack.url('intake')}/people/{amal}")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")

    sink = stack.mail_sink
    assert sink is not None

    async def mailed() -> bool:
        return any(
            m.subject == alert["subject"] and CASEWORKER in m.rcpt_tos and "Lagerlogistik" in m.body
            for m in sink.mails
        )

    await eventually(mailed, timeout_s=30, what="the email at the SMTP server")
    await the_metrics_moved_and_name_nobody(stack)
    await one_trace_follows_the_completion(stack.config.extra_env["LOTSE_TRACE_DIR"])


async def one_trace_follows_the_completion(folder: str) -> None:
    """The school's completion report starts a trace; courses, placement and
    notifications each continue it (through their outboxes), in that order."""

    def spans() -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for path in Path(folder).glob("*.jsonl")
            for line in path.read_text(encoding="utf-8").splitlines()
        ]

    def service(span: dict[str, Any]) -> str:
        return str(span["resource"]["attributes"]["service.name"])

    def the_flow() -> list[dict[str, Any]]:
        recorded = spans()
        started = [
            s
            for s in recorded
            if service(s) == "courses"
            and s["kind"] == "SpanKind.CONSUMER"
            and "completion_reported" in s["name"]
        ]
        if not started:
            return []
        trace_id = started[0]["context"]["trace_id"]
        return [s for s in recorded if s["context"]["trace_id"] == trace_id]

    def consumed(flow: list[dict[str, Any]], name: str, what: str) -> list[str]:
        """When ``name`` started handling ``what`` in this trace."""
        return sorted(
            s["start_time"]
            for s in flow
            if service(s) == name and s["kind"] == "SpanKind.CONSUMER" and what in s["name"]
        )

    async def complete() -> bool:  # spans are written in batches, every few seconds
        flow = the_flow()
        return all(
            consumed(flow, name, what)
            for name, what in [
                ("courses", "completion_reported"),
                ("placement", "course.completed"),
                ("notifications", "suggestions.ready"),
            ]
        )

    await eventually(complete, timeout_s=30, what="one trace across the three services")
    flow = the_flow()
    # the chain, in order: the school's report, the completion, the suggestions
    steps = [
        consumed(flow, "courses", "completion_reported")[0],
        consumed(flow, "placement", "course.completed")[0],
        consumed(flow, "notifications", "suggestions.ready")[0],
    ]
    assert steps == sorted(steps), steps
    root = [s for s in flow if s["parent_id"] is None]
    assert len(root) == 1, [s["name"] for s in root]  # one trace, one beginning
    assert service(root[0]) == "courses"


async def the_metrics_moved_and_name_nobody(stack: LocalStack) -> None:
    """Every service's /metrics after the flow: its counters moved, and no label or
    value holds a name, an address or an id."""
    found: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for service in SERVICES:
            r = await http.get(f"{stack.url(service)}/metrics")
            assert r.status_code == 200, service
            assert r.headers["content-type"].startswith("text/plain"), service
            personal = [
                *(p["given_name"] for p in PEOPLE),
                *(p["family_name"] for p in PEOPLE),
                *(c["email"] for p in PEOPLE for c in p["contacts"]),
                "@",
            ]
            assert not [x for x in personal if x in r.text], service
            assert not UUID.search(r.text), service
            found[service] = totals(r.text)

    def moved(service: str, name: str) -> float:
        return found[service].get(name, 0.0)

    for service in ("courses", "placement", "notifications"):
        assert moved(service, "faststream_received_processed_messages_total") > 0, service
    for service in SERVICES:
        assert moved(service, "lotse_http_requests_total") > 0, service
    assert moved("placement", "lotse_suggestions_computed_total") > 0
    assert moved("placement", "lotse_matching_duration_seconds_count") > 0
    assert moved("notifications", "lotse_deliveries_total") > 0


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def totals(exposition: str) -> dict[str, float]:
    """Each sample's name with the sum of its values over all label sets."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def test_services_stop_cleanly_on_sigterm(stack: LocalStack) -> None:
    for service in SERVICES:
        proc = stack.procs[service]
        stack.stop_service(service)
        # uvicorn re-raises the signal after a graceful shutdown, hence -15 rather than 0
        assert proc.returncode in (0, -15), f"{service} exited with {proc.returncode}"
        log = (stack.log_dir / f"{service}.log").read_text()
        assert f"{service} stopped" in log, log[-2000:]
