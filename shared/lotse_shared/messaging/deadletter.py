"""Consumer middleware: what happens to a message that was not applied.

- bodies that are not JSON, validation errors and domain errors (rule
  violations, unknown course ...): the original message is published to the
  service's dead-letter queue with headers naming the reason, the service, the
  time and the original routing key, then acknowledged;
- :class:`AlreadyApplied`: acknowledged and logged, nothing else;
- :class:`NotYetApplicable` (e.g. the person is not known yet): parked in the
  service's database (see parking), then acknowledged;
- anything else (database away, broker hiccup, a bug): after a short pause the
  exception propagates, so FastStream nacks with requeue and the message comes
  back. It is never acknowledged on error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
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


class DeadLetters:
    """Publishes rejected messages to the service's dead-letter queue, with their reason."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.broker: RabbitBroker | None = None

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
    ) -> None:
        if self.broker is None:
            raise RuntimeError("dead letters used before the broker was attached")
        dead_headers = {
            **{k: v for k, v in headers.items() if not k.startswith("x-death")},
            HEADER_REASON: reason[:4000],
            HEADER_SERVICE: self.topology.service,
            HEADER_AT: datetime.now(UTC).isoformat(),
            HEADER_ROUTING_KEY: routing_key,
            HEADER_ERROR_TYPE: error_type,
        }
        await self.broker.publish(
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


def dead_letter_middleware(
    dead_letters: DeadLetters, parking: ParkingLot | None, redelivery_delay_s: float
) -> Callable[..., BaseMiddleware]:
    """Build the middleware class bound to one service's dead-letter target."""

    class DeadLetterMiddleware(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            raw = msg.raw_message
            routing_key = getattr(raw, "routing_key", "") or ""
            try:
                return await call_next(msg)
            except AlreadyApplied:
                log.info("duplicate event %s on %s ignored", msg.message_id, routing_key)
                return None
            except NotYetApplicable as exc:
                if parking is not None:
                    await parking.park(
                        event_id=msg.message_id or "",
                        routing_key=routing_key,
                        body=msg.body,
                        person_id=exc.person_id,
                        reason=str(exc),
                    )
                    log.info("message %s on %s parked: %s", msg.message_id, routing_key, exc)
                    return None
                await _dead_letter(msg, routing_key, str(exc), type(exc).__name__)
                return None
            except (ValidationError, DomainError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                if isinstance(exc, ValidationError):
                    reason = describe_validation_error(exc)
                elif isinstance(exc, ValueError):
                    reason = f"body is not UTF-8 JSON: {exc}"
                else:
                    reason = str(exc)
                await _dead_letter(msg, routing_key, reason, type(exc).__name__)
                return None
            except Exception:
                log.exception(
                    "message %s on %s failed; it goes back to the queue",
                    msg.message_id,
                    routing_key,
                )
                await asyncio.sleep(redelivery_delay_s)
                raise

    async def _dead_letter(
        msg: StreamMessage[Any], routing_key: str, reason: str, error_type: str
    ) -> None:
        await dead_letters.send(
            body=msg.body,
            headers=dict(msg.headers or {}),
            routing_key=routing_key,
            reason=reason,
            error_type=error_type,
            message_id=msg.message_id,
            correlation_id=msg.correlation_id,
        )
        log.warning("message %s on %s dead-lettered: %s", msg.message_id, routing_key, reason)

    return DeadLetterMiddleware
