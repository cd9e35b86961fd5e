"""Sending email over SMTP, telling temporary failures from permanent ones.

Transport security: ``starttls`` upgrades the connection and fails if the server
does not offer STARTTLS (no silent fallback to plain text); ``implicit_tls`` speaks
TLS from the first byte (port 465). The server's certificate and host name are
verified against ``tls_context`` (the system's CAs unless a CA file is configured).
Without TLS no STARTTLS is attempted at all, and credentials are sent only if the
settings explicitly allow a plain login.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from .domain.model import Notification
from .failures import PermanentDeliveryError, TemporaryDeliveryError


class TemporaryEmailError(TemporaryDeliveryError):
    """Worth trying again later: 4xx reply, connection refused, timeout."""


class PermanentEmailError(PermanentDeliveryError):
    """Will fail again: 5xx reply (unknown mailbox, rejected)."""


@dataclass(frozen=True)
class Email:
    to_name: str
    to_address: str
    subject: str
    body: str
    message_id_hint: str


def email_for(n: Notification, text: str) -> Email:
    """A notification as the email its recipient gets; ``text`` is its rendered body."""
    return Email(
        to_name=n.recipient_name,
        to_address=n.recipient_email,
        subject=n.subject,
        body=text,
        message_id_hint=str(n.notification_id),
    )


class SmtpSender:
    def __init__(
        self,
        host: str,
        port: int,
        mail_from: str,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if starttls and implicit_tls:
            raise ValueError("starttls and implicit_tls exclude each other")
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.tls_context = tls_context
        self.username = username
        self.password = password
        self.timeout_s = timeout_s

    async def send(self, email: Email) -> None:
        msg = EmailMessage()
        msg["From"] = self.mail_from
        msg["To"] = formataddr((email.to_name, email.to_address))
        msg["Subject"] = email.subject
        msg["Message-ID"] = make_msgid(idstring=email.message_id_hint, domain="lotse.local")
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(email.body)
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.host,
                port=self.port,
                use_tls=self.implicit_tls,
                start_tls=self.starttls,  # False: never upgrade; True: upgrade or fail
                tls_context=self.tls_context if (self.starttls or self.implicit_tls) else None,
                username=self.username,
                password=self.password,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            if codes and all(500 <= c < 600 for c in codes):
                raise PermanentEmailError(detail) from exc
            raise TemporaryEmailError(detail) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentEmailError(f"{exc.code} {exc.message}") from exc
            raise TemporaryEmailError(f"{exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TemporaryEmailError(f"{type(exc).__name__}: {exc}") from exc
