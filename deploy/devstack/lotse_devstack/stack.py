"""Start the whole stack as local processes, and stop it cleanly.

- MongoDB: ``LOTSE_MONGO_URL`` if given, else a SecantusDB server in a temp dir;
- SMTP: ``LOTSE_SMTP_HOST``/``LOTSE_SMTP_PORT`` if given, else an in-process sink;
- RabbitMQ: ``LOTSE_RABBIT_URL`` (default amqp://guest:guest@127.0.0.1:5672/);
- the four services, each ``python -m lotse_<service>`` with its own port;
- tokens: the services trust the local dev keys (``lotse token`` signs with them)
  unless ``LOTSE_AUTH_JWKS_URL`` names an identity provider (Keycloak, say);
- with ``portal=True``: a local OpenID provider (in this process; its access tokens
  are signed with the same dev keys) and the portal, ``python -m lotse_portal``,
  signing users in through it (docs/sign-in.md).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from .children import die_with_parent
from .mailsink import MailSink
from .oidc import LocalIdentityProvider
from .ports import free_port, port_open
from .secantus import mongo_url as secantus_url
from .secantus import start_secantus, stop_secantus
from .tokens import DevIssuer, default_dir

SERVICES = ("intake", "courses", "placement", "notifications")
DEFAULT_PORTS = {
    "intake": 8001,
    "courses": 8002,
    "placement": 8003,
    "notifications": 8004,
    "portal": 8000,
    "oidc": 8009,
}


@dataclass
class StackConfig:
    namespace: str = "lotse"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    rabbit_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongo_url: str | None = None
    smtp: tuple[str, int] | None = None
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    dev_keys: Path | None = None  # default: .lotse/dev-keys (or LOTSE_DEV_KEYS)
    portal: bool = False  # the caseworkers' portal and the local OpenID provider

    @classmethod
    def from_env(cls) -> StackConfig:
        smtp_host = os.environ.get("LOTSE_SMTP_HOST")
        return cls(
            namespace=os.environ.get("LOTSE_NAMESPACE", "lotse"),
            rabbit_url=os.environ.get("LOTSE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            mongo_url=os.environ.get("LOTSE_MONGO_URL") or None,
            smtp=(smtp_host, int(os.environ.get("LOTSE_SMTP_PORT", "25"))) if smtp_host else None,
        )


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.workdir = Path(tempfile.mkdtemp(prefix="lotse-stack-"))
        self.log_dir = config.log_dir or self.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.mongo_url = config.mongo_url or ""
        self.mail_sink: MailSink | None = None
        self.smtp = config.smtp
        self._mongo_proc: subprocess.Popen[bytes] | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.issuer = DevIssuer(config.dev_keys or default_dir())
        self.idp: LocalIdentityProvider | None = None
        # one key for the stack's life: the portal's sessions survive its restart
        self.session_key = Fernet.generate_key().decode()
        self.oidc_client_secret = secrets.token_urlsafe(16)

    def token(self, role: str, user: str, district: str = "kassel") -> str:
        """A token the stack's services accept (signed with the dev keys)."""
        return self.issuer.token(role, user=user, district=district)

    def auth_env(self) -> dict[str, str]:
        if os.environ.get("LOTSE_AUTH_JWKS_URL"):  # a real identity provider
            return {}
        return self.issuer.service_env()

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.config.ports[service]}"

    # --- infrastructure -------------------------------------------------------------
    def _start_mongo(self) -> None:
        if self.mongo_url:
            return
        port = free_port()
        self._mongo_proc = start_secantus(
            port, self.workdir / "db", self.log_dir / "secantusdb.log"
        )
        self.mongo_url = secantus_url(port)

    def _start_smtp(self) -> None:
        if self.smtp is not None:
            return
        self.mail_sink = MailSink()
        self.mail_sink.start()
        self.smtp = (self.mail_sink.host, self.mail_sink.port)

    def _start_idp(self) -> None:
        self.idp = LocalIdentityProvider(issuer=self.issuer, port=self.config.ports["oidc"])
        self.idp.start()

    def portal_env(self) -> dict[str, str]:
        assert self.idp is not None
        return {
            "LOTSE_OIDC_DISCOVERY_URL": self.idp.discovery_url,
            "LOTSE_OIDC_CLIENT_ID": "lotse-portal",
            # confidential, as the Keycloak client is: the provider renews tokens only for
            # a client that authenticates (the local one takes any secret)
            "LOTSE_OIDC_CLIENT_SECRET": self.oidc_client_secret,
            "LOTSE_SESSION_KEY": self.session_key,
            **{f"LOTSE_{s.upper()}_URL": self.url(s) for s in SERVICES},
        }

    # --- services ---------------------------------------------------------------------
    def service_env(self, service: str, port: int | None = None) -> dict[str, str]:
        assert self.smtp is not None
        port = port or self.config.ports[service]
        return {
            **os.environ,
            "LOTSE_NAMESPACE": self.config.namespace,
            "LOTSE_RABBIT_URL": self.config.rabbit_url,
            "LOTSE_MONGO_URL": self.mongo_url,
            "LOTSE_HTTP_PORT": str(port),
            "LOTSE_SMTP_HOST": self.smtp[0],
            "LOTSE_SMTP_PORT": str(self.smtp[1]),
            # the inbox is the portal's (links in emails lead there, portal or not)
            "LOTSE_INBOX_URL": "http://127.0.0.1:"
            f"{self.config.ports.get('portal', DEFAULT_PORTS['portal'])}/inbox",
            # the local stack shows the flow at any hour: no waiting for office hours
            "LOTSE_QUIET_HOURS": "false",
            **self.auth_env(),
            **self.config.extra_env,
        }

    def start_service(
        self,
        service: str,
        replica: int = 1,
        *,
        python_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Start a service process; replica 2, 3, ... competes on the same queues
        under the name ``<service>-<replica>`` with a free HTTP port of its own.
        ``python_args`` go before ``-m lotse_<service>`` (a profiler, say); ``env``
        adds to or overrides its settings."""
        name = service if replica == 1 else f"{service}-{replica}"
        if name not in self.config.ports:
            self.config.ports[name] = free_port()
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(
            [sys.executable, *python_args, "-m", f"lotse_{service}"],
            env={
                **self.service_env(service, self.config.ports[name]),
                **(self.portal_env() if service == "portal" else {}),
                **(env or {}),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        return name

    def stop_service(
        self,
        service: str,
        *,
        kill: bool = False,
        timeout_s: float = 30,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        """Stop gracefully (``stop_signal``; SIGINT lets a profiler wrapping the
        process write its report) or, with ``kill``, at once."""
        proc = self.procs.pop(service, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else stop_signal)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def wait_healthy(self, services: tuple[str, ...] = SERVICES, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(services)
        while pending:
            for service in sorted(pending):
                proc = self.procs[service]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{service} exited with {proc.returncode}; see {self.log_dir}/{service}.log"
                    )
                try:
                    if httpx.get(f"{self.url(service)}/readyz", timeout=1).status_code == 200:
                        pending.discard(service)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout_s}s: {sorted(pending)}")
            time.sleep(0.2)

    @property
    def processes(self) -> tuple[str, ...]:
        return (*SERVICES, "portal") if self.config.portal else SERVICES

    def start(self) -> None:
        for service in (*self.processes, *(("oidc",) if self.config.portal else ())):
            port = self.config.ports[service]
            if port_open("127.0.0.1", port):
                raise RuntimeError(f"port {port} for {service} is taken; is a stack running?")
        self._start_mongo()
        self._start_smtp()
        if self.config.portal:
            self._start_idp()
        for service in self.processes:
            self.start_service(service)
        self.wait_healthy(self.processes)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop_service(name)
        if self.idp is not None:
            self.idp.stop()
        if self.mail_sink is not None:
            self.mail_sink.stop()
        if self._mongo_proc is not None:
            stop_secantus(self._mongo_proc)
        shutil.rmtree(self.workdir / "db", ignore_errors=True)

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
