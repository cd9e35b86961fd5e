"""No name, email address or phone number in any log line (issue #6, part 9).

A person with a known name, email and phone number is registered with intake over
HTTP; intake's event reaches notifications, which raises an alert; the SMTP server
refuses the email quoting the recipient's address (as real servers do), so the
failure path logs too. Everything is logged at DEBUG (PyMongo's command log, the
broker, httpx's request lines with ``?recipient=``), captured by pytest and by a
handler of our own on the root logger. None of the person's or the caseworker's
details may appear; their ids may. Writes ``tests/artifacts/logs.json``.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path

import pytest

from lotse_devstack.mailsink import MailSink
from lotse_devstack.samples import person_body
from lotse_intake.bootstrap import create_app as create_intake
from lotse_notifications.bootstrap import create_app as create_notifications
from lotse_shared import logs
from tests.integration.test_notifications import suggestions_for
from tests.support import EventTap, eventually, publish, running

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

CASEWORKER = "roswitha.leakcheck@landkreis-kassel.example"
CASEWORKER_NAME = "Roswitha Leakcheck"
GIVEN, FAMILY = "Zofia", "Kowalczyk-Spurlos"
PERSON_EMAIL = "zofia.spurlos@example.org"
PERSON_PHONE = "+49 561 4711 0815"
# what must never be in a log line, also in the forms logs tend to print it
FORBIDDEN = (
    CASEWORKER,
    CASEWORKER.replace("@", "%40"),
    "roswitha.leakcheck",
    "Leakcheck",
    FAMILY,
    "Spurlos",
    PERSON_EMAIL,
    "zofia.spurlos",
    PERSON_PHONE,
    "4711 0815",
)
# the test's own SMTP server stands in for an external one (Mailpit): its logs are not ours
NOT_OURS = ("mail.log",)


@pytest.mark.usefixtures("one_alert_per_event")
async def test_a_whole_flow_logs_ids_but_no_names_or_addresses(
    service_env: dict[str, str],
    smtp: MailSink,
    rabbit_url: str,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the failed email must be tried now, whatever the hour this runs at
    monkeypatch.setenv("LOTSE_QUIET_HOURS", "false")
    caplog.set_level(logging.DEBUG)  # the root logger: every library's DEBUG lines too
    written = io.StringIO()
    ours = logging.StreamHandler(written)
    ours.setLevel(logging.DEBUG)
    ours.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    ours.addFilter(lambda record: not record.name.startswith(NOT_OURS))
    # the same records as JSON lines (LOTSE_LOG_FORMAT=json): scrubbed the same way
    as_json = io.StringIO()
    ours_json = logging.StreamHandler(as_json)
    ours_json.setLevel(logging.DEBUG)
    ours_json.setFormatter(logs.json_formatter("lotse-test"))
    ours_json.addFilter(lambda record: not record.name.startswith(NOT_OURS))
    logging.getLogger().addHandler(ours)
    logging.getLogger().addHandler(ours_json)
    smtp.reply_next(f"550 5.1.1 <{CASEWORKER}>: Recipient address rejected")
    try:
        intake, notifications = create_intake(), create_notifications()
        async with (
            EventTap(rabbit_url, namespace, "notifications.#") as tap,
            running(intake, user=CASEWORKER) as people,
            running(notifications, user=CASEWORKER) as inbox,
        ):
            body = person_body(
                given_name=GIVEN,
                family_name=FAMILY,
                contact={"phone": PERSON_PHONE, "email": PERSON_EMAIL},
                contacts=[{"role": "caseworker", "name": CASEWORKER_NAME, "email": CASEWORKER}],
            )
            r = await people.post("/people", json=body)
            assert r.status_code == 201, r.text
            person_id = uuid.UUID(r.json()["person_id"])
            assert (await people.get("/people", params={"contact_email": CASEWORKER})).json()[
                "items"
            ]

            suggestions = suggestions_for(person_id)
            await publish(rabbit_url, namespace, suggestions)
            [failed] = await tap.wait_for("notifications.notification.failed.v1")

            async def alerted() -> bool:
                r = await inbox.get("/notifications", params={"recipient": CASEWORKER})
                return r.status_code == 200 and bool(r.json())

            await eventually(alerted, what="the alert in the caseworker's inbox")
            [note] = (await inbox.get("/notifications", params={"recipient": CASEWORKER})).json()
    finally:
        logging.getLogger().removeHandler(ours)
        logging.getLogger().removeHandler(ours_json)

    # the details did flow through the system: the alert names the person ...
    assert f"{GIVEN} {FAMILY}" in note["subject"]
    assert note["email"]["status"] == "failed"
    # ... but the failure event carries the server's answer without the address
    assert failed["payload"]["error"].startswith("550 5.1.1")
    assert CASEWORKER not in failed["payload"]["error"]
    assert "[redacted]" in failed["payload"]["error"]

    records = [r for r in caplog.records if not r.name.startswith(NOT_OURS)]
    formatter = logging.Formatter("%(name)s %(message)s")
    captured = "\n".join(
        [written.getvalue(), as_json.getvalue(), *(formatter.format(r) for r in records)]
        + [repr({k: v for k, v in vars(r).items() if k != "exc_info"}) for r in records]
    )
    leaks = sorted({s for s in FORBIDDEN if s in captured})
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "logs.json").write_text(
        json.dumps({"log_records": len(records), "log_leaks": len(leaks)})
    )
    assert len(records) > 100, "DEBUG logging was on: PyMongo, the broker, httpx all log"
    assert leaks == []
    # identifiers stay: the failure is logged under the notification's id, the address masked
    failure_lines = [
        line for line in written.getvalue().splitlines() if note["notification_id"] in line
    ]
    assert any("550 5.1.1 <[redacted]>" in line for line in failure_lines), failure_lines
    assert "recipient=[redacted]" in captured  # httpx's request line, query string masked
    # every JSON line parses; those written while the event was handled name its flow
    lines = [json.loads(line) for line in as_json.getvalue().splitlines()]
    assert len(lines) > 100
    assert {"service", "level", "logger", "message", "timestamp"} <= set(lines[0])
    flow = [x for x in lines if x.get("correlation_id") == str(suggestions.correlation_id)]
    assert flow, "no log line named the flow's correlation id"
    assert {x["event_id"] for x in flow} >= {str(suggestions.event_id)}
