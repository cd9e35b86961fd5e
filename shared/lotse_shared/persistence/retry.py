"""Retry a unit of work that lost a write conflict.

Concurrent transactions touching the same documents abort with MongoDB's
``TransientTransactionError`` label; the whole use case (which is idempotent:
its transaction was rolled back) is simply run again after a short random pause.
A use case whose group commit was rolled back (``BatchAborted``) runs again at once: on
its own if it caused that (its failure is then its own), else in another batch.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.errors import PyMongoError

from lotse_shared.persistence.unit import BatchAborted, group_commit

T = TypeVar("T")
REJOIN_AT_MOST = 2


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and (
        exc.has_error_label("TransientTransactionError")
        or exc.has_error_label("UnknownTransactionCommitResult")
    )


async def retry_transient(fn: Callable[[], Awaitable[T]], *, attempts: int = 8) -> T:
    for attempt in range(attempts):
        try:
            return await fn()
        except BatchAborted as exc:
            # another member's failure: once more in a new batch; after that, alone
            if exc.alone or attempt >= REJOIN_AT_MOST:
                with group_commit(allowed=False):
                    return await retry_transient(fn, attempts=attempts)
        except PyMongoError as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
    raise AssertionError("unreachable")
