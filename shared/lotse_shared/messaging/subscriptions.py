"""A service's subscription table, built on FastStream.

Each entry binds one event class to one handler: the service's own durable
queue for the event's routing key is declared and consumed, the payload is
validated against the event class (so the AsyncAPI document shows it), and the
same table dispatches parked events when they are replayed.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker

from lotse_shared import logs
from lotse_shared.contracts.envelope import Event
from lotse_shared.errors import RuleViolation
from lotse_shared.persistence.retry import retry_transient
from lotse_shared.persistence.unit import group_commit

from .topology import Topology

E = TypeVar("E", bound=Event)


class InjectedFault(RuntimeError):
    """Raised for event ids listed in LOTSE_CHAOS_FAIL_EVENT_IDS (chaos tests only)."""


Handler = Callable[[Any], Awaitable[None]]


def _unencodable(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first string UTF-8 cannot encode, if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return ".".join(path) or "(message)"
        return None
    if isinstance(value, dict):
        children: Any = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        children = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, child in children:
        found = _unencodable(child, (*path, key))
        if found:
            return found
    return None


def refuse_unencodable_text(event: Event) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``); Python's decoder accepts it, but
    no database, e-mail or event can store it, so the handler failed on every attempt.
    Refused before the handler runs: dead-lettered, named."""
    where = _unencodable(event.model_dump())
    if where is not None:
        raise RuleViolation(where, "not valid Unicode (a lone surrogate such as \\ud800)")


class Subscriptions:
    def __init__(
        self,
        broker: RabbitBroker,
        topology: Topology,
        *,
        delivery_limit: int = 20,
        fail_event_ids: frozenset[str] = frozenset(),
    ) -> None:
        self.broker = broker
        self.topology = topology
        self.delivery_limit = delivery_limit
        self.fail_event_ids = fail_event_ids
        self._table: dict[str, tuple[type[Event], Handler]] = {}

    def on(
        self, event_cls: type[E], description: str
    ) -> Callable[[Callable[[E], Awaitable[None]]], Callable[[E], Awaitable[None]]]:
        """Decorator: ``@subs.on(CourseCompleted, "compute suggestions")``."""

        def register(fn: Callable[[E], Awaitable[None]]) -> Callable[[E], Awaitable[None]]:
            if event_cls.ROUTING_KEY in self._table:
                raise ValueError(f"{event_cls.ROUTING_KEY} is subscribed twice")
            self._table[event_cls.ROUTING_KEY] = (event_cls, fn)

            async def consume(event: E) -> None:
                # the messages applied at the same time may share one commit (the unit
                # of work's group commit); the message is acknowledged after it
                with logs.handling(str(event.correlation_id), str(event.event_id)), group_commit():
                    refuse_unencodable_text(event)
                    if str(event.event_id) in self.fail_event_ids:
                        raise InjectedFault(f"chaos: handling of {event.event_id} is set to fail")
                    await retry_transient(lambda: fn(event))

            # FastStream validates against, and documents, the handler's signature
            consume.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
            consume.__annotations__ = typing.get_type_hints(fn)
            consume.__name__ = fn.__name__

            self.broker.subscriber(
                self.topology.queue_for(event_cls.ROUTING_KEY, self.delivery_limit),
                self.topology.events_exchange,
                ack_policy=AckPolicy.NACK_ON_ERROR,
                title=f"{self.topology.service}:{event_cls.ROUTING_KEY}",
                description=f"{description} ({event_cls.DESCRIPTION})",
            )(consume)
            return fn

        return register

    @property
    def routing_keys(self) -> list[str]:
        return list(self._table)

    async def dispatch(self, routing_key: str, body: bytes) -> None:
        """Apply a message outside the broker (parked-event replay)."""
        event_cls, fn = self._table[routing_key]
        event = event_cls.model_validate_json(body)
        with logs.handling(str(event.correlation_id), str(event.event_id)):
            await retry_transient(lambda: fn(event))
