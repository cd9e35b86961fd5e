"""The operator's HTTP side of every service: its dead letters, listed and replayed.

Operators see what went wrong with which event, never the event itself: a listing
carries the message id, routing key, reason, error type, attempts and when, not the
body (which may hold personal data). Replaying works as ``lotse dead-letters replay``.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lotse_shared.auth import Principal, Role
from lotse_shared.auth.http import Authenticator
from lotse_shared.errors import NotFound
from lotse_shared.routes import api_router

from .dead_letters import DeadLetterDesk


class DeadLetterOut(BaseModel):
    message_id: str
    routing_key: str
    reason: str
    error_type: str
    attempts: int
    dead_at: str = Field(description="When it was dead-lettered (ISO 8601), if recorded.")


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str | None = Field(default=None, min_length=1, max_length=200)
    all: bool = Field(default=False, description="Replay every dead letter waiting now.")

    @model_validator(mode="after")
    def _one_or_all(self) -> ReplayRequest:
        if (self.message_id is None) == (not self.all):
            raise ValueError("message_id: name one message, or set all to true (not both)")
        return self


class ReplayOut(BaseModel):
    replayed: int


def make_ops_router(desk: DeadLetterDesk, service: str, auth: Authenticator) -> APIRouter:
    router = api_router(prefix="/ops", tags=["operations"])
    operators = auth.require(Role.OPERATOR, Role.ADMIN)

    @router.get("/dead-letters", summary="This service's dead letters, without their bodies")
    async def dead_letters(viewer: Principal = operators) -> list[DeadLetterOut]:
        return [
            DeadLetterOut(
                message_id=d.message_id,
                routing_key=d.routing_key,
                reason=d.reason,
                error_type=d.error_type,
                attempts=d.attempts,
                dead_at=d.dead_at,
            )
            for d in await desk.list(service)
        ]

    @router.post(
        "/dead-letters/replay",
        status_code=status.HTTP_200_OK,
        summary="Send dead letters back to this service (applied at most once)",
    )
    async def replay(body: ReplayRequest, viewer: Principal = operators) -> ReplayOut:
        count = await desk.replay(service, None if body.all else body.message_id)
        if body.message_id is not None and count == 0:
            raise NotFound(f"no dead letter {body.message_id}")
        return ReplayOut(replayed=count)

    return router
