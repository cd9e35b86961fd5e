"""Consumer middleware: what happens to a message that was not applied.

- bodies that are not JSON, validation errors and domain errors (rule
  violations, unknown course ...) can never succeed: the original message goes
  to the service's dead-letter queue at once, with headers naming the reason;
- :class:`AlreadyApplied`: acknowledged and logged, nothing else;
- :class:`NotYetApplicable` (e.g. the person is not known yet): parked in the
  service's database (see parking), then acknowledged;
- anything else (database away, a bug): the message is republished to wait in
  a retry queue for the next delay (1 s, 10 s, 1 min, 10 min by default), so it
  never blocks the messages behind it; after the last attempt it is
  dead-lettered with the error, the service and the attempt count.

A message is acknowledged only after its retry copy or dead letter is confirmed
by the broker. If even that publish fails (the broker is away), the exception
propagates and FastStream nacks with requeue: it is never acknowledged on error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from faststream.rabbit import RabbitBroker
from pydantic import ValidationError

from lotse_shared.errors import DomainError

from .errors import AlreadyApplied, NotYetApplicable
from .parking import ParkingLot
from .topology import Topology

log = logging.getLogger("lotse.messaging")

HEADER_REASON = "x-lotse-dead-reason"
HEADER_SERVICE = "x-lotse-dead-service"
HEADER_AT = "x-lotse-dead-at"
HEADER_ROUTING_KEY = "x-lotse-original-routing-key"
HEADER_ERROR_TYPE = "x-lotse-error-type"
HEADER_ATTEMPTS = "x-lotse-attempts"
HEADER_LAST_ERROR = "x-lotse-last-error"

# RecursionError: a body nested deeper than the JSON decoder recurses (e.g. 100,000
# brackets); it fails the same way on every attempt (found by fuzzing, issue 6).
PERMANENT = (ValidationError, DomainError, json.JSONDecodeError, UnicodeDecodeError, RecursionError)


def describe_validation_error(exc: ValidationError) -> str:
    """'payload.person_id: Input should be a valid UUID; ...' names each field and reason."""
    parts = []
    for err in exc.errors(include_url=False):
        path = list(err["loc"])
        if path and path[0] == "event":  # the handler's parameter, not part of the message
            path = path[1:]
        loc = ".".join(str(p) for p in path) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    if isinstance(exc, ValueError) and not isinstance(exc, DomainError):
        return f"body is not UTF-8 JSON: {exc}"
    if isinstance(exc, RecursionError):
        return f"body is nested too deeply to decode: {exc}"
    return str(exc) or type(exc).__name__


def original_routing_key(msg: StreamMessage[Any]) -> str:
    """A retried message arrives as ``<service>.<n>.<key>``; the header keeps ``<key>``."""
    headers = msg.headers or {}
    return str(headers.get(HEADER_ROUTING_KEY) or getattr(msg.raw_message, "routing_key", ""))


def _clean(headers: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in headers.items() if not k.startswith("x-death")}


class DeadLetters:
    """Publishes rejected messages to the service's dead-letter queue, with their reason."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.broker: RabbitBroker | None = None

    def _broker(self) -> RabbitBroker:
        if self.broker is None:
            raise RuntimeError("dead letters used before the broker was attached")
        return self.broker

    async def send(
        self,
        *,
        body: bytes,
        headers: dict[str, Any],
        routing_key: str,
        reason: str,
        error_type: str,
        message_id: str | None,
        correlation_id: str | None,
        attempts: int = 1,
    ) -> None:
        dead_headers = {
            **_clean(headers),
            HEADER_REASON: reason[:4000],
            HEADER_SERVICE: self.topology.service,
            HEADER_AT: datetime.now(UTC).isoformat(),
            HEADER_ROUTING_KEY: routing_key,
            HEADER_ERROR_TYPE: error_type,
            HEADER_ATTEMPTS: attempts,
        }
        await self._broker().publish(
            body,
            exchange=self.topology.dead_exchange,
            routing_key=self.topology.dead_letter_routing_key,
            headers=dead_headers,
            persist=True,
            mandatory=True,
            message_id=message_id,
            correlation_id=correlation_id,
            content_type="application/json",
        )

    async def retry_later(
        self, msg: StreamMessage[Any], routing_key: str, attempt: int, error: str
    ) -> None:
        """Park a copy in the retry queue for ``attempt`` (its TTL is the delay)."""
        headers = {
            **_clean(dict(msg.headers or {})),
            HEADER_ROUTING_KEY: routing_key,
            HEADER_ATTEMPTS: attempt,
            HEADER_LAST_ERROR: error[:2000],
        }
        await self._broker().publish(
            msg.body,
            exchange=self.topology.retry_exchange,
            routing_key=self.topology.retry_routing_key(attempt, routing_key),
            headers=headers,
            persist=True,
            mandatory=True,
            message_id=msg.message_id,
            correlation_id=msg.correlation_id,
            content_type="application/json",
        )


