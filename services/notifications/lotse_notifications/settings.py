from datetime import time

from pydantic import Field

from lotse_shared.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    service_name: str = "notifications"
    http_port: int = Field(default=8004, description="HTTP port of notifications.")
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server (Mailpit in compose).")
    smtp_port: int = Field(default=1025, description="SMTP port.")
    smtp_starttls: bool = Field(default=False, description="Use STARTTLS.")
    smtp_username: str | None = Field(default=None, description="SMTP user, if any.")
    smtp_password: str | None = Field(default=None, description="SMTP password, if any.")
    smtp_timeout_s: float = Field(default=10.0, description="SMTP timeout per attempt.")
    mail_from: str = Field(
        default="Lotse <lotse@landkreis-kassel.example>", description="Sender of alert emails."
    )
    inbox_url: str = Field(
        default="http://127.0.0.1:8004/inbox",
        description="Link put into emails so the recipient can open the inbox.",
    )
    email_max_attempts: int = Field(default=6, description="Attempts before an email fails.")
    dispatch_poll_s: float = Field(
        default=1.0, description="How often due emails, webhooks, digests, escalations are sought."
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
    webhook_url: str | None = Field(
        default=None, description="Partner tool's webhook (POST, signed); unset: no webhook."
    )
    webhook_secret: str = Field(
        default="", description="HMAC-SHA256 key for X-Lotse-Signature (needed with a URL)."
    )
    webhook_timeout_s: float = Field(default=10.0, description="Webhook timeout per attempt.")
