"""The district's figures: the placement report as a page."""

from __future__ import annotations

from typing import Any

from lotse_portal.backend import UserApi


async def figures(api: UserApi) -> dict[str, Any]:
    report: dict[str, Any] = await api.get("placement", "/reports/placement")
    return report


def bars(values: dict[str, int]) -> list[tuple[str, int, float]]:
    """Label, value and the bar's share of the largest (for the SVG charts)."""
    top = max(values.values(), default=0) or 1
    return [(k, v, v / top) for k, v in values.items()]
