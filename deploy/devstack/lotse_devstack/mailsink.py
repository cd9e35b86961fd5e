"""A local SMTP server that keeps what it receives (stands in for Mailpit)."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        scripted = self.sink._next_reply()
        if scripted is not None:
            return scripted
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.sink._add(ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if port == 0:
            from .ports import free_port

            port = free_port()
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._replies: list[str] = []
        self._controller = Controller(_Handler(self), hostname=host, port=port)

    def reply_next(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies (e.g. "451 try later")."""
        with self._lock:
            self._replies.extend(replies)

    def _next_reply(self) -> str | None:
        with self._lock:
            return self._replies.pop(0) if self._replies else None

    def _add(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._mails.append(mail)

    @property
    def mails(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._mails)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
