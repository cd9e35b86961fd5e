"""Every service's HTTP routes: a lost write conflict is retried, not answered 500.

Two transactions touching the same documents (an admin asking twice to erase a
person while the outbox relay marks that person's events sent, say) make MongoDB
abort one with the ``TransientTransactionError`` label. Consumers already run the
whole use case again (``retry_transient``); an HTTP request does the same here:
the route handler (body already read and cached by Starlette, dependencies solved
anew) runs again after a short random pause. Only if every attempt loses does the
caller get an answer, 503 with ``Retry-After`` (see ``create_http_app``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from .persistence.retry import retry_transient


class RetryingRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def retrying(request: Request) -> Response:
            return await retry_transient(lambda: handler(request))

        return retrying


def api_router(**kwargs: Any) -> APIRouter:
    """An ``APIRouter`` whose routes retry lost write conflicts."""
    return APIRouter(route_class=RetryingRoute, **kwargs)
