"""intake's composition root: builds everything once, lets tests replace parts."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from lotse_shared.auth.http import Authenticator
from lotse_shared.contracts.intake import PersonErased, PersonRegistered, PersonUpdated
from lotse_shared.http import create_http_app
from lotse_shared.service import build_runtime, document_publications, run_lifespan

from .entrypoints.http import make_router
from .entrypoints.messaging import register_subscriptions
from .handlers import IntakeHandlers
from .repository import PeopleRepository
from .settings import IntakeSettings


@dataclass
class Overrides:
    people: PeopleRepository | None = None


def create_app(
    settings: IntakeSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    settings = settings or IntakeSettings()
    overrides = overrides or Overrides()
    rt = build_runtime(settings)
    people = overrides.people or PeopleRepository(rt.db)
    handlers = IntakeHandlers(uow=rt.uow, people=people)
    register_subscriptions(rt.subscriptions, handlers)
    document_publications(rt, [PersonRegistered, PersonUpdated, PersonErased])
    auth = Authenticator.from_settings(settings)
    app = create_http_app(
        rt,
        title="Lotse intake",
        description="People in the programme and who is responsible for them.",
        routers=[make_router(handlers, auth)],
        auth=auth,
        lifespan=lambda: run_lifespan(rt, index_setup=[people.ensure_indexes]),
    )
    app.state.runtime = rt
    app.state.handlers = handlers
    return app
