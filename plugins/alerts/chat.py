"""The ``teams`` and ``slack`` alert channels: incoming webhooks with readable messages.

Settings, under ``qlikSenseLicense.licenseMonitor.alert.destination``::

    teams:
      enable: true
      webhookURL: ${env:TEAMS_WEBHOOK_URL}   # a Teams Workflows or incoming webhook URL
    slack:
      enable: true
      webhookURL: ${env:SLACK_WEBHOOK_URL}

Teams gets an Adaptive Card (the format both Teams Workflows and the older incoming webhooks
accept); Slack gets Block Kit blocks with a plain ``text`` fallback for notifications. The URL
carries the channel's secret, so it is masked in every log line and error message, which name
only the host. ``caFile`` and ``rejectUnauthorized`` serve a proxy or test receiver with its own
CA.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from pydantic import Field, field_validator, model_validator

from agent.alerts import KIND_SERVER_STATUS, Alert
from agent.models import Point
from plugins.alerts._common import (
    FEATURES,
    Settings,
    call,
    emoji,
    send_each,
    url_host,
    verify_option,
)
from plugins.alerts.webhook import check_url

TEAMS = "teams"
SLACK = "slack"


class ChatSettings(Settings):
    enable: bool = False
    webhook_url: str | None = Field(default=None, alias="webhookURL")
    ca_file: Path | None = Field(default=None, alias="caFile")
    reject_unauthorized: bool = Field(default=True, alias="rejectUnauthorized")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @model_validator(mode="after")
    def _complete(self) -> ChatSettings:
        if self.enable and not self.webhook_url:
            raise ValueError("webhookURL is required when enable is true")
        return self


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts = []
    if alert.license_type:
        facts.append(("License type", alert.license_type))
    if alert.site:
        facts.append(("Site", alert.site))
    for key in ("available", "total", "excess", "daysUntilExpiry", "date"):
        value = alert.details.get(key)
        if value is not None:
            facts.append(
                (key.replace("_", " "), f"{value:g}" if isinstance(value, float) else str(value))
            )
    facts.append(("Time", f"{alert.time:%Y-%m-%d %H:%M} UTC"))
    return facts


def teams_message(alert: Alert) -> dict[str, Any]:
    """An Adaptive Card in a message, as Teams webhooks take it. Pure."""
    color = {"critical": "Attention", "info": "Good"}.get(alert.severity, "Warning")
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "size": "Medium",
                            "weight": "Bolder",
                            "color": color,
                            "wrap": True,
                            "text": f"{emoji(alert)} {alert.title}",
                        },
                        {"type": "TextBlock", "wrap": True, "text": alert.text},
                        {
                            "type": "FactSet",
                            "facts": [{"title": k, "value": v} for k, v in _facts(alert)],
                        },
                    ],
                },
            }
        ],
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats &, < and > as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(alert: Alert) -> dict[str, Any]:
    """Block Kit blocks with a plain-text fallback. Pure."""
    title = f"{emoji(alert)} {alert.title}"
    return {
        "text": _slack_escape(title),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(alert.text)}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"}
                    for k, v in _facts(alert)[:10]
                ],
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "sense-license-agent"}],
            },
        ],
    }


class ChatChannel:
    """Posts alerts to a Teams or Slack incoming webhook."""

    features = FEATURES

    def __init__(self, name: str, settings: ChatSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self.render = teams_message if name == TEAMS else slack_message
        ca = settings.ca_file
        if ca is not None and not ca.is_absolute():
            ca = base_dir / ca
        self.verify = verify_option(ca, settings.reject_unauthorized)
        self.session = requests.Session()

    def describe(self) -> str:
        host = url_host(self.settings.webhook_url or "")
        return f"{'Microsoft Teams' if self.name == TEAMS else 'Slack'} webhook at {host}"

    def write(self, points: Sequence[Point]) -> None:
        send_each(points, self.send)

    def send(self, alert: Alert) -> None:
        if alert.kind == KIND_SERVER_STATUS:
            return  # the recurring status is for machines (MQTT, webhooks), not for people
        call(
            "POST",
            self.settings.webhook_url or "",
            channel=self.name,
            json_body=self.render(alert),
            verify=self.verify,
            session=self.session,
        )

    def close(self) -> None:
        self.session.close()
