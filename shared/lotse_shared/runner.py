"""Run one service as a process under uvicorn (the ``python -m lotse_<service>`` entry)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from . import logs
from .settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def serve(settings: S, create_app: Callable[[S], FastAPI]) -> None:
    logs.configure(settings.log_level, settings.service_name)
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
