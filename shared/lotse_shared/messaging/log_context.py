"""Every log line written while a message is handled names its event and flow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage

from lotse_shared import logs


class EventLogContext(BaseMiddleware):
    """Binds the message's id (the event id: the outbox and the partners publish it as
    the message id) and ``correlation_id`` property for the logs of its handling, before
    anything is validated; the subscription then binds the envelope's own ids."""

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        with logs.handling(msg.correlation_id or None, msg.message_id or None):
            return await call_next(msg)
