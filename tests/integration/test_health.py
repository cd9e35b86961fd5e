"""/healthz is ready only while the broker and the database answer."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lotse_devstack.ports import free_port, port_open
from lotse_placement.bootstrap import create_app
from tests.support import eventually, running


def start_secantus(port: int, storage: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    proc = subprocess.Popen(
        [
            exe,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return proc


async def test_database_outage_turns_health_unready_and_back(
    service_env, monkeypatch: pytest.MonkeyPatch
):
    # a database of its own to stop, even when the suite runs against a real mongod
    port = free_port()
    storage = Path(tempfile.mkdtemp(prefix="lotse-health-"))
    proc = start_secantus(port, storage)
    monkeypatch.setenv(
        "LOTSE_MONGO_URL", f"mongodb://127.0.0.1:{port}/?replicaSet=secantus&retryWrites=false"
    )
    try:
        async with running(create_app()) as http:
            assert (await http.get("/healthz")).status_code == 200
            proc.terminate()
            proc.wait(timeout=20)

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
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(storage, ignore_errors=True)
