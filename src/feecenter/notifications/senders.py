"""Senders: how an outbox row leaves the system, one per channel.

A sender has a ``channel`` ("email" or "sms") and ``send(message)``, which
returns when the message was handed over and raises when it was not:
``PermanentSendError`` means "never retry" (the recipient was refused), any
other exception is temporary and retried (``service.deliver_pending``).

Shipped senders: ``SmtpEmailSender`` (stdlib smtplib, UTF-8) and
``LogSmsSender`` (appends a JSON line per SMS to a file and logs it; the
default until a real SMS gateway is plugged in). ``register_sender`` adds a
sender under a name; ``senders_from_settings`` builds the channel -> sender
map that ``deliver_pending`` takes.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Protocol

from feecenter.clock import business_time_text
from feecenter.config import Settings

log = logging.getLogger("feecenter.notifications")

CHANNELS = ("email", "sms")


class SendError(Exception):
    """A temporary failure: the row is retried later."""


class PermanentSendError(SendError):
    """The message can never be delivered (e.g. the recipient was refused): no retry."""


@dataclass(frozen=True)
class OutgoingMessage:
    outbox_id: int
    uin: int
    channel: str
    recipient: str
    template: str
    locale: str
    subject: str
    body: str  # for SMS: the SMS text
    at: datetime  # aware UTC, the sending time by the service clock


class Sender(Protocol):
    channel: str

    def send(self, message: OutgoingMessage) -> None:
        """Hand the message over; raise SendError/PermanentSendError (or anything) if not."""


class SmtpEmailSender:
    """Email through an SMTP server (optionally STARTTLS or SMTPS, optionally login)."""

    channel = "email"

    def __init__(self, host: str, port: int = 25, *, user: str | None = None,
                 password: str | None = None, from_addr: str = "Fee Center <feecenter@localhost>",
                 starttls: bool = False, use_ssl: bool = False, timeout_s: float = 30.0):
        if not host:
            raise ValueError("SMTP host is required")
        self.host, self.port = host, port
        self.user, self._password = user, password
        self.from_addr = from_addr
        self.starttls, self.use_ssl = starttls, use_ssl
        self.timeout_s = timeout_s
        self._domain = (parseaddr(from_addr)[1].rpartition("@")[2] or "localhost")

    def build(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage()  # policy: RFC-compliant headers, UTF-8 encoded where needed
        email["From"] = self.from_addr
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Date"] = format_datetime(message.at)
        # stable per outbox row, so a receiver can drop a copy resent after a crash
        email["Message-ID"] = f"<feecenter.outbox.{message.outbox_id}@{self._domain}>"
        email["X-Feecenter-Template"] = message.template
        # base64: CJK text stays compact and needs no 8BITMIME support from the server
        email.set_content(message.body, charset="utf-8", cte="base64")
        return email

    def deliver(self, email: EmailMessage) -> None:
        """Hand a built ``email`` (with attachments, if any) to the SMTP server."""
        context = ssl.create_default_context()
        if self.use_ssl:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            if self.starttls and not self.use_ssl:
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self._password or "")
            smtp.send_message(email)

    def send(self, message: OutgoingMessage) -> None:
        try:
            self.deliver(self.build(message))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(f"{addr}: {code} {msg.decode(errors='replace')}"
                             for addr, (code, msg) in exc.recipients.items())
            if codes and all(code >= 500 for code in codes):
                raise PermanentSendError(f"recipient refused: {text}") from exc
            raise SendError(f"recipient refused (temporary): {text}") from exc


class LogSmsSender:
    """The default SMS sender: one JSON line per SMS appended to a file, and a log line."""

    channel = "sms"

    def __init__(self, path: Path | str | None):
        self.path = Path(path) if path else None

    def send(self, message: OutgoingMessage) -> None:
        record = {"at": business_time_text(message.at), "outbox_id": message.outbox_id,
                  "uin": message.uin, "to": message.recipient, "template": message.template,
                  "locale": message.locale, "text": message.body}
        line = json.dumps(record, ensure_ascii=False, sort_keys=True)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:  # one write of one line: lines of concurrent workers never interleave
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        log.info("SMS to %s: %s", message.recipient, line)


# ---------------------------------------------------------------- registry

SenderFactory = Callable[[Settings], "Sender | None"]
_FACTORIES: dict[tuple[str, str], SenderFactory] = {}


def register_sender(channel: str, name: str, factory: SenderFactory) -> None:
    """Make a sender available as FEECENTER_SMS_SENDER=name (channel "sms"), say.

    ``factory(settings)`` returns the sender, or None when the channel is
    disabled by the settings.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    _FACTORIES[(channel, name)] = factory


def registered_senders() -> list[tuple[str, str]]:
    return sorted(_FACTORIES)


def smtp_sender(settings: Settings) -> SmtpEmailSender | None:
    """The project's SMTP sender from its settings; None when no SMTP host is set."""
    if not settings.smtp_host:
        return None  # email disabled: email rows stay pending
    return SmtpEmailSender(settings.smtp_host, settings.smtp_port, user=settings.smtp_user,
                           password=settings.smtp_password, from_addr=settings.smtp_from,
                           starttls=settings.smtp_starttls, use_ssl=settings.smtp_ssl,
                           timeout_s=settings.smtp_timeout_s)


def _sms_log_from_settings(settings: Settings) -> Sender:
    path = settings.sms_log_path or (Path(settings.home) / "sms.log" if settings.home else None)
    return LogSmsSender(path)


register_sender("email", "smtp", smtp_sender)
register_sender("sms", "log", _sms_log_from_settings)
register_sender("sms", "none", lambda _settings: None)


def senders_from_settings(settings: Settings) -> dict[str, Sender]:
    """channel -> sender for ``deliver_pending``; a disabled channel is left out."""
    choices = {"email": "smtp", "sms": settings.sms_sender}
    senders: dict[str, Sender] = {}
    for channel, name in choices.items():
        factory = _FACTORIES.get((channel, name))
        if factory is None:
            known = ", ".join(n for c, n in _FACTORIES if c == channel)
            raise ValueError(f"no {channel} sender named {name!r}; registered: {known}")
        sender = factory(settings)
        if sender is not None:
            senders[channel] = sender
    return senders
