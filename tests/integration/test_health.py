"""/healthz is ready only while the broker and the database answer."""

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
            assert (await http.get("/healthz")).status_code == 200
            stop_secantus(proc)

            async def unready() -> bool:
                r = await http.get("/healthz")
                return r.status_code == 503 and r.json()["database"] == "down"

            await eventually(unready, timeout_s=20, what="unready")
            body = (await http.get("/healthz")).json()
            assert body["broker"] == "up"
            proc = start_secantus(port, storage)

            async def ready() -> bool:
                return (await http.get("/healthz")).status_code == 200

            await eventually(ready, timeout_s=30, what="ready again")
    finally:
        stop_secantus(proc)
        shutil.rmtree(storage, ignore_errors=True)
