"""Consumer middleware: what happens to a message that was not applied.

- bodies that are not JSON, validation errors and domain errors (rule
  violations, unknown course ...) can never succeed: the original message goes
  to the service's dead-letter queue at once, with headers naming the reason;
- :class:`AlreadyApplied`: acknowledged and logged, nothing else (so is
  :class:`AboutErasedPerson`, an event about a person the service erased);
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from faststream.rabbit import RabbitBroker
from pydantic import ValidationError

from lotse_shared.errors import AboutErasedPerson, AlreadyApplied, DomainError, NotYetApplicable
from lotse_shared.metrics import Metrics

from .outcomes import NOT_IN_LOTSE, PartnerMessages, Status, failing_fields
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

    def __init__(self, reason: str, *, user_id: str | None, event_id: str | None) -> None:
        super().__init__(reason)
        self.user_id = user_id  # the broker-checked sender, if the message came from it
        self.event_id = event_id


# RecursionError: a body nested deeper than the JSON decoder recurses (e.g. 100,000
# brackets); it fails the same way on every attempt.
PERMANENT = (ValidationError, DomainError, json.JSONDecodeError, UnicodeDecodeError, RecursionError)


def internal(exc: BaseException) -> str:
    """A failure on Lotse's side, as the partner sees it: the type, not the message,
    which may name internals (hosts, other people's data)."""
    return f"a failure on Lotse's side ({type(exc).__name__})"


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


def _claims(body: bytes) -> tuple[str | None, str | None]:
    """The envelope's ``producer`` and ``event_id``, each None unless a string (an
    invalid body is dead-lettered by validation, with the reason)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # e.g. 100,000 nested brackets
        return None, None
    if not isinstance(data, dict):
        return None, None
    producer, event_id = data.get("producer"), data.get("event_id")
    return (
        producer if isinstance(producer, str) else None,
        event_id if isinstance(event_id, str) else None,
    )


@dataclass(frozen=True)
class Sender:
    """Whose partner message this is, as far as the broker vouches, and its event id:
    the key its outcome is recorded under (see outcomes)."""

    partner: str
    event_id: str


def _broker_user(msg: StreamMessage[Any], events_exchange: str) -> str | None:
    """The ``user_id`` the broker checked, on a delivery straight from a partner."""
    raw = msg.raw_message
    if getattr(raw, "exchange", None) != events_exchange:
        return None
    user_id = getattr(raw, "user_id", None)
    return str(user_id) if user_id else None


def check_partner_producer(msg: StreamMessage[Any], events_exchange: str) -> tuple[str, str | None]:
    """The message's routing key and, for a partner event, its verified producer.

    A partner event straight from the events exchange must carry the AMQP
    ``user_id`` property (which the broker checks against the connection's user)
    equal to its envelope's ``producer``. One that comes back through a service's
    own exchanges (retry, replay) must carry the producer the service verified in
    :data:`HEADER_VERIFIED_PRODUCER`. Raises :class:`ProducerNotVouched` otherwise.
    """
    routing_key, producer, _ = _check_partner(msg, events_exchange)
    return routing_key, producer


def _check_partner(
    msg: StreamMessage[Any], events_exchange: str
) -> tuple[str, str | None, Sender | None]:
    """check_partner_producer, and the sender to record the outcome for (the body is
    parsed once)."""
    raw = msg.raw_message
    headers = msg.headers or {}
    from_partners = getattr(raw, "exchange", None) == events_exchange
    routing_key = delivered_routing_key(msg, events_exchange)
    if not routing_key.startswith(PARTNER_PREFIX):
        return routing_key, None, None
    claimed, claimed_event_id = _claims(msg.body)
    event_id = claimed_event_id or getattr(msg, "message_id", None)
    if claimed is None:  # no readable envelope: the broker's user, if any, sent it
        user = _broker_user(msg, events_exchange)
        return routing_key, None, Sender(user, event_id) if user and event_id else None
    if from_partners:
        vouched, source = getattr(raw, "user_id", None), "user_id"
    else:
        vouched, source = headers.get(HEADER_VERIFIED_PRODUCER), HEADER_VERIFIED_PRODUCER
    if vouched != claimed:
        shown = "missing" if vouched is None else repr(str(vouched))
        raise ProducerNotVouched(
            f"{source} {shown} does not match producer {claimed!r}: a partner publishes "
            "as its own broker user and sets user_id to its partner id",
            user_id=_broker_user(msg, events_exchange),
            event_id=event_id,
        )
    return routing_key, claimed, Sender(claimed, event_id) if event_id else None


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

    def __init__(self, topology: Topology, metrics: Metrics | None = None) -> None:
        self.topology = topology
        self.metrics = metrics
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
        if self.metrics is not None:
            self.metrics.dead_lettered.labels(error_type).inc()
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
    outcomes: PartnerMessages | None = None,
    metrics: Metrics | None = None,
) -> Callable[..., BaseMiddleware]:
    """Build the middleware class bound to one service's retry and dead-letter queues;
    with ``outcomes``, each partner message's fate is recorded for its partner; with
    ``metrics``, parked events and retries are counted (dead letters count themselves)."""

    events_exchange = dead_letters.topology.events_exchange.name

    async def _record(
        sender: Sender | None, routing_key: str, status: Status, **details: Any
    ) -> None:
        if outcomes is not None and sender is not None:
            await outcomes.record(
                producer=sender.partner,
                event_id=sender.event_id,
                routing_key=routing_key,
                status=status,
                **details,
            )

    class FailureMiddleware(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            attempts_before = _attempts_before(msg, events_exchange)
            attempt = attempts_before + 1
            try:
                routing_key, producer, sender = _check_partner(msg, events_exchange)
            except ProducerNotVouched as exc:
                routing_key = delivered_routing_key(msg, events_exchange)
                reason = await _dead_letter(msg, routing_key, exc, attempt)
                if exc.user_id and exc.event_id:  # the broker vouches for the sender
                    await _record(
                        Sender(exc.user_id, exc.event_id),
                        routing_key,
                        Status.DEAD_LETTERED,
                        reason=reason,
                        fields=["user_id", "producer"],
                        attempts=attempt,
                    )
                return None
            try:
                result = await call_next(msg)
            except AboutErasedPerson:
                log.info(
                    "event %s on %s about an erased person ignored", msg.message_id, routing_key
                )
                await _record(sender, routing_key, Status.IGNORED, reason=NOT_IN_LOTSE)
                return None
            except AlreadyApplied:
                log.info("duplicate event %s on %s ignored", msg.message_id, routing_key)
                await _record(
                    sender, routing_key, Status.DUPLICATE, reason="applied before; not again"
                )
                return None
            except NotYetApplicable as exc:
                if parking is None:
                    reason = await _dead_letter(msg, routing_key, exc, attempt, producer=producer)
                    await _record(
                        sender, routing_key, Status.DEAD_LETTERED, reason=reason, attempts=attempt
                    )
                    return None
                # recorded first: a replay may apply it the moment it is parked
                await _record(
                    sender,
                    routing_key,
                    Status.PARKED,
                    reason=f"waiting: {exc}",
                    attempts=attempt,
                    next_attempt_at=datetime.now(UTC) + timedelta(seconds=parking.sweep_every_s),
                )
                if await parking.park(
                    event_id=msg.message_id or "",
                    routing_key=routing_key,
                    body=msg.body,
                    person_id=exc.person_id,
                    reason=str(exc),
                    producer=producer,
                    partner_event_id=sender.event_id if sender is not None else None,
                ):
                    log.info("message %s on %s parked: %s", msg.message_id, routing_key, exc)
                    if metrics is not None:
                        metrics.parked.labels(type(exc).__name__).inc()
                else:
                    log.info(
                        "message %s on %s about an erased person ignored",
                        msg.message_id,
                        routing_key,
                    )
                    await _record(sender, routing_key, Status.IGNORED, reason=NOT_IN_LOTSE)
                return None
            except PERMANENT as exc:
                reason = await _dead_letter(msg, routing_key, exc, attempt, producer=producer)
                await _record(
                    sender,
                    routing_key,
                    Status.DEAD_LETTERED,
                    reason=reason,
                    fields=failing_fields(exc),
                    attempts=attempt,
                )
                return None
            except Exception as exc:
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
                        if metrics is not None:
                            metrics.retries.labels(f"{retry_delays_s[attempt - 1]:g}").inc()
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
                # the error itself stays with the operators: it may name Lotse's internals
                if attempt > len(retry_delays_s):
                    await _record(
                        sender,
                        routing_key,
                        Status.DEAD_LETTERED,
                        reason=f"gave up after {attempt} attempts: {internal(exc)}",
                        attempts=attempt,
                    )
                else:
                    await _record(
                        sender,
                        routing_key,
                        Status.RETRYING,
                        reason=f"{internal(exc)}; tried again",
                        attempts=attempt,
                        next_attempt_at=datetime.now(UTC)
                        + timedelta(seconds=retry_delays_s[attempt - 1]),
                    )
                return None
            await _record(sender, routing_key, Status.APPLIED, attempts=attempt)
            return result

    async def _dead_letter(
        msg: StreamMessage[Any],
        routing_key: str,
        exc: BaseException,
        attempts: int,
        prefix: str = "",
        producer: str | None = None,
    ) -> str:
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
        return reason

    return FailureMiddleware
