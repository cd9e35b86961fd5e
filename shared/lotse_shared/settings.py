"""Base settings shared by every service.

Every setting is an environment variable with the ``LOTSE_`` prefix
(``LOTSE_RABBIT_URL``, ``LOTSE_MONGO_URL`` ...). Each service subclasses
:class:`ServiceSettings` in its own ``settings.py`` to add its own fields and
its default HTTP port; that subclass is the one place the service reads them.

Secrets come from the environment or from files: every setting ``LOTSE_X`` may
instead be given as ``LOTSE_X_FILE``, the path of a file holding the value
(Docker/Kubernetes secrets; one trailing newline is dropped). Setting both is an
error. The repository holds no secret: defaults are local development values
(RabbitMQ's own guest account on 127.0.0.1) or empty.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class SecretFileSource(PydanticBaseSettingsSource):
    """``LOTSE_<NAME>_FILE=/run/secrets/x`` gives setting ``<name>`` the file's content."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", ""))
        env_name = f"{prefix}{field_name}".upper()
        path = os.environ.get(f"{env_name}_FILE")
        if path is None:
            return None, field_name, False
        if os.environ.get(env_name) is not None:
            raise ValueError(f"{env_name} and {env_name}_FILE are both set; set one of them")
        try:
            value = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{env_name}_FILE: cannot read {path}: {exc.strerror}") from None
        value = value.removesuffix("\n").removesuffix("\r")
        return value, field_name, self.field_is_complex(field)

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, is_complex = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = self.prepare_field_value(field_name, field, value, is_complex)
        return values


def env_value(name: str, default: str) -> str:
    """``name`` from the environment or, as ``<name>_FILE``, from a file (both: an error).

    For the few variables read outside a settings class (the operator CLI's broker
    admin password)."""
    path = os.environ.get(f"{name}_FILE")
    if path is None:
        return os.environ.get(name, default)
    if os.environ.get(name) is not None:
        raise ValueError(f"{name} and {name}_FILE are both set; set one of them")
    try:
        return Path(path).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except OSError as exc:
        raise ValueError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None


