"""Email over TLS against a real SMTP server (aiosmtpd) with a certificate made here.

STARTTLS and implicit TLS deliver, encrypted, and log in only after the upgrade; a
server whose certificate another CA signed, or one that offers no STARTTLS, gets
nothing (no fallback to plain text). Writes ``tests/artifacts/smtp-tls.json``.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from lotse_devstack.ports import free_port
from lotse_notifications.email import Email, SmtpSender, TemporaryEmailError
from lotse_shared.transport import tls_client_context
from tests.tls import Pki, make_pki

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
USER, PASSWORD = "lotse", "correct horse battery staple"


@dataclass
class Received:
    content: bytes
    tls_version: str | None
    logged_in_as: str | None


@dataclass
class TlsMailServer:
    """aiosmtpd requiring STARTTLS (or speaking TLS at once) and a login over TLS."""

    pki: Pki
    implicit: bool = False
    offer_starttls: bool = True
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, over TLS)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        ssl_object = server.transport.get_extra_info("ssl_object")
        self.received.append(
            Received(
                envelope.content,
                ssl_object.version() if ssl_object is not None else None,
                session.auth_data.decode() if session.authenticated else None,
            )
        )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        over_tls = server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((auth_data.login.decode(), over_tls))
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
        return AuthResult(success=ok, auth_data=auth_data.login if ok else None)

    def start(self) -> Controller:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        kwargs: dict[str, Any] = {
            "authenticator": self.authenticate,
            "auth_require_tls": True,
        }
        if self.implicit:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; here it is TLS from the start
            kwargs.update(ssl_context=context, auth_require_tls=False)
        elif self.offer_starttls:
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            kwargs["auth_require_tls"] = False
        controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        controller.start()
        return controller


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("smtp-pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("smtp-other-pki"), name="other")


@pytest.fixture
def server(pki: Pki, request: pytest.FixtureRequest) -> Iterator[TlsMailServer]:
    srv = TlsMailServer(pki, **getattr(request, "param", {}))
    controller = srv.start()
    yield srv
    controller.stop()


MEASURED: dict[str, int] = {"smtp_tls_delivered": 0, "smtp_tls_refused": 0}


@pytest.fixture(scope="module", autouse=True)
def write_artifact() -> Iterator[None]:
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "smtp-tls.json").write_text(json.dumps(MEASURED))


def sender(server: TlsMailServer, ca: Path, **tls: bool) -> SmtpSender:
    return SmtpSender(
        "localhost",
        server.port,
        "Lotse <lotse@landkreis-kassel.example>",
        tls_context=tls_client_context(str(ca)),
        username=USER,
        password=PASSWORD,
        timeout_s=5,
        **tls,
    )


def mail() -> Email:
    marker = uuid.uuid4().hex
    return Email("Petra Schmidt", "petra@kassel.example", f"Test {marker}", marker, marker)


async def test_starttls_delivers_encrypted_and_logs_in_after_the_upgrade(
    server: TlsMailServer, pki: Pki
) -> None:
    email = mail()
    await sender(server, pki.ca_file, starttls=True).send(email)
    [got] = server.received
    assert email.body.encode() in got.content
    assert got.tls_version in ("TLSv1.2", "TLSv1.3")
    assert got.logged_in_as == USER
    assert server.logins == [(USER, True)]
    MEASURED["smtp_tls_delivered"] += 1


@pytest.mark.parametrize("server", [{"implicit": True}], indirect=True)
async def test_implicit_tls_delivers_encrypted(server: TlsMailServer, pki: Pki) -> None:
    email = mail()
    await sender(server, pki.ca_file, implicit_tls=True).send(email)
    [got] = server.received
    assert email.body.encode() in got.content
    assert got.tls_version in ("TLSv1.2", "TLSv1.3")
    assert server.logins == [(USER, True)]
    MEASURED["smtp_tls_delivered"] += 1


async def test_a_certificate_of_another_ca_is_refused(
    server: TlsMailServer, other_pki: Pki
) -> None:
    with pytest.raises(TemporaryEmailError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        await sender(server, other_pki.ca_file, starttls=True).send(mail())
    assert server.received == []
    assert server.logins == []  # the password never left
    MEASURED["smtp_tls_refused"] += 1


async def test_a_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    elsewhere = make_pki(tmp_path / "pki", hostname="mail.elsewhere.example", ip_san=False)
    server = TlsMailServer(elsewhere)
    controller = server.start()
    try:
        wrong = SmtpSender(
            "127.0.0.1",  # the certificate names mail.elsewhere.example only
            server.port,
            "lotse@landkreis-kassel.example",
            starttls=True,
            tls_context=tls_client_context(str(elsewhere.ca_file)),
            timeout_s=5,
        )
        with pytest.raises(TemporaryEmailError, match="mismatch"):
            await wrong.send(mail())
    finally:
        controller.stop()
    assert server.received == []
    MEASURED["smtp_tls_refused"] += 1


@pytest.mark.parametrize("server", [{"offer_starttls": False}], indirect=True)
async def test_no_fallback_to_plain_text_when_starttls_is_missing(
    server: TlsMailServer, pki: Pki
) -> None:
    with pytest.raises(TemporaryEmailError, match=r"STARTTLS|starttls"):
        await sender(server, pki.ca_file, starttls=True).send(mail())
    assert server.received == []
    assert server.logins == []
    MEASURED["smtp_tls_refused"] += 1
