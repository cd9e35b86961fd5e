"""placement's composition root: builds everything once, lets tests replace parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from fastapi import FastAPI

from lotse_shared.auth.http import Authenticator
from lotse_shared.background import Periodic
from lotse_shared.clock import clock_from
from lotse_shared.contracts import placement as ev
from lotse_shared.contracts.partner import OpeningFeedReported
from lotse_shared.http import create_http_app
from lotse_shared.messaging.outcomes import PartnerMessage, Status
from lotse_shared.ops.partner_messages import make_partner_messages_router
from lotse_shared.service import build_runtime, document_publications, run_lifespan

from .access import PlacementAccess
from .entrypoints.http import make_router
from .entrypoints.messaging import register_subscriptions
from .handlers import PlacementHandlers
from .imports import ImportHandlers
from .pipeline import PipelineHandlers
from .repository import PlacementRepository
from .settings import PlacementSettings
from .views import PlacementViews


def import_link(message: PartnerMessage) -> dict[str, str]:
    """An applied opening feed is an import whose id is the event's (imports.py)."""
    if message.routing_key == OpeningFeedReported.ROUTING_KEY and message.status is Status.APPLIED:
        return {"import": f"/imports/{message.event_id}"}
    return {}


@dataclass
class Overrides:
    repo: PlacementRepository | None = None
    today: Callable[[], date] | None = None


def create_app(
    settings: PlacementSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    settings = settings or PlacementSettings()
    overrides = overrides or Overrides()
    rt = build_runtime(settings)
    repo = overrides.repo or PlacementRepository(rt.db)
    handlers = PlacementHandlers(
        uow=rt.uow,
        repo=repo,
        parking=rt.parking,
        suggestions_per_set=settings.suggestions_per_set,
        people_per_opening=settings.people_per_opening,
        observe_matching=rt.metrics.matched,
    )
    pipeline = PipelineHandlers(uow=rt.uow, repo=repo)
    imports = ImportHandlers(uow=rt.uow, repo=repo, openings=handlers)
    if overrides.today is not None:
        handlers.today = pipeline.today = overrides.today
    elif settings.clock_file is not None:
        clock = clock_from(settings.clock_file)
        handlers.today = pipeline.today = lambda: clock().date()
    sweeper = Periodic("matching-sweep", 5.0, handlers.sweep_pending)
    retention = timedelta(days=settings.closed_case_retention_days)
    # a sweep, not a TTL index: the database's TTL support is not relied on (docs/auth.md)
    retention_sweep = Periodic(
        "case-retention",
        settings.retention_sweep_s,
        lambda: pipeline.delete_expired_cases(retention),
    )
    register_subscriptions(rt.subscriptions, handlers, imports)
    rt.parking.attach(rt.subscriptions.dispatch)
    document_publications(
        rt,
        [
            ev.OpeningPublished,
            ev.OpeningClosed,
            ev.SuggestionsReady,
            ev.SuggestionAccepted,
            ev.SuggestionDismissed,
            ev.CaseStageChanged,
            ev.CaseClosed,
            ev.ImportCompleted,
        ],
    )
    auth = Authenticator.from_settings(settings)
    app = create_http_app(
        rt,
        title="Lotse placement",
        description="Openings from partners, ranked suggestions with reasons, the pipeline.",
        auth=auth,
        routers=[
            make_router(
                handlers, pipeline, imports, PlacementAccess(repo), PlacementViews(repo), auth
            ),
            make_partner_messages_router(rt.partner_messages, auth, links=import_link),
        ],
        lifespan=lambda: run_lifespan(
            rt,
            index_setup=[repo.ensure_indexes],
            background=[
                (sweeper.start, sweeper.stop),
                (retention_sweep.start, retention_sweep.stop),
            ],
        ),
    )
    app.state.runtime = rt
    app.state.handlers = handlers
    app.state.pipeline = pipeline
    app.state.imports = imports
    return app
