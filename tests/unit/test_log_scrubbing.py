"""The log scrubbing every service installs (lotse_shared.logs)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from lotse_shared import logs
from lotse_shared.logs import REDACTED, ScrubbingFilter, scrub_record, scrub_text

PERSON_ID = "0b8e4c1e-6f5b-4c59-9f0e-5d1f3a2b7c44"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail to petra@kassel.example failed", "mail to [redacted] failed"),
        ("550 5.1.1 <a.b+c@x-y.example.org>: unknown", "550 5.1.1 <[redacted]>: unknown"),
        (
            '"GET /inbox?recipient=petra.schmidt%40landkreis-kassel.example&unread_only=1"',
            '"GET /inbox?recipient=[redacted]&unread_only=1"',
        ),
        ("call +49 561 1003-0 now", "call [redacted] now"),
        ("mobile 0151/12345678, office (0561) 987654", "mobile [redacted], office [redacted]"),
        ('{"display_name": "Amal Haddad", "n": 1}', '{"display_name": "[redacted]", "n": 1}'),
        ("{'birth_year': 1997, 'ok': True}", "{'birth_year': [redacted], 'ok': True}"),
        ("given_name=Amal family_name=Haddad", "given_name=[redacted] family_name=[redacted]"),
        ("amqp://lotse:s3cr3t@rabbit:5671/", "amqp://lotse:[redacted]@rabbit:5671/"),
        (
            json.dumps({"command": json.dumps({"insert": "people", "x": "Amal"}), "ms": 2}),
            '{"command": "[redacted]", "ms": 2}',
        ),
    ],
)
def test_personal_text_is_masked(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"person {PERSON_ID} suggested",
        "event 00000000-0000-0000-0000-000000000001 dead-lettered",
        "2026-11-25T07:05:11+01:00 took 0.6 ms on 127.0.0.1:54321, 1234567 rows",
        "http://127.0.0.1:8004/inbox retry in 600.0s (attempt 3)",
        "routing key placement.suggestions.ready.v1",
    ],
)
def test_identifiers_and_figures_stay(text: str) -> None:
    assert scrub_text(text) == text


def test_scrubbing_twice_changes_nothing_more() -> None:
    once = scrub_text("name=Amal email: a@b.example 'phone': '+49 561 4711 99'")
    assert scrub_text(once) == once
    assert "Amal" not in once
    assert "4711" not in once


def record(msg: object, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("lotse.test", logging.INFO, __file__, 1, msg, args or None, None)
    rec.__dict__.update(extra)
    return rec


def test_arguments_are_masked_and_keep_their_types() -> None:
    rec = scrub_record(record("%s sent to %s (attempt %d)", PERSON_ID, "p@x.example", 3))
    assert rec.getMessage() == f"{PERSON_ID} sent to [redacted] (attempt 3)"
    assert isinstance(rec.args, tuple)
    assert rec.args[2] == 3


def test_mapping_arguments_lose_their_personal_fields() -> None:
    rec = scrub_record(
        record(
            "person %(person_id)s named %(display_name)s",
            {"person_id": PERSON_ID, "display_name": "Amal Haddad"},
        )
    )
    assert rec.getMessage() == f"person {PERSON_ID} named {REDACTED}"


def test_a_template_that_names_the_field_is_masked_whole() -> None:
    rec = scrub_record(record("registered name=%r", "Amal Haddad"))
    assert rec.getMessage() == "registered name='[redacted]'"
    assert rec.args == ()
    # unquoted, a value ends at the first blank: names go into templates quoted (or not at all)
    rec = scrub_record(record("registered name=%s", "Amal"))
    assert rec.getMessage() == "registered name=[redacted]"


def test_dicts_and_objects_inside_arguments() -> None:
    contact = {"role": "caseworker", "name": "Petra Schmidt", "email": "p@x.example"}
    error = ValueError("550 <p@x.example> unknown")
    rec = scrub_record(record("contacts %s failed: %s", [contact], error))
    message = rec.getMessage()
    assert "Petra" not in message
    assert "p@x.example" not in message
    assert "'role': 'caseworker'" in message
    assert "550 <[redacted]> unknown" in message


def test_extra_fields_are_masked_by_the_handler_filter() -> None:
    rec = record("sent", email="p@x.example", person_id=PERSON_ID, note="call 0561 1234567")
    assert ScrubbingFilter().filter(rec) is True  # never drops a record
    assert rec.__dict__["email"] == REDACTED
    assert rec.__dict__["person_id"] == PERSON_ID
    assert rec.__dict__["note"] == "call [redacted]"


def test_tracebacks_are_masked() -> None:
    try:
        raise RuntimeError("cannot reach petra@kassel.example")
    except RuntimeError:
        rec = logging.LogRecord(
            "lotse.test", logging.ERROR, __file__, 1, "failed", None, sys_exc_info()
        )
    scrub_record(rec)
    assert rec.exc_text is not None
    assert "cannot reach [redacted]" in rec.exc_text
    assert "petra@" not in logging.Formatter().format(rec)
    as_json = json.loads(logs.json_formatter("lotse-test").format(rec))
    assert "cannot reach [redacted]" in as_json["exception"]
    assert "petra@" not in json.dumps(as_json)


def test_json_lines_name_the_service_and_the_event_being_handled() -> None:
    rec = record("suggested %s openings to %s", 3, "p@x.example")
    formatter = logs.json_formatter("placement")
    with logs.handling("corr-1", "event-1"):
        line = json.loads(formatter.format(scrub_record(rec)))
    assert line["service"] == "placement"
    assert (line["level"], line["logger"]) == ("info", "lotse.test")
    assert line["message"] == "suggested 3 openings to [redacted]"
    assert (line["correlation_id"], line["event_id"]) == ("corr-1", "event-1")
    outside = json.loads(formatter.format(scrub_record(record("idle"))))
    assert "correlation_id" not in outside


def sys_exc_info() -> logging._SysExcInfoType:
    import sys

    return sys.exc_info()


FORMATS = {"text": logging.Formatter, "json": lambda: logs.json_formatter("lotse-test")}


@pytest.fixture(params=sorted(FORMATS))
def installed(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """A handler in each of the formats a service writes (LOTSE_LOG_FORMAT)."""
    factory = logging.getLogRecordFactory()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(FORMATS[request.param]())
    root = logging.getLogger()
    root.addHandler(handler)
    logs.install()
    logs.install()  # twice: still one filter, one factory
    yield out
    root.removeHandler(handler)
    logging.setLogRecordFactory(factory)


def test_install_scrubs_every_logger_and_handler(
    installed: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    assert all(sum(isinstance(f, ScrubbingFilter) for f in h.filters) <= 1 for h in root.handlers)
    caplog.set_level(logging.INFO)
    some_library = logging.getLogger(f"library.{uuid.uuid4().hex}")
    some_library.warning("user %s: %s", "k@kassel.example", {"phone": "+49 561 4711"})
    some_library.info("plain", extra={"recipient": "k@kassel.example"})
    assert "k@kassel.example" not in installed.getvalue()
    assert "4711" not in installed.getvalue()
    assert caplog.records[0].getMessage() == "user [redacted]: {'phone': '[redacted]'}"
    assert caplog.records[1].__dict__["recipient"] == REDACTED


def test_uvicorns_access_record_keeps_its_five_arguments() -> None:
    # uvicorn's AccessFormatter unpacks record.args: they must stay a 5-tuple
    rec = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:51234", "GET", "/inbox?recipient=petra%40kassel.example", "1.1", 200),
        None,
    )
    scrub_record(rec)
    assert isinstance(rec.args, tuple)
    assert len(rec.args) == 5
    assert rec.getMessage() == '127.0.0.1:51234 - "GET /inbox?recipient=[redacted] HTTP/1.1" 200'
