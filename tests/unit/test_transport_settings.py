"""Secrets from files, refused configurations, and TLS for AMQP and MongoDB.

The local RabbitMQ has no TLS listener and SecantusDB speaks no TLS, so the AMQP and
MongoDB clients are pointed at a TLS listener of this test (real handshakes, a CA and
certificates made here): it records whether the handshake succeeded and with which
client certificate, then hangs up. What the clients then speak over TLS is not tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from lotse_devstack.ports import free_port
from lotse_notifications.bootstrap import smtp_tls_context
from lotse_notifications.settings import NotificationsSettings
from lotse_shared.persistence.mongo import make_client
from lotse_shared.service import build_runtime
from lotse_shared.settings import ServiceSettings
from lotse_shared.transport import amqp_ssl_context, broker_security, mongo_tls_options
from tests.tls import Pki, make_pki


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LOTSE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("other-pki"), name="other")


# ---- secrets from files ---------------------------------------------------------------


def test_a_setting_can_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "rabbit_url"
    secret.write_text("amqp://lotse:pa%24%24word@rabbit:5672/\n")
    delays = tmp_path / "delays"
    delays.write_text("[1, 2.5]")
    monkeypatch.setenv("LOTSE_RABBIT_URL_FILE", str(secret))
    monkeypatch.setenv("LOTSE_RETRY_DELAYS_S_FILE", str(delays))
    settings = ServiceSettings()
    assert settings.rabbit_url == "amqp://lotse:pa%24%24word@rabbit:5672/"  # newline dropped
    assert settings.retry_delays_s == [1.0, 2.5]


def test_a_value_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("x")
    monkeypatch.setenv("LOTSE_SMTP_PASSWORD", "y")
    monkeypatch.setenv("LOTSE_SMTP_PASSWORD_FILE", str(tmp_path / "pw"))
    with pytest.raises(ValueError, match="LOTSE_SMTP_PASSWORD and LOTSE_SMTP_PASSWORD_FILE"):
        NotificationsSettings()


def test_a_missing_secret_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOTSE_WEBHOOK_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="LOTSE_WEBHOOK_SECRET_FILE: cannot read"):
        NotificationsSettings()


def test_a_webhook_needs_its_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOTSE_WEBHOOK_URL", "https://partner.example/hook")
    with pytest.raises(ValidationError, match="LOTSE_WEBHOOK_SECRET"):
        NotificationsSettings()
    (tmp_path / "hook").write_text("0123456789abcdef0123456789abcdef\n")
    monkeypatch.setenv("LOTSE_WEBHOOK_SECRET_FILE", str(tmp_path / "hook"))
    assert NotificationsSettings().webhook_secret == "0123456789abcdef0123456789abcdef"


def test_no_secret_has_a_default() -> None:
    notifications = NotificationsSettings()
    assert notifications.webhook_secret == ""
    assert notifications.smtp_password is None
    assert notifications.smtp_username is None
    # the only credentials are RabbitMQ's own local-only guest account
    assert ServiceSettings().rabbit_url == "amqp://guest:guest@127.0.0.1:5672/"


def test_smtp_login_needs_a_password_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOTSE_SMTP_USERNAME", "lotse")
    with pytest.raises(ValidationError, match=r"LOTSE_SMTP_PASSWORD .* is required"):
        NotificationsSettings()
    monkeypatch.setenv("LOTSE_SMTP_PASSWORD", "pw")
    with pytest.raises(ValidationError, match="without TLS would send the password in clear"):
        NotificationsSettings()
    monkeypatch.setenv("LOTSE_SMTP_ALLOW_PLAIN_LOGIN", "true")
    assert NotificationsSettings().smtp_username == "lotse"
    monkeypatch.delenv("LOTSE_SMTP_ALLOW_PLAIN_LOGIN")
    monkeypatch.setenv("LOTSE_SMTP_STARTTLS", "true")
    assert NotificationsSettings().smtp_starttls
    monkeypatch.setenv("LOTSE_SMTP_TLS", "true")
    with pytest.raises(ValidationError, match="exclude each other"):
        NotificationsSettings()


def test_smtp_tls_context_verifies_the_server(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    assert smtp_tls_context(NotificationsSettings()) is None
    monkeypatch.setenv("LOTSE_SMTP_TLS_CA_FILE", str(pki.ca_file))
    with pytest.raises(ValidationError, match="LOTSE_SMTP_TLS_CA_FILE needs"):
        NotificationsSettings()
    monkeypatch.setenv("LOTSE_SMTP_TLS", "true")
    context = smtp_tls_context(NotificationsSettings())
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


# ---- AMQP ---------------------------------------------------------------------------------


def test_plain_amqp_has_no_tls() -> None:
    settings = ServiceSettings()
    assert amqp_ssl_context(settings) is None
    assert broker_security(settings) is None


def test_tls_files_need_amqps_and_must_exist(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOTSE_RABBIT_TLS_CA_FILE", str(pki.ca_file))
    with pytest.raises(ValidationError, match="LOTSE_RABBIT_TLS_CA_FILE needs an amqps://"):
        ServiceSettings()
    monkeypatch.setenv("LOTSE_RABBIT_URL", "amqps://lotse@rabbit:5671/")
    monkeypatch.setenv("LOTSE_RABBIT_TLS_CERT_FILE", str(pki.client_cert))
    with pytest.raises(ValidationError, match="go together"):
        ServiceSettings()
    monkeypatch.setenv("LOTSE_RABBIT_TLS_KEY_FILE", str(pki.ca_file.parent / "absent.key"))
    with pytest.raises(ValidationError, match="LOTSE_RABBIT_TLS_KEY_FILE: no such file"):
        ServiceSettings()
    monkeypatch.setenv("LOTSE_RABBIT_URL", "http://rabbit/")
    with pytest.raises(ValidationError, match="scheme must be amqp or amqps"):
        ServiceSettings()


@dataclass
class TlsListener:
    """A TLS server that requires a client certificate signed by ``pki``'s CA."""

    pki: Pki
    port: int = field(default_factory=free_port)
    handshakes: list[dict[str, Any]] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[TlsListener]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.pki.ca_file)
        context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        context.verify_mode = ssl.CERT_REQUIRED

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peercert")
            self.handshakes.append(
                {
                    "client": dict(x[0] for x in peer["subject"]),
                    "version": writer.get_extra_info("ssl_object").version(),
                }
            )
            writer.close()

        server = await asyncio.start_server(accepted, "127.0.0.1", self.port, ssl=context)
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


