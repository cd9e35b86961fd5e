"""Run one service as a process under uvicorn (the ``python -m lotse_<service>`` entry)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from . import logs, tracing
from .settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def load_settings(settings_cls: type[S]) -> S:
    """The service's settings, or exit naming each bad or missing setting (no traceback).

    E.g. ``LOTSE_WEBHOOK_SECRET (or LOTSE_WEBHOOK_SECRET_FILE) is required with
    LOTSE_WEBHOOK_URL``. The message never repeats a value (it may be a secret).
    """
    try:
        return settings_cls()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in err["loc"])
            field = f"LOTSE_{where.upper()}: " if where else ""
            problems.append(field + str(err["msg"]).removeprefix("Value error, "))
        reason = "; ".join(problems)
    except ValueError as exc:  # raised while reading the sources, e.g. a *_FILE
        reason = str(exc)
    raise SystemExit(f"{settings_cls.__name__}: refusing to start: {reason}")


def serve(settings: S, create_app: Callable[[S], FastAPI]) -> None:
    logs.configure(settings.log_level, settings.service_name, settings.log_format)
    tracing.configure(settings.service_name)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
        access_log=False,
        # uvicorn's loggers go to the root handler, which masks personal data
        # (query strings such as ?recipient=… included, should the access log be on)
        log_config=None,
    )
