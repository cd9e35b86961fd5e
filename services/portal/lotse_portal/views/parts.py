"""What every page's assembly shares: the parts that went missing, and German levels."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar, get_args

from lotse_portal.backend import SERVICE_LABELS, Refused, ServiceError, SignedOut, Unavailable
from lotse_shared.contracts.common import CefrLevel
from lotse_shared.contracts.placement import CaseStage

T = TypeVar("T")
log = logging.getLogger(__name__)
# a case's stages in order, as placement's events name them
STAGE_ORDER: list[str] = list(get_args(CaseStage))


@dataclass
class Parts:
    """Collects which services did not answer while a page is put together, and why a
    service refused a part (no consent to matching, say): both are shown on the page."""

    missing: list[str] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)

    async def unless_refused(self, name: str, call: Awaitable[T], default: T) -> T:
        try:
            return await self.get(call, default)
        except Refused as e:
            self.refusals[name] = "; ".join(x.message for x in e.errors)
            return default

    async def get(self, call: Awaitable[T], default: T) -> T:
        try:
            return await call
        except (SignedOut, Refused):
            raise
        except ServiceError as e:
            if not isinstance(e, Unavailable):
                # a part the service refused (a version without the endpoint, say)
                log.warning("%s refused a part of the page: %s", e.service, type(e).__name__)
            label = SERVICE_LABELS.get(e.service, e.service)
            if label not in self.missing:
                self.missing.append(label)
            return default


def level_rank(level: str | None) -> int:
    if level is None or level not in CefrLevel._value2member_map_:
        return -1
    return CefrLevel(level).rank


def best_level(*levels: str | None) -> str | None:
    known = [lv for lv in levels if lv]
    return max(known, key=level_rank) if known else None
