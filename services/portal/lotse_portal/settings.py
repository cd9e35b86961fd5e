"""The portal's settings, read once (``LOTSE_*`` variables; secrets also as ``*_FILE``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lotse_shared.settings import SecretFileSource


class PortalSettings(BaseSettings):
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
        return (init_settings, env_settings, SecretFileSource(settings_cls))

    service_name: str = "portal"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-Proto/For are believed (the gateway); "
        "a session cookie is marked Secure when the request came in over https.",
    )

    # Sign-in (OpenID Connect, authorization code flow with PKCE)
    oidc_discovery_url: HttpUrl = Field(
        description="The provider's .well-known/openid-configuration, e.g. "
        "http://keycloak:8080/realms/lotse/.well-known/openid-configuration."
    )
    oidc_client_id: str = "lotse-portal"
    oidc_client_secret: str | None = Field(
        default=None, description="Confidential clients (Keycloak); unset: a public client."
    )
    oidc_scope: str = "openid profile email"

    # Sessions: an encrypted, signed cookie (Fernet), so any portal replica can read it
    session_key: str | None = Field(
        default=None,
        description="A Fernet key (32 url-safe base64 bytes); unset: one per process, and "
        "every session ends when the portal restarts.",
    )
    session_max_age_s: int = Field(default=8 * 3600, description="A working day.")

    # The services the portal reads and writes through, with the user's own token
    intake_url: str = "http://127.0.0.1:8001"
    courses_url: str = "http://127.0.0.1:8002"
    placement_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    service_timeout_s: float = Field(
        default=5.0, description="A service slower than this is shown as unavailable."
    )
