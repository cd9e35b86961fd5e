"""/readyz (and its alias /healthz) is ready only while the broker and the database
answer; /livez stays alive through their outage, so a liveness probe restarts nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from lotse_devstack.ports import free_port
from lotse_devstack.secantus import mongo_url, start_secantus, stop_secantus
from lotse_placement.bootstrap import create_app
from tests.support import eventually, running


async def test_database_outage_turns_health_unready_and_back(
    service_env, monkeypatch: pytest.MonkeyPatch
):
    # a database of its own to stop, even when the suite runs against a real mongod
    port = free_port()
    storage = Path(tempfile.mkdtemp(prefix="lotse-health-"))
    proc = start_secantus(port, storage)
    monkeypatch.setenv("LOTSE_MONGO_URL", mongo_url(port))
    try:
        async with running(create_app()) as http:
            ready_now = (await http.get("/readyz")).json()
            assert ready_now == {
                "status": "ready",
                "service": "placement",
                "broker": "up",
                "database": "up",
                "consumers": "started",
            }
            assert (await http.get("/healthz")).json() == ready_now
            stop_secantus(proc)

            async def unready() -> bool:
                r = await http.get("/readyz")
                return r.status_code == 503 and r.json()["database"] == "down"

            await eventually(unready, timeout_s=20, what="unready")
            assert (await http.get("/healthz")).status_code == 503
            body = (await http.get("/readyz")).json()
            assert body["broker"] == "up"
            live = await http.get("/livez")
            assert (live.status_code, live.json()["status"]) == (200, "alive")
            proc = start_secantus(port, storage)

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await eventually(ready, timeout_s=30, what="ready again")
    finally:
        stop_secantus(proc)
        shutil.rmtree(storage, ignore_errors=True)
