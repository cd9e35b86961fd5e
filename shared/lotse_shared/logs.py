"""Logging without personal data.

Log lines name records by their ids (UUIDs stay: an identifier is not a name).
What a log line must not carry, whoever wrote it (our code, FastStream, uvicorn,
PyMongo, a traceback), is masked here before any handler sees it:

- the values of personal or secret fields, in mappings passed as arguments or as
  ``extra=`` and in ``key=value`` / ``"key": value`` text (JSON, dict reprs, query
  strings): ``display_name``, ``email``, ``recipient``, ``phone``, ``address``,
  ``birth_year``, ``residence_status``, ``password``, ``token`` ...;
- email addresses (also URL-encoded, ``petra%40kassel.example``) and phone numbers
  (``+49 …``, ``0561 …``) anywhere in the text;
- the password of a URL (``amqp://lotse:secret@host`` → ``amqp://lotse:[redacted]@host``).

Names in free text cannot be recognised; code therefore never formats a name or an
address into a message (a test drives a whole flow with a known name and email and
finds neither in any log output).

:func:`install` puts the scrubbing in two places, once per process: a log-record
factory (every record, whichever handler takes it: pytest's capture too) and a
filter on the root handlers (fields added by ``extra=`` after the record was made).

:func:`configure` writes text lines for people (the default) or, with
``LOTSE_LOG_FORMAT=json``, one JSON object per line for a log pipeline (structlog's
formatter over the standard library's records): service, level, logger, message, time,
the ``correlation_id`` and ``event_id`` of the event being handled (:func:`handling`)
and the ``trace_id`` and ``span_id`` when tracing is on, scrubbed like the text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Final, Literal

import structlog

from .tracing import ids_of_current_span

REDACTED: Final = "[redacted]"

#: Field names whose values never appear in a log line.
PERSONAL_FIELDS: Final = frozenset(
    {
        "name",
        "display_name",
        "first_name",
        "last_name",
        "given_name",
        "family_name",
        "full_name",
        "to_name",
        "email",
        "emails",
        "email_address",
        "to_address",
        "recipient",
        "recipient_email",
        "contact_emails",
        "user",
        "username",
        "phone",
        "phone_number",
        "mobile",
        "address",
        "street",
        "birth_date",
        "date_of_birth",
        "birth_year",
        "residence_status",
        "nationality",
        "password",
        "passwd",
        "secret",
        "token",
        "access_token",
        "authorization",
        "api_key",
    }
)

#: Fields whose values are whole stored documents (PyMongo's command log at DEBUG):
#: they hold free text such as an alert's subject with a person's name in it.
DOCUMENT_FIELDS: Final = frozenset({"command", "reply", "document", "documents"})

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_KEYS = "|".join(sorted(PERSONAL_FIELDS | DOCUMENT_FIELDS, key=len, reverse=True))
_REDACTED_KEYS = PERSONAL_FIELDS | DOCUMENT_FIELDS
_SCRUB = re.compile(
    rf"(?P<uuid>(?<![0-9a-fA-F]){_UUID}(?![0-9a-fA-F]))"
    # scheme://user:password@host
    rf"|(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)(?P<urlpw>[^\s@/]+)(?=@)"
    # "key": "value" | 'key': 'value' | key=value (JSON, reprs, query strings, kwargs)
    # (keys and strings may be quoted with escaped quotes: JSON inside JSON)
    rf"|(?P<kv>(?<![\w-])(?P<q>\\?[\"']|)(?:{_KEYS})(?P=q)\s*(?::|=)\s*)"
    r"(?P<kvval>\[redacted\]|\\\"(?:(?!\\\").)*\\\"|\"(?:[^\"\\]|\\.)*\""
    r"|'(?:[^'\\]|\\.)*'|[^\s,;&}\])\"'\\]+)"
    # email addresses, plain or URL-encoded
    r"|(?P<email>[\w.+%-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+)"
    # phone numbers: +49 …, 0049 …, 0561 …, (0561) …
    r"|(?P<phone>(?<![\w.:/+-])(?:\+|\(?0)\d[\d ()/-]{5,}\d(?![\w-]))"
)


def _replace(match: re.Match[str]) -> str:
    if match.group("uuid"):
        return match.group(0)
    if match.group("url"):
        return match.group("url") + REDACTED
    if match.group("kv"):
        value = match.group("kvval")
        quote = '\\"' if value.startswith('\\"') else value[0] if value[0] in "\"'" else ""
        return f"{match.group('kv')}{quote}{REDACTED}{quote}"
    if match.group("email"):
        return REDACTED
    phone = match.group("phone")
    if sum(c.isdigit() for c in phone) >= 7:
        return REDACTED
    return phone


def scrub_text(text: str) -> str:
    """Mask emails, phone numbers, URL passwords and personal ``key=value`` pairs."""
    if not text:
        return text
    return _SCRUB.sub(_replace, text)


def scrub_value(value: Any) -> Any:
    """A copy of ``value`` with personal mapping entries and text masked.

    Numbers, booleans, None and objects whose text holds nothing personal come back
    as they are (``%d`` and ``%r`` keep working); anything else as masked text.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if str(k).lower() in _REDACTED_KEYS else scrub_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(scrub_value(v) for v in value)
    text = str(value)
    scrubbed = scrub_text(text)
    return value if scrubbed == text else scrubbed


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_FORMATTER = logging.Formatter()


