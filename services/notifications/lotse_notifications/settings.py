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
        default="http://127.0.0.1:8004/notifications",
        description="Link put into emails so the recipient can open the inbox.",
    )
    email_max_attempts: int = Field(default=6, description="Attempts before an email fails.")
