"""courses' composition root: builds everything once, lets tests replace parts."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from lotse_shared.auth.http import Authenticator
from lotse_shared.contracts import courses as ev
from lotse_shared.http import create_http_app
from lotse_shared.ops.partner_messages import make_partner_messages_router
from lotse_shared.service import build_runtime, document_publications, run_lifespan

from .entrypoints.http import make_router
from .entrypoints.messaging import register_subscriptions
from .handlers import CoursesHandlers
from .repository import CoursesRepository
from .settings import CoursesSettings


@dataclass
class Overrides:
    repo: CoursesRepository | None = None


def create_app(
    settings: CoursesSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    settings = settings or CoursesSettings()
    overrides = overrides or Overrides()
    rt = build_runtime(settings)
    repo = overrides.repo or CoursesRepository(rt.db)
    handlers = CoursesHandlers(uow=rt.uow, repo=repo, parking=rt.parking)
    register_subscriptions(rt.subscriptions, handlers)
    rt.parking.attach(rt.subscriptions.dispatch)
    document_publications(
        rt,
        [
            ev.Enrolled,
            ev.AttendanceRecorded,
            ev.ExamResultRecorded,
            ev.CourseCompleted,
            ev.CourseDropped,
        ],
    )
    auth = Authenticator.from_settings(settings)
    app = create_http_app(
        rt,
        title="Lotse courses",
        description="German courses: enrolment, attendance, exams, completion, drop-out.",
        routers=[
            make_router(handlers, auth),
            make_partner_messages_router(rt.partner_messages, auth),
        ],
        auth=auth,
        lifespan=lambda: run_lifespan(rt, index_setup=[repo.ensure_indexes]),
    )
    app.state.runtime = rt
    app.state.handlers = handlers
    return app