def tls_env(monkeypatch: pytest.MonkeyPatch, pki: Pki, port: int) -> None:
    monkeypatch.setenv("LOTSE_RABBIT_URL", f"amqps://guest:guest@localhost:{port}/")
    monkeypatch.setenv("LOTSE_RABBIT_TLS_CA_FILE", str(pki.ca_file))
    monkeypatch.setenv("LOTSE_RABBIT_TLS_CERT_FILE", str(pki.client_cert))
    monkeypatch.setenv("LOTSE_RABBIT_TLS_KEY_FILE", str(pki.client_key))


async def test_the_broker_connects_over_verified_mutual_tls(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = TlsListener(pki)
    tls_env(monkeypatch, pki, listener.port)
    settings = ServiceSettings()
    context = amqp_ssl_context(settings)
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    rt = build_runtime(settings)
    async with listener.serving():
        try:  # the listener speaks no AMQP: the connection fails after the handshake
            await asyncio.wait_for(rt.broker.connect(), timeout=10)
        except Exception as exc:
            failure: BaseException | None = exc
        else:
            failure = None
    await rt.broker.stop()
    await rt.client.close()
    print(f"broker after the handshake: {failure!r}")
    assert failure is not None
    assert listener.handshakes, "the broker opened no TLS connection"
    assert listener.handshakes[0]["client"] == {"commonName": "lotse-service"}
    assert listener.handshakes[0]["version"] in ("TLSv1.2", "TLSv1.3")


async def test_the_broker_refuses_a_server_its_ca_did_not_sign(
    pki: Pki, other_pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = TlsListener(other_pki)  # presents a certificate of another CA
    tls_env(monkeypatch, pki, listener.port)
    context = amqp_ssl_context(ServiceSettings())
    assert context is not None
    async with listener.serving():
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(
                "127.0.0.1", listener.port, ssl=context, server_hostname="localhost"
            )
    assert listener.handshakes == []


def test_dead_letter_desk_uses_the_same_context(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    from lotse_shared.ops.dead_letters import DeadLetterDesk

    tls_env(monkeypatch, pki, 5671)
    settings = ServiceSettings()
    security = broker_security(settings)
    assert security is not None
    assert security.use_ssl
    desk = DeadLetterDesk(settings.rabbit_url, settings.namespace, amqp_ssl_context(settings))
    assert desk.ssl_context is not None
    assert desk.ssl_context.verify_mode is ssl.CERT_REQUIRED


# ---- MongoDB ------------------------------------------------------------------------------


def test_mongo_options_from_settings(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    assert mongo_tls_options(ServiceSettings()) == {}
    monkeypatch.setenv("LOTSE_MONGO_TLS_CA_FILE", str(pki.ca_file))
    monkeypatch.setenv("LOTSE_MONGO_TLS_CERT_KEY_FILE", str(pki.client_combined))
    assert mongo_tls_options(ServiceSettings()) == {
        "tls": True,
        "tlsCAFile": str(pki.ca_file),
        "tlsCertificateKeyFile": str(pki.client_combined),
    }
    monkeypatch.setenv("LOTSE_MONGO_TLS_CA_FILE", "/nonexistent/ca.pem")
    with pytest.raises(ValidationError, match="LOTSE_MONGO_TLS_CA_FILE: no such file"):
        ServiceSettings()


async def test_the_mongo_client_connects_over_verified_mutual_tls(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = TlsListener(pki)
    monkeypatch.setenv(
        "LOTSE_MONGO_URL", f"mongodb://localhost:{listener.port}/?directConnection=true"
    )
    monkeypatch.setenv("LOTSE_MONGO_TLS_CA_FILE", str(pki.ca_file))
    monkeypatch.setenv("LOTSE_MONGO_TLS_CERT_KEY_FILE", str(pki.client_combined))
    settings = ServiceSettings()
    client = make_client(settings.mongo_url, **mongo_tls_options(settings))
    async with listener.serving():
        with pytest.raises(PyMongoError):  # the listener speaks no MongoDB
            await client.admin.command("ping")
    await client.close()
    assert listener.handshakes, "PyMongo opened no TLS connection"
    assert listener.handshakes[0]["client"] == {"commonName": "lotse-service"}


async def test_the_mongo_client_refuses_a_server_its_ca_did_not_sign(
    pki: Pki, other_pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = TlsListener(other_pki)
    monkeypatch.setenv(
        "LOTSE_MONGO_URL", f"mongodb://localhost:{listener.port}/?directConnection=true"
    )
    monkeypatch.setenv("LOTSE_MONGO_TLS_CA_FILE", str(pki.ca_file))
    settings = ServiceSettings()
    client = make_client(settings.mongo_url, **mongo_tls_options(settings))
    async with listener.serving():
        with pytest.raises(PyMongoError, match="certificate verify failed"):
            await client.admin.command("ping")
    await client.close()
    assert listener.handshakes == []


# ---- refusing to start ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"LOTSE_WEBHOOK_URL": "https://partner.example/hook"},
            "LOTSE_WEBHOOK_SECRET (or LOTSE_WEBHOOK_SECRET_FILE) is required",
        ),
        (
            {"LOTSE_SMTP_USERNAME": "lotse", "LOTSE_SMTP_PASSWORD": "Geheim-4711-x"},
            "LOTSE_SMTP_USERNAME without TLS",
        ),
        ({"LOTSE_SMTP_PASSWORD_FILE": "/nonexistent/pw"}, "LOTSE_SMTP_PASSWORD_FILE: cannot read"),
    ],
)
def test_the_process_refuses_to_start_naming_the_setting(env: dict[str, str], named: str) -> None:
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOTSE_")}
    result = subprocess.run(
        [sys.executable, "-m", "lotse_notifications"],
        env={**clean, **env, "LOTSE_HTTP_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "NotificationsSettings: refusing to start" in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert "Geheim-4711-x" not in result.stderr  # a value is never repeated


def test_the_broker_admin_password_can_come_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lotse_shared.ops.partners import BrokerAdmin

    assert BrokerAdmin.from_env().password == "guest"  # RabbitMQ's local default account
    (tmp_path / "admin").write_text("from-a-file\n")
    monkeypatch.setenv("LOTSE_RABBIT_ADMIN_PASSWORD_FILE", str(tmp_path / "admin"))
    assert BrokerAdmin.from_env().password == "from-a-file"
    monkeypatch.setenv("LOTSE_RABBIT_ADMIN_PASSWORD", "x")
    with pytest.raises(ValueError, match="both set"):
        BrokerAdmin.from_env()
