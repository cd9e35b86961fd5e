"""Fixtures for the real infrastructure every test layer above unit needs.

- RabbitMQ: ``LOTSE_RABBIT_URL`` or amqp://guest:guest@127.0.0.1:5672/ (must be running;
  ``.ci/run`` starts or installs it);
- MongoDB: ``MONGO_URL`` (a real mongod replica set) if given, else a SecantusDB
  server started for the session in a temp dir;
- every test gets its own namespace, so exchanges, queues and databases never
  collide; they are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lotse_devstack.cleanup import delete_namespace
from lotse_devstack.mailsink import MailSink
from lotse_devstack.ports import free_port, port_open
from lotse_devstack.secantus import mongo_url as secantus_url
from lotse_devstack.secantus import start_secantus, stop_secantus
from lotse_devstack.tokens import DevIssuer

# pytest-timeout (pyproject: 300 s) shows only the threads' stacks, and the event
# loop's thread is always idle in select(); this shows which await is stuck
# (LOTSE_TEST_WATCHDOG_S sooner, with a shorter --timeout, when chasing a hang).
WATCHDOG_S = float(os.environ.get("LOTSE_TEST_WATCHDOG_S", "270"))

RABBIT_URL = os.environ.get("LOTSE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    if not port_open("127.0.0.1", 5672) and "127.0.0.1" in RABBIT_URL:
        pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672; run .ci/run or start it")
    return RABBIT_URL


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    given = os.environ.get("MONGO_URL")
    if given:
        yield given
        return
    workdir = Path(tempfile.mkdtemp(prefix="lotse-test-db-"))
    port = free_port()
    proc = start_secantus(port, workdir / "db", workdir / "secantusdb.log")
    yield secantus_url(port)
    stop_secantus(proc)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def namespace(rabbit_url: str, mongo_url: str) -> AsyncIterator[str]:
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
    await delete_namespace(rabbit_url, ns, mongo_url)


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) in this process; the services are pointed at it."""
    sink = MailSink()
    sink.start()
    monkeypatch.setenv("LOTSE_SMTP_HOST", sink.host)
    monkeypatch.setenv("LOTSE_SMTP_PORT", str(sink.port))
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def dev_issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    """Signing keys of this test session; the services trust its JWKS file."""
    return DevIssuer(tmp_path_factory.mktemp("dev-keys")).ensure()


@pytest.fixture
def service_env(
    monkeypatch: pytest.MonkeyPatch,
    namespace: str,
    rabbit_url: str,
    mongo_url: str,
    dev_issuer: DevIssuer,
) -> dict[str, str]:
    """Point every service's settings at the test infrastructure, namespace and keys."""
    env = {
        **dev_issuer.service_env(),
        "LOTSE_NAMESPACE": namespace,
        "LOTSE_RABBIT_URL": rabbit_url,
        "LOTSE_MONGO_URL": mongo_url,
        "LOTSE_OUTBOX_RECOVER_EVERY_S": "0.2",
        "LOTSE_REDELIVERY_DELAY_S": "0.2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _dump_tasks(loop: asyncio.AbstractEventLoop) -> None:
    print(f"--- asyncio tasks still pending after {WATCHDOG_S:.0f} s ---", file=sys.stderr)
    for task in asyncio.all_tasks(loop):
        task.print_stack(limit=12, file=sys.stderr)


@pytest.fixture(autouse=True)
async def _show_stuck_awaits() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    handle = loop.call_later(WATCHDOG_S, _dump_tasks, loop)
    yield
    handle.cancel()


@pytest.fixture
def one_alert_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every suggestions event its own alert and email, no daily cap: for tests that use
    a suggestions event to exercise channels, pages and endpoints rather than the alert
    policy (tests/integration/test_alert_policy.py tests the defaults)."""
    monkeypatch.setenv(
        "LOTSE_ALERT_CADENCE", '{"suggestions_ready": "immediate", "enrolled": "daily"}'
    )
    monkeypatch.setenv("LOTSE_DAILY_EMAIL_CAP", "0")