def _scrub_message(record: logging.LogRecord) -> None:
    args = record.args
    if isinstance(args, Mapping):
        record.args = scrub_value(args)
    elif isinstance(args, tuple) and args:
        record.args = tuple(scrub_value(a) for a in args)
    if record.args:
        # a template like "name=%s" joined with its argument may still say more than
        # each part: then only the masked text is kept
        message = record.getMessage()
        scrubbed = scrub_text(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
    else:
        record.msg = scrub_value(record.msg)
    if record.exc_info and not record.exc_text:
        record.exc_text = scrub_text(_FORMATTER.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = scrub_text(record.stack_info)


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask the record in place: message, arguments, exception text, extra fields."""
    if not getattr(record, "_lotse_scrubbed", False):
        try:
            _scrub_message(record)
        except Exception:  # a malformed record is logging's to report, not ours to lose
            return record
        record._lotse_scrubbed = True
    for key, value in list(record.__dict__.items()):
        if key in _STANDARD or key.startswith("_"):
            continue
        record.__dict__[key] = REDACTED if key.lower() in _REDACTED_KEYS else scrub_value(value)
    return record


class ScrubbingFilter(logging.Filter):
    """A handler filter: masks every record the handler writes (never drops one).

    The record factory already masked message and arguments; fields given with
    ``extra=`` are added after it ran and are masked here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


class _ScrubbingFactory:
    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(self.inner(*args, **kwargs))


def install() -> None:
    """Scrub every log record of this process from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _ScrubbingFactory):
        logging.setLogRecordFactory(_ScrubbingFactory(current))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(ScrubbingFilter())


LogFormat = Literal["text", "json"]


def configure(level: str, service_name: str, log_format: LogFormat = "text") -> None:
    """The process's logging: one stream handler on the root logger, scrubbed."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        json_formatter(service_name)
        if log_format == "json"
        else logging.Formatter(
            "%(asctime)s %(levelname)s [" + service_name + "] %(name)s: %(message)s"
        )
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])
    install()


def json_formatter(service_name: str) -> logging.Formatter:
    """One JSON object per record, with what :func:`handling` bound in this task."""

    def add_service(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        event["service"] = service_name
        return event

    def add_trace(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        event.update(ids_of_current_span())
        return event

    def scrubbed(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        # the record was scrubbed already; what structlog formats from it (a traceback
        # from exc_info, say) is scrubbed here again before it is written
        return {k: scrub_value(v) for k, v in event.items()}

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_service,
            add_trace,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            scrubbed,
            structlog.processors.JSONRenderer(),
        ],
    )


@contextmanager
def handling(correlation_id: str | None, event_id: str | None) -> Iterator[None]:
    """Every log line written while an event is handled (in this task) names it."""
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id, event_id=event_id):
        yield
