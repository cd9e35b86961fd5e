from datetime import time
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, model_validator

from lotse_shared.settings import ServiceSettings, require_file

from .webhook import webhook_key

CadenceKind = Literal[
    "suggestions_ready", "course_completed", "course_dropped", "enrolled", "attendance_at_risk"
]
CadenceName = Literal["immediate", "hourly", "daily"]


class DistrictAlertDefaults(BaseModel):
    cadence: dict[CadenceKind, CadenceName] | None = None
    daily_email_cap: int | None = Field(default=None, ge=0)


class NotificationsSettings(ServiceSettings):
    service_name: str = "notifications"
    http_port: int = Field(default=8004, description="HTTP port of notifications.")
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server (Mailpit in compose).")
    smtp_port: int = Field(default=1025, description="SMTP port.")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade to TLS with STARTTLS (required: no fallback)."
    )
    smtp_tls: bool = Field(
        default=False, description="Implicit TLS from the first byte (SMTPS, port 465)."
    )
    smtp_tls_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed the SMTP server's certificate; unset: system CAs.",
    )
    smtp_username: str | None = Field(default=None, description="SMTP user, if any.")
    smtp_password: str | None = Field(
        default=None,
        description="SMTP password (required with a user; better LOTSE_SMTP_PASSWORD_FILE).",
    )
    smtp_allow_plain_login: bool = Field(
        default=False,
        description="Allow logging in without TLS (a trusted relay on the same host only).",
    )
    smtp_timeout_s: float = Field(default=10.0, description="SMTP timeout per attempt.")
    mail_from: str = Field(
        default="Lotse <lotse@landkreis-kassel.example>", description="Sender of alert emails."
    )
    inbox_url: str = Field(
        default="http://127.0.0.1:8000/inbox",
        description="The portal's inbox, `<portal>/inbox`, linked from digest emails; an "
        "alert about one person links to their file beside it, `<portal>/people/<id>`.",
    )
    email_max_attempts: int = Field(default=6, description="Attempts before an email fails.")
    dispatch_poll_s: float = Field(
        default=1.0,
        description="While there is work, how often due emails, webhooks, digests and "
        "escalations are sought.",
    )
    dispatch_gather_s: float = Field(
        default=0.25,
        ge=0,
        description="A new notification starts the dispatcher's round this much later, so "
        "the notifications made meanwhile are emailed in the same round (one claim and one "
        "record for all of them; 0: at once).",
    )
    dispatch_recheck_s: float = Field(
        default=30.0,
        gt=0,
        description="With nothing due, the longest the dispatcher sleeps before it looks "
        "again (for what another replica made, or a crashed one left claimed).",
    )
    office_hours_start: time = Field(
        default=time(8, 0), description="Email goes out from (Europe/Berlin, Mon-Fri)."
    )
    office_hours_end: time = Field(
        default=time(18, 0), description="Email waits from (Europe/Berlin) to the next office day."
    )
    quiet_hours: bool = Field(
        default=True,
        description="Email waits for office hours; false sends at once (demo, benchmark).",
    )
    digest_at: time = Field(
        default=time(16, 0), description="Daily digest email of low-priority items (Berlin)."
    )
    escalate_after_s: float = Field(
        default=24 * 3600.0,
        description="An important alert unread this long also goes to the coordinator.",
    )
    coordinators: dict[str, str] = Field(
        default={"kassel": "bildungskoordination@landkreis-kassel.example"},
        description="District -> education coordinator's address, for escalation when the "
        "person has no coordinator among their contacts (JSON).",
    )
    routing_overrides: dict[str, dict[str, list[str]]] = Field(
        default={},
        description='Per district, kind -> roles told, e.g. {"kassel": {"enrolled": '
        '["caseworker"]}} (JSON); replaces that row of the routing table.',
    )
    attendance_risk_threshold: float = Field(
        default=0.8, ge=0, le=1, description="Attendance rate below which a person is at risk."
    )
    attendance_flip_flop_window_s: float = Field(
        default=7 * 24 * 3600.0,
        description="After an attendance alert, further drops within this time stay quiet.",
    )
    announce_min_score: float = Field(
        default=20.0,
        description="Suggestions scoring below this are not announced (kept in the person's "
        "file at placement); 20 is what nearness alone earns, of about 95.",
    )
    suggestions_wait_s: float = Field(
        default=120.0,
        ge=0,
        description="A completion's email waits this long for its suggestions, so both go "
        "out as one alert; later ones are added to the same inbox item.",
    )
    alert_cadence: dict[CadenceKind, CadenceName] = Field(
        default={"suggestions_ready": "daily", "enrolled": "daily"},
        description="Default cadence per kind for recipients who chose none (JSON); "
        "suggestions_ready covers suggestions caused by new openings or profile changes. "
        "Critical alerts are always immediate.",
    )
    daily_email_cap: int = Field(
        default=10,
        ge=0,
        description="Immediate emails per recipient and day (Berlin); more go into the next "
        "digest. Critical alerts and digests do not count; 0: no cap.",
    )
    district_alert_defaults: dict[str, DistrictAlertDefaults] = Field(
        default={},
        description='Per district: {"cadence": {kind: cadence}, "daily_email_cap": n} '
        "(JSON), replacing LOTSE_ALERT_CADENCE / LOTSE_DAILY_EMAIL_CAP there.",
    )
    critical_hours_start: time = Field(
        default=time(7, 0), description="Critical email goes out at once from (Berlin) ..."
    )
    critical_hours_end: time = Field(
        default=time(21, 0), description="... until; at night it waits for the start."
    )
    critical_on_weekends: bool = Field(
        default=True, description="Critical email goes out on Saturdays and Sundays too."
    )
    webhook_url: str | None = Field(
        default=None, description="Partner tool's webhook (POST, signed); unset: no webhook."
    )
    webhook_secret: str = Field(
        default="",
        description="The webhook signing key, `whsec_<base64>` (Standard Webhooks) or a "
        "plain string whose UTF-8 bytes are the key; required with a URL, no default "
        "(LOTSE_WEBHOOK_SECRET or LOTSE_WEBHOOK_SECRET_FILE).",
    )
    webhook_timeout_s: float = Field(default=10.0, description="Webhook timeout per attempt.")

    @model_validator(mode="after")
    def _secrets_and_tls(self) -> Self:
        if self.smtp_starttls and self.smtp_tls:
            raise ValueError("LOTSE_SMTP_STARTTLS and LOTSE_SMTP_TLS exclude each other")
        if self.smtp_tls_ca_file is not None and not (self.smtp_starttls or self.smtp_tls):
            raise ValueError("LOTSE_SMTP_TLS_CA_FILE needs LOTSE_SMTP_STARTTLS or LOTSE_SMTP_TLS")
        require_file("LOTSE_SMTP_TLS_CA_FILE", self.smtp_tls_ca_file)
        if self.smtp_username and not self.smtp_password:
            raise ValueError(
                "LOTSE_SMTP_PASSWORD (or LOTSE_SMTP_PASSWORD_FILE) is required with "
                "LOTSE_SMTP_USERNAME"
            )
        if (
            self.smtp_username
            and not (self.smtp_starttls or self.smtp_tls)
            and not self.smtp_allow_plain_login
        ):
            raise ValueError(
                "LOTSE_SMTP_USERNAME without TLS would send the password in clear: set "
                "LOTSE_SMTP_STARTTLS or LOTSE_SMTP_TLS (or LOTSE_SMTP_ALLOW_PLAIN_LOGIN)"
            )
        if self.webhook_url:
            if not self.webhook_secret:
                raise ValueError(
                    "LOTSE_WEBHOOK_SECRET (or LOTSE_WEBHOOK_SECRET_FILE) is required with "
                    "LOTSE_WEBHOOK_URL"
                )
            try:
                webhook_key(self.webhook_secret)
            except ValueError as e:
                raise ValueError(f"LOTSE_WEBHOOK_SECRET: {e}") from None
            scheme = urlsplit(self.webhook_url).scheme
            if scheme not in ("http", "https"):
                raise ValueError(f"LOTSE_WEBHOOK_URL: must be https or http, not {scheme!r}")
        return self
