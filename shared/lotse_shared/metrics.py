"""What a service counts for its operators, served as Prometheus text at ``GET /metrics``.

One registry per service runtime (not the library's global one): tests run several
services in one process, and each must count only its own. Names follow Prometheus'
conventions (base units in the name, ``_total`` for counters, added by the library);
labels are bounded sets (a route template, an error type, a channel), never an id, an
address or anything else about a person.

- the broker's side: FastStream's Prometheus middleware on the same registry
  (``faststream_*``: messages received, processed and failed, and their durations, per
  queue; attached by ``service.build_runtime``);
- HTTP: requests and their durations per method, route template and status;
- the plumbing: dead letters per error type, parked events per reason, retries per
  delay, outbox rows waiting and the age of the oldest (read at scrape time);
- the services' own: deliveries per channel and result (notifications), suggestions
  computed and matching durations (placement).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = r = CollectorRegistry()
        self.http_requests = Counter(
            "lotse_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "lotse_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "lotse_dead_lettered_messages",
            "Messages sent to the service's dead-letter queue, by error type.",
            ["error_type"],
            registry=r,
        )
        self.parked = Counter(
            "lotse_parked_events",
            "Events parked until what they depend on arrives, by reason.",
            ["reason"],
            registry=r,
        )
        self.retries = Counter(
            "lotse_retried_messages",
            "Failed messages scheduled for another attempt, by the delay before it.",
            ["delay_seconds"],
            registry=r,
        )
        self.outbox_waiting = Gauge(
            "lotse_outbox_waiting_events",
            "Events committed to the outbox and not yet published.",
            registry=r,
        )
        self.outbox_oldest = Gauge(
            "lotse_outbox_oldest_waiting_seconds",
            "Age of the oldest event waiting in the outbox (0 when none waits).",
            registry=r,
        )
        self.deliveries = Counter(
            "lotse_deliveries",
            "Deliveries of notifications, by channel and result.",
            ["channel", "result"],
            registry=r,
        )
        self.suggestions = Counter(
            "lotse_suggestions_computed",
            "Suggestions computed for people (each kept suggestion counts once).",
            registry=r,
        )
        self.matching_duration = Histogram(
            "lotse_matching_duration_seconds",
            "Time to compute one person's or one opening's suggestions.",
            registry=r,
        )

        self.batch_size = Histogram(
            "lotse_group_commit_messages",
            "Transactions per group commit, by result (committed, or rolled back and "
            "each run again alone).",
            ["result"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )

    def batched(self, members: int, committed: bool) -> None:
        self.batch_size.labels("committed" if committed else "rolled_back").observe(members)

    def delivered(self, channel: str, result: str) -> None:
        self.deliveries.labels(channel, result).inc()

    def matched(self, kept: int, seconds: float) -> None:
        self.suggestions.inc(kept)
        self.matching_duration.observe(seconds)

    def outbox(self, waiting: int, oldest: datetime | None) -> None:
        self.outbox_waiting.set(waiting)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        self.outbox_oldest.set(max(age, 0.0))

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def count_request(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """HTTP middleware: requests and durations per route template, not per path."""
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = route_template(request)
            self.http_requests.labels(request.method, route, str(status)).inc()
            self.http_duration.labels(request.method, route).observe(time.perf_counter() - started)


def route_template(request: Request) -> str:
    """``/people/{person_id}``, not the id: paths would be one series per person."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"
