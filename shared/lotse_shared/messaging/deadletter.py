"""Consumer middleware: what happens to a message that was not applied.

- bodies that are not JSON, validation errors and domain errors (rule
  violations, unknown course ...) can never succeed: the original message goes
  to the service's dead-letter queue at once, with headers naming the reason;
- :class:`AlreadyApplied`: acknowledged and logged, nothing else (so is
  :class:`PersonErased`, an event about a person the service erased);
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

from .errors import AlreadyApplied, NotYetApplicable, PersonErased
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
# Set by a service on its own copies (retry, dead letter) of a partner event whose
# user_id it checked; trusted only on messages that did not come from the events
# exchange, which is the only exchange a partner may write to.
HEADER_VERIFIED_PRODUCER = "x-lotse-verified-producer"
PARTNER_PREFIX = "partner."


class ProducerNotVouched(DomainError):
    """A partner event whose producer the broker did not vouch for (``user_id``)."""


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


def delivered_routing_key(msg: StreamMessage[Any], events_exchange: str) -> str:
    """The event's routing key. A partner could set our headers, so on deliveries from
    the events exchange only the broker's routing key counts."""
    raw = msg.raw_message
    if getattr(raw, "exchange", None) == events_exchange:
        return str(getattr(raw, "routing_key", "") or "")
    return original_routing_key(msg)


def _claimed_producer(body: bytes) -> str | None:
    """The envelope's ``producer``; None when the body is no JSON object (validation
    will dead-letter it with the reason)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # e.g. 100,000 nested brackets
        return None
    producer = data.get("producer") if isinstance(data, dict) else None
    return producer if isinstance(producer, str) else None


def check_partner_producer(msg: StreamMessage[Any], events_exchange: str) -> tuple[str, str | None]:
    """The message's routing key and, for a partner event, its verified producer.

    A partner event straight from the events exchange must carry the AMQP
    ``user_id`` property (which the broker checks against the connection's user)
    equal to its envelope's ``producer``. One that comes back through a service's
    own exchanges (retry, replay) must carry the producer the service verified in
    :data:`HEADER_VERIFIED_PRODUCER`. Raises :class:`ProducerNotVouched` otherwise.
    """
    raw = msg.raw_message
    headers = msg.headers or {}
    from_partners = getattr(raw, "exchange", None) == events_exchange
    routing_key = delivered_routing_key(msg, events_exchange)
    if not routing_key.startswith(PARTNER_PREFIX):
        return routing_key, None
    claimed = _claimed_producer(msg.body)
    if claimed is None:
        return routing_key, None
    if from_partners:
        vouched, source = getattr(raw, "user_id", None), "user_id"
    else:
        vouched, source = headers.get(HEADER_VERIFIED_PRODUCER), HEADER_VERIFIED_PRODUCER
    if vouched != claimed:
        shown = "missing" if vouched is None else repr(str(vouched))
        raise ProducerNotVouched(
            f"{source} {shown} does not match producer {claimed!r}: a partner publishes "
            "as its own broker user and sets user_id to its partner id"
        )
    return routing_key, claimed


def _attempts_before(msg: StreamMessage[Any], events_exchange: str) -> int:
    """Our attempt count, from our own copies only (a partner could set any header)."""
    if getattr(msg.raw_message, "exchange", None) == events_exchange:
        return 0
    try:
        return int((msg.headers or {}).get(HEADER_ATTEMPTS, 0))
    except (TypeError, ValueError):
        return 0


def _clean(headers: dict[str, Any]) -> dict[str, Any]:
    """Without the broker's x-death and without any producer claim it did not make."""
    return {
        k: v
        for k, v in headers.items()
        if not k.startswith("x-death") and k != HEADER_VERIFIED_PRODUCER
    }


def _verified(producer: str | None) -> dict[str, Any]:
    return {HEADER_VERIFIED_PRODUCER: producer} if producer is not None else {}


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
        verified_producer: str | None = None,
    ) -> None:
        dead_headers = {
            **_clean(headers),
            **_verified(verified_producer),
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
        self,
        msg: StreamMessage[Any],
        routing_key: str,
        attempt: int,
        error: str,
        *,
        verified_producer: str | None = None,
    ) -> None:
        """Park a copy in the retry queue for ``attempt`` (its TTL is the delay)."""
        headers = {
            **_clean(dict(msg.headers or {})),
            **_verified(verified_producer),
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

    events_exchange = dead_letters.topology.events_exchange.name

    class FailureMiddleware(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            attempts_before = _attempts_before(msg, events_exchange)
            try:
                routing_key, producer = check_partner_producer(msg, events_exchange)
            except ProducerNotVouched as exc:
                await _dead_letter(
                    msg, delivered_routing_key(msg, events_exchange), exc, attempts_before + 1
                )
                return None
            try:
                return await call_next(msg)
            except PersonErased:
                log.info(
                    "event %s on %s about an erased person ignored", msg.message_id, routing_key
                )
                return None
            except AlreadyApplied:
                log.info("duplicate event %s on %s ignored", msg.message_id, routing_key)
                return None
            except NotYetApplicable as exc:
                if parking is None:
                    await _dead_letter(
                        msg, routing_key, exc, attempts_before + 1, producer=producer
                    )
                    return None
                if await parking.park(
                    event_id=msg.message_id or "",
                    routing_key=routing_key,
                    body=msg.body,
                    person_id=exc.person_id,
                    reason=str(exc),
                ):
                    log.info("message %s on %s parked: %s", msg.message_id, routing_key, exc)
                else:
                    log.info(
                        "message %s on %s about an erased person ignored",
                        msg.message_id,
                        routing_key,
                    )
                return None
            except PERMANENT as exc:
                await _dead_letter(msg, routing_key, exc, attempts_before + 1, producer=producer)
                return None
            except Exception as exc:
                attempt = attempts_before + 1
                error = f"{type(exc).__name__}: {exc}"
                try:
                    if attempt > len(retry_delays_s):
                        await _dead_letter(
                            msg, routing_key, exc, attempt, prefix="gave up", producer=producer
                        )
                    else:
                        await dead_letters.retry_later(
                            msg, routing_key, attempt, error, verified_producer=producer
                        )
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
        producer: str | None = None,
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
            verified_producer=producer,
        )
        log.warning("message %s on %s dead-lettered: %s", msg.message_id, routing_key, reason)

    return FailureMiddleware
