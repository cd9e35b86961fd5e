"""Base settings shared by every service.

Every setting is an environment variable with the ``LOTSE_`` prefix
(``LOTSE_RABBIT_URL``, ``LOTSE_MONGO_URL`` ...). Each service subclasses
:class:`ServiceSettings` in its own ``settings.py`` to add its own fields and
its default HTTP port; that subclass is the one place the service reads them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOTSE_", extra="ignore", frozen=True)

    service_name: str = Field(default="lotse", description="Name used in logs and events.")
    rabbit_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="AMQP URL of the RabbitMQ broker.",
    )
    mongo_url: str = Field(
        default="mongodb://127.0.0.1:27017/?replicaSet=rs0&retryWrites=false",
        description="MongoDB URL of a replica set (transactions are used). "
        "Keep retryWrites=false with SecantusDB.",
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
    outbox_poll_s: float = Field(
        default=1.0, description="How often the outbox relay looks for unsent events."
    )
    parked_max_age_s: float = Field(
        default=7 * 24 * 3600.0,
        description="How long an event about a not-yet-known person waits before it is "
        "dead-lettered.",
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    # Bearer tokens (issue #6): whose tokens are accepted, checked against which keys.
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
    # Partner API keys (issue #6, part 5): the file `lotse partner key create` writes.
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

    @property
    def database_name(self) -> str:
        return f"{self.namespace}_{self.service_name}"
