"""The ``email`` alert channel: alerts as plain-text e-mail over SMTP.

Settings, under ``qlikSenseLicense.licenseMonitor.alert.destination.email``::

    email:
      enable: true
      from: license-agent@example.com
      to: [qlik-admins@example.com]
      subjectPrefix: "[Qlik licenses]"
      smtp:
        host: smtp.example.com
        port: 587
        security: starttls        # starttls (587), tls (465) or none (25, a relay you trust)
        username: license-agent   # optional; with password: ${env:SMTP_PASSWORD}
        password: ${env:SMTP_PASSWORD}
        rejectUnauthorized: true  # check the server's certificate
        caFile: ./certs/smtp-ca.pem  # optional: the CA of an internal SMTP server

A login the server refuses, a certificate that does not verify, or a server that is down is an
error that names the server and the reason (never the password); the outbox keeps the alert for
the next delivery.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.alerts import KIND_SERVER_STATUS, Alert
from agent.models import DestinationError, Point
from agent.text import printable
from plugins.alerts._common import FEATURES, Settings, Unreachable, plain_text, send_each

NAME = "email"
TIMEOUT = 20


class Smtp(Settings):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    reject_unauthorized: bool = Field(default=True, alias="rejectUnauthorized")
    ca_file: Path | None = Field(default=None, alias="caFile")

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


class EmailSettings(Settings):
    enable: bool = False
    sender: str = Field(default="", alias="from")
    to: list[str] = Field(default_factory=list)
    subject_prefix: str = Field(default="[Qlik Sense licenses]", alias="subjectPrefix")
    smtp: Smtp | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _complete(self) -> EmailSettings:
        if self.enable:
            missing = [
                key
                for key, value in (("smtp", self.smtp), ("from", self.sender), ("to", self.to))
                if not value
            ]
            if missing:
                raise ValueError(
                    f"e-mail alerts need {', '.join(missing)}: set smtp.host, from and to"
                )
        return self


def email_message(alert: Alert, settings: EmailSettings) -> EmailMessage:
    message = EmailMessage()
    # One line, controls escaped: a title may quote a name from QRS (a third-party alert), and
    # a line break in a header would be refused (or, elsewhere, start a header of its own).
    message["Subject"] = printable(f"{settings.subject_prefix} {alert.title}".strip(), 250)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(alert.time.timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(domain="sense-license-agent")
    message.set_content(plain_text(alert))
    return message


class EmailChannel:
    name = NAME
    features = FEATURES

    def __init__(self, settings: EmailSettings, base_dir: Path) -> None:
        self.settings = settings
        self.base_dir = base_dir

    @property
    def smtp(self) -> Smtp:
        assert self.settings.smtp is not None  # the settings check requires it when enabled
        return self.settings.smtp

    @property
    def where(self) -> str:
        return f"{self.smtp.host}:{self.smtp.effective_port}"

    def describe(self) -> str:
        return f"e-mail to {len(self.settings.to)} recipient(s) via {self.where}"

    def _context(self) -> ssl.SSLContext:
        smtp = self.smtp
        ca = smtp.ca_file
        if ca is not None and not ca.is_absolute():
            ca = self.base_dir / ca
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if not smtp.reject_unauthorized:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def write(self, points: Sequence[Point]) -> None:
        send_each(points, self.send)

    def send(self, alert: Alert) -> None:
        if alert.kind == KIND_SERVER_STATUS:
            return
        smtp = self.smtp
        message = email_message(alert, self.settings)
        try:
            if smtp.security == "tls":
                server: smtplib.SMTP = smtplib.SMTP_SSL(
                    smtp.host, smtp.effective_port, timeout=TIMEOUT, context=self._context()
                )
            else:
                server = smtplib.SMTP(smtp.host, smtp.effective_port, timeout=TIMEOUT)
            with server:
                if smtp.security == "starttls":
                    server.starttls(context=self._context())
                if smtp.username:
                    server.login(smtp.username, smtp.password or "")
                server.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DestinationError(
                f"email: the SMTP server {self.where} refused the login of"
                f" {smtp.username!r}: {exc.smtp_code} {_text(exc.smtp_error)}; check"
                " smtp.username and smtp.password"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DestinationError(
                f"email: the SMTP server {self.where} does not support that: {exc}; check"
                " smtp.security (starttls, tls or none)"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DestinationError(
                f"email: the SMTP server {self.where} refused the recipients"
                f" {', '.join(exc.recipients)}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DestinationError(
                f"email: the SMTP server {self.where} answered {exc.smtp_code}"
                f" {_text(exc.smtp_error)}"
            ) from None
        except ssl.SSLError as exc:
            raise Unreachable(
                f"email: TLS with {self.where} failed ({exc.reason or exc}); check smtp.caFile"
                " or smtp.security"
            ) from None
        except smtplib.SMTPException as exc:
            raise DestinationError(f"email: cannot send through {self.where}: {exc}") from None
        except OSError as exc:  # no connection, or no answer in time
            raise Unreachable(
                f"email: cannot send through {self.where}: {exc.strerror or exc}"
            ) from None

    def close(self) -> None:
        pass


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