def failure_middleware(
    dead_letters: DeadLetters,
    parking: ParkingLot | None,
    retry_delays_s: Sequence[float],
    redelivery_delay_s: float,
) -> Callable[..., BaseMiddleware]:
    """Build the middleware class bound to one service's retry and dead-letter queues."""

    class FailureMiddleware(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            routing_key = original_routing_key(msg)
            attempts_before = int((msg.headers or {}).get(HEADER_ATTEMPTS, 0))
            try:
                return await call_next(msg)
            except AlreadyApplied:
                log.info("duplicate event %s on %s ignored", msg.message_id, routing_key)
                return None
            except NotYetApplicable as exc:
                if parking is None:
                    await _dead_letter(msg, routing_key, exc, attempts_before + 1)
                    return None
                await parking.park(
                    event_id=msg.message_id or "",
                    routing_key=routing_key,
                    body=msg.body,
                    person_id=exc.person_id,
                    reason=str(exc),
                )
                log.info("message %s on %s parked: %s", msg.message_id, routing_key, exc)
                return None
            except PERMANENT as exc:
                await _dead_letter(msg, routing_key, exc, attempts_before + 1)
                return None
            except Exception as exc:
                attempt = attempts_before + 1
                error = f"{type(exc).__name__}: {exc}"
                try:
                    if attempt > len(retry_delays_s):
                        await _dead_letter(msg, routing_key, exc, attempt, prefix="gave up")
                    else:
                        await dead_letters.retry_later(msg, routing_key, attempt, error)
                        log.warning(
                            "message %s on %s failed (attempt %d), retry in %ss: %s",
                            msg.message_id,
                            routing_key,
                            attempt,
                            retry_delays_s[attempt - 1],
                            error,
                        )
                except Exception:
                    log.exception("could not schedule a retry of %s; requeued", msg.message_id)
                    await asyncio.sleep(redelivery_delay_s)
                    raise exc from None
                return None

    async def _dead_letter(
        msg: StreamMessage[Any],
        routing_key: str,
        exc: BaseException,
        attempts: int,
        prefix: str = "",
    ) -> None:
        reason = describe(exc)
        content_type = msg.content_type or "none"
        if isinstance(exc, ValidationError) and content_type != "application/json":
            # FastStream decodes JSON only for this type; others reach validation as text
            reason = f"{reason} (content type {content_type}; events are application/json)"
        if prefix:
            reason = f"{prefix} after {attempts} attempts: {type(exc).__name__}: {reason}"
        await dead_letters.send(
            body=msg.body,
            headers=dict(msg.headers or {}),
            routing_key=routing_key,
            reason=reason,
            error_type=type(exc).__name__,
            message_id=msg.message_id,
            correlation_id=msg.correlation_id,
            attempts=attempts,
        )
        log.warning("message %s on %s dead-lettered: %s", msg.message_id, routing_key, reason)

    return FailureMiddleware