def require_file(setting: str, path: Path | None) -> None:
    """Refuse to start with a configured file that is not there (named by its variable)."""
    if path is not None and not path.is_file():
        raise ValueError(f"{setting}: no such file {path}")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOTSE_", extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            SecretFileSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    service_name: str = Field(default="lotse", description="Name used in logs and events.")
    rabbit_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="AMQP URL of the RabbitMQ broker (holds the password: give it as "
        "LOTSE_RABBIT_URL_FILE in production); amqps:// for TLS.",
    )
    rabbit_tls_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed the broker's certificate (amqps:// only); "
        "unset: the system's CAs.",
    )
    rabbit_tls_cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS with the broker."
    )
    rabbit_tls_key_file: Path | None = Field(
        default=None, description="Private key (PEM) of rabbit_tls_cert_file."
    )
    mongo_url: str = Field(
        default="mongodb://127.0.0.1:27017/?replicaSet=rs0&retryWrites=false",
        description="MongoDB URL of a replica set (transactions are used). "
        "Keep retryWrites=false with SecantusDB. May carry tls=true&tlsCAFile=… itself.",
    )
    mongo_tls: bool = Field(
        default=False, description="Connect to MongoDB over TLS (also implied by a TLS file)."
    )
    mongo_tls_ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the MongoDB servers' certificates."
    )
    mongo_tls_cert_key_file: Path | None = Field(
        default=None,
        description="Client certificate and its key in one PEM file (x.509 authentication).",
    )
    namespace: str = Field(
        default="lotse",
        description="Prefix of every exchange, queue and database; tests use a unique one.",
    )
    http_host: str = Field(default="127.0.0.1", description="HTTP bind address.")
    http_port: int = Field(default=8000, description="HTTP port.")
    prefetch: int = Field(
        default=32, description="Unacknowledged messages per consumer (bounds concurrency)."
    )
    transaction_concurrency: int = Field(
        default=4,
        description="Transactions one process runs at the same time; more handlers wait.",
    )
    batch_max: int = Field(
        default=1,
        ge=1,
        description="Group commit: at most this many messages applied in one database "
        "transaction; 1 (the default): each message in its own. Measured slower on "
        "SecantusDB in the main flow (docs/performance.md), so off unless asked for.",
    )
    batch_wait_ms: float = Field(
        default=5.0,
        ge=0,
        description="Group commit: how long a batch waits for more messages after its first.",
    )
    redelivery_delay_s: float = Field(
        default=1.0,
        description="Pause before a message is requeued when not even its retry could be "
        "scheduled (the broker itself is unreachable).",
    )
    retry_delays_s: list[float] = Field(
        default=[1.0, 10.0, 60.0, 600.0],
        description="Delays between attempts of a failing message (JSON list); after the "
        "last one it is dead-lettered with its error and attempt count.",
    )
    delivery_limit: int = Field(
        default=20,
        description="Quorum-queue x-delivery-limit: redeliveries (e.g. after crashes) before "
        "RabbitMQ itself dead-letters a message.",
    )
    outbox_recover_every_s: float = Field(
        default=10.0,
        gt=0,
        description="How often the outbox relay looks for events left unsent by a crashed "
        "process or a failed publish; its own commits it publishes at once.",
    )
    outbox_mark_every_s: float = Field(
        default=0.25,
        ge=0,
        description="The relay publishes each commit's events at once and marks them sent "
        "together at most this often: one write for all of them instead of one per round "
        "(0: after every round).",
    )
    parked_max_age_s: float = Field(
        default=7 * 24 * 3600.0,
        description="How long an event about a not-yet-known person waits before it is "
        "dead-lettered.",
    )
    parking_recheck_s: float = Field(
        default=30.0,
        gt=0,
        description="With nothing due in the parking lot, how often its sweep looks for "
        "events another process parked.",
    )
    partner_messages_keep_days: float = Field(
        default=30.0,
        gt=0,
        description="How long a partner can read what became of a message it sent "
        "(GET /partner/messages).",
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    metrics: bool = Field(
        default=True,
        description="Count for GET /metrics (the broker's and HTTP's middlewares); false "
        "only to measure what counting costs (make bench-observability).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: lines for people; json: one JSON object per line, with the "
        "correlation and event id of the event being handled.",
    )
    # Bearer tokens: whose tokens are accepted, checked against which keys.
    auth_issuer: str = Field(
        default="lotse-dev",
        description="Expected `iss` of bearer tokens, e.g. Keycloak's "
        "http://keycloak:8080/realms/lotse; `lotse token` issues 'lotse-dev'.",
    )
    auth_audience: str = Field(default="lotse", description="Expected `aud` of bearer tokens.")
    auth_jwks_url: str | None = Field(
        default=None,
        description="The issuer's JWKS, e.g. <realm>/protocol/openid-connect/certs. "
        "Set this or auth_jwks_file; with neither, every protected endpoint answers 401.",
    )
    auth_jwks_file: Path | None = Field(
        default=None, description="A local JWKS file (the dev keys `lotse token` writes)."
    )
    auth_district_claim: str = Field(
        default="district", description="The token claim that names the caller's district."
    )
    auth_leeway_s: float = Field(
        default=30.0, description="Clock skew tolerated on exp/nbf/iat, in seconds."
    )
    # Partner API keys: the file `lotse partner key create` writes.
    partner_keys_file: Path | None = Field(
        default=None,
        description="Partners' API keys (hashes only); unset: no API key is accepted.",
    )
    # Fault injection for the chaos tests (make chaos); leave empty in production.
    chaos_fail_event_ids: list[str] = Field(
        default=[], description="Testing only: handling of these event ids always fails."
    )
    chaos_hold_outbox: bool = Field(
        default=False, description="Testing only: the outbox relay does not run."
    )

    clock_file: Path | None = Field(
        default=None,
        description="Benchmarks only: read 'now' from this file (simulated time, "
        "see lotse_shared.clock); unset: the system clock.",
    )

    @model_validator(mode="after")
    def _transport_security(self) -> Self:
        tls_files = {
            "LOTSE_RABBIT_TLS_CA_FILE": self.rabbit_tls_ca_file,
            "LOTSE_RABBIT_TLS_CERT_FILE": self.rabbit_tls_cert_file,
            "LOTSE_RABBIT_TLS_KEY_FILE": self.rabbit_tls_key_file,
        }
        scheme = urlsplit(self.rabbit_url).scheme
        if scheme not in ("amqp", "amqps"):
            raise ValueError(f"LOTSE_RABBIT_URL: scheme must be amqp or amqps, not {scheme!r}")
        for setting, path in tls_files.items():
            if path is not None and scheme != "amqps":
                raise ValueError(f"{setting} needs an amqps:// LOTSE_RABBIT_URL")
            require_file(setting, path)
        if (self.rabbit_tls_cert_file is None) != (self.rabbit_tls_key_file is None):
            raise ValueError("LOTSE_RABBIT_TLS_CERT_FILE and LOTSE_RABBIT_TLS_KEY_FILE go together")
        require_file("LOTSE_MONGO_TLS_CA_FILE", self.mongo_tls_ca_file)
        require_file("LOTSE_MONGO_TLS_CERT_KEY_FILE", self.mongo_tls_cert_key_file)
        return self

    @property
    def database_name(self) -> str:
        return f"{self.namespace}_{self.service_name}"
