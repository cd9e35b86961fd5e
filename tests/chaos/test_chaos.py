"""Fast versions of `make chaos`: the same scenarios with a few dozen events.

Each starts the four services as processes on their own SecantusDB and kills,
restarts or poisons something while course-completed events stream through;
every event must still have exactly one suggestion set and one notification.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lotse_devstack.chaos import SCENARIOS, run_scenario

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_nothing_lost_nothing_twice(scenario: str, rabbit_url: str, tmp_path: Path):
    result = await run_scenario(scenario, 30, rabbit_url, tmp_path, quick=True)
    print(result.line())
    assert (result.events, result.effects, result.lost, result.duplicates) == (30, 30, 0, 0)
    if scenario == "poison":
        assert result.extra["dead_lettered"] == 1
        assert result.extra["attempts"] == 4  # first try + three retries
        assert result.extra["effects_before_replay"] == 29
        assert result.extra["replayed"] == 1
    if scenario == "outbox-crash":
        assert result.extra["published_before_crash"] == 0
        assert (result.extra["published"], result.extra["published_twice"]) == (30, 0)
    if scenario in ("broker-restart", "db-outage"):
        assert result.extra["services_alive"] is True
    if scenario == "kill":
        assert result.extra["kills"] == 4
    if scenario == "duplicates":
        assert result.extra["deliveries"] == 150
