"""Run one service as a process under uvicorn (the ``python -m lotse_<service>`` entry)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from .settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def serve(settings: S, create_app: Callable[[S], FastAPI]) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s [" + settings.service_name + "] %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
        access_log=False,
    )
