"""Registers the built-in alert channels (``mqtt``, ``webhook``, ``teams``, ``slack``,
``email``) as destinations of the ``alert`` feature, and the Butler sections they read.

A channel is enabled when something is routed to it: Butler's ``mqttConfig.enable`` with
``serverLicenseMonitor.destination.mqtt.enable`` or ``licenseMonitor.alert.destination.mqtt``;
likewise for webhooks; Teams, Slack and e-mail by their own ``enable``. Secrets in the channels'
settings (passwords, webhook URLs, which carry their token) are registered for masking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent.hookspecs import hookimpl
from agent.logging import register_secret
from agent.models import Destination, SettingsSection
from plugins.alerts.chat import SLACK, TEAMS, ChatChannel
from plugins.alerts.early_warning import LicenseAlert, settings_of
from plugins.alerts.email import EmailChannel
from plugins.alerts.mqtt import MqttChannel, MqttConfig
from plugins.alerts.webhook import WebhookChannel, WebhookNotification

if TYPE_CHECKING:
    from agent.config import AgentConfig

MQTT_PATH = "mqttConfig"
WEBHOOK_PATH = "webhookNotification"
SERVER_LICENSE_PATH = "qlikSenseLicense.serverLicenseMonitor"


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [
        # Butler's own sections: a shared Butler file keeps them when this plugin is disabled.
        SettingsSection(MQTT_PATH, MqttConfig, per_site=False, shared_with_butler=True),
        SettingsSection(WEBHOOK_PATH, WebhookNotification, per_site=False, shared_with_butler=True),
    ]


def _server_license_routes(config: AgentConfig) -> tuple[Any, Any]:
    """``serverLicenseMonitor.destination.mqtt`` and ``.webhook`` (Butler's keys)."""
    server = config.settings(SERVER_LICENSE_PATH)
    destination = getattr(server, "destination", None)
    enabled = bool(getattr(server, "enable", False))
    mqtt = getattr(destination, "mqtt", None) if enabled else None
    webhook = getattr(destination, "webhook", None) if enabled else None
    return mqtt, webhook


def channels(config: AgentConfig) -> list[Destination]:
    """The alert channels the config enables. Pure apart from registering secrets."""
    alert: LicenseAlert = settings_of(config)
    routes = alert.destination if alert.enable else None
    server_mqtt, server_webhook = _server_license_routes(config)
    found: list[Destination] = []

    mqtt: MqttConfig = config.settings(MQTT_PATH) or MqttConfig()
    server_license = bool(server_mqtt and server_mqtt.enable)
    access = bool(routes and routes.mqtt.enable)
    if mqtt.enable and (server_license or access):
        register_secret(mqtt.password)
        found.append(
            MqttChannel(
                mqtt, server_license=server_license, access_alerts=access, base_dir=config.base_dir
            )
        )

    hooks: WebhookNotification = config.settings(WEBHOOK_PATH) or WebhookNotification()
    use_server = bool(server_webhook and server_webhook.enable)
    recurring = use_server and bool(server_webhook.send_recurring.enable)
    expiry = use_server and bool(server_webhook.send_alert.enable)
    access = bool(routes and routes.webhook.enable)
    if hooks.enable and (recurring or expiry or access):
        for group in hooks.groups().values():
            for webhook in group.webhooks:
                register_url(webhook.webhook_url)
        found.append(
            WebhookChannel(
                hooks,
                send_recurring=recurring,
                send_alert=expiry,
                access_alerts=access,
                base_dir=config.base_dir,
                state_dir=config.state_dir,
            )
        )

    if routes is not None:
        for name, chat in ((TEAMS, routes.teams), (SLACK, routes.slack)):
            if chat.enable:
                register_url(chat.webhook_url)
                found.append(ChatChannel(name, chat, config.base_dir))
        if routes.email.enable:
            if routes.email.smtp is not None:
                register_secret(routes.email.smtp.password)
            found.append(EmailChannel(routes.email, config.base_dir))
    return found


@hookimpl
def sla_destinations(config: AgentConfig) -> list[Destination] | None:
    return channels(config) or None


def register_url(url: str | None) -> None:
    """Never log a webhook URL (its path may be the token), nor a password written in it."""
    register_secret(url)
    if url:
        register_secret(urlsplit(url).password)
