"""Each alert channel against a real receiver: mosquitto, an HTTPS server with its own CA, and
aiosmtpd with and without STARTTLS. Assert what arrived, and how failures are reported."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from agent.alerts import (
    FIRING,
    KIND_ACCESS,
    KIND_SERVER_EXPIRY,
    KIND_SERVER_STATUS,
    KIND_TEST,
    STATUS,
    TEST,
    Alert,
)
from agent.models import UTC, DestinationError
from plugins.alerts.chat import SLACK, TEAMS, ChatChannel, ChatSettings
from plugins.alerts.email import EmailChannel, EmailSettings
from plugins.alerts.mqtt import MqttChannel, MqttConfig
from plugins.alerts.webhook import WebhookChannel, WebhookNotification
from tests.alerts.conftest import subscribed, wait_until

NOW = datetime(2026, 12, 5, 6, tzinfo=UTC)
EXPIRY = {"licenseExpired": False, "expiryDateStr": "2026-12-30T00:00:00Z", "daysUntilExpiry": 25}


def server_status() -> Alert:
    return Alert(
        key="server_license:status",
        kind=KIND_SERVER_STATUS,
        state=STATUS,
        title="Site license: 25 days left",
        text="The site license expires on 2026-12-30.",
        time=NOW,
        details={**EXPIRY, "event": "server license status"},
    )


def server_expiry(expired: bool = False) -> Alert:
    details = {**EXPIRY, "event": "server license about to expire alert"}
    if expired:
        details = {
            "licenseExpired": True,
            "expiryDateStr": "2026-11-30T00:00:00Z",
            "daysUntilExpiry": -5,
            "event": "server license has expired alert",
        }
    return Alert(
        key="server_license:expiry",
        kind=KIND_SERVER_EXPIRY,
        state=FIRING,
        title="Site license expires in 25 days",
        text="...",
        time=NOW,
        details=details,
    )


def access_alert() -> Alert:
    return Alert(
        key="professional:available_below",
        kind=KIND_ACCESS,
        state=FIRING,
        title="professional: 5 licenses available",
        text="Only 5 professional licenses are available (of 100); the alert threshold is 10.",
        time=NOW,
        license_type="professional",
        site="prod",
        details={"available": 5.0, "total": 100.0, "threshold": 10},
    )


def a_test_alert() -> Alert:
    return Alert(key="test", kind=KIND_TEST, state=TEST, title="Test", text="A test.", time=NOW)


# --------------------------------------------------------------------------- MQTT


def mqtt_settings(broker, **extra) -> MqttConfig:
    return MqttConfig.model_validate(
        {"enable": True, "brokerHost": broker.host, "brokerPort": broker.port, **extra}
    )


def test_mqtt_publishes_butlers_topics_and_payloads(mosquitto, tmp_path):
    channel = MqttChannel(
        mqtt_settings(mosquitto), server_license=True, access_alerts=True, base_dir=tmp_path
    )
    with subscribed(mosquitto) as messages:
        channel.write([a.to_point() for a in (server_status(), server_expiry(), access_alert())])
        assert wait_until(lambda: len(messages) >= 3)
    by_topic = dict(messages)
    assert json.loads(by_topic["qliksense/qliksense_server_license"]) == {
        "licenseExpired": False,
        "expiryDateStr": "2026-12-30T00:00:00Z",
        "daysUntilExpiry": 25,
    }
    assert by_topic["qliksense/qliksense_server_license_expire"] == (
        "Qlik Sense server license is about to expire in 25 days, on 2026-12-30T00:00:00Z"
    )
    access = json.loads(by_topic["qliksense/license_agent/alert"])
    assert access["event"] == "license agent alert"
    assert access["alert"] == "professional:available_below"
    assert access["licenseType"] == "professional" and access["state"] == "firing"


def test_mqtt_expired_text_and_custom_topics(mosquitto, tmp_path):
    settings = mqtt_settings(
        mosquitto,
        qlikSenseServerLicenseTopic="qs/lic",
        qlikSenseServerLicenseExpireTopic="qs/lic/expire",
    )
    channel = MqttChannel(settings, server_license=True, access_alerts=False, base_dir=tmp_path)
    with subscribed(mosquitto, "qs/#") as messages:
        channel.write([server_expiry(expired=True).to_point(), access_alert().to_point()])
        assert wait_until(lambda: len(messages) >= 1)
    # The access alert is not routed to MQTT (licenseMonitor.alert.destination.mqtt is off).
    assert messages == [
        ("qs/lic/expire", "Qlik Sense server license expired on 2026-11-30T00:00:00Z")
    ]


def test_mqtt_with_username_and_password(mosquitto, tmp_path):
    good = mqtt_settings(
        mosquitto,
        brokerPort=mosquitto.auth_port,
        username=mosquitto.username,
        password=mosquitto.password,
    )
    MqttChannel(good, server_license=False, access_alerts=True, base_dir=tmp_path).write(
        [a_test_alert().to_point()]
    )
    bad = mqtt_settings(
        mosquitto, brokerPort=mosquitto.auth_port, username="agent", password="wrong-password-1"
    )
    with pytest.raises(DestinationError, match="refused the connection") as caught:
        MqttChannel(bad, server_license=False, access_alerts=True, base_dir=tmp_path).write(
            [a_test_alert().to_point()]
        )
    assert "wrong-password-1" not in str(caught.value)


def test_mqtt_broker_down_is_an_error_naming_the_broker(tmp_path):
    from tests.alerts.conftest import free_port

    port = free_port()
    settings = MqttConfig.model_validate(
        {"enable": True, "brokerHost": "127.0.0.1", "brokerPort": port}
    )
    channel = MqttChannel(settings, server_license=True, access_alerts=True, base_dir=tmp_path)
    with pytest.raises(DestinationError, match=f"127.0.0.1:{port}"):
        channel.write([server_status().to_point()])


# --------------------------------------------------------------------------- webhooks


def webhooks(receiver, alert_certs, method="POST", rate_limit=0, group="licenseAgentAlert", **cert):
    hook = {
        "description": "ops",
        "webhookURL": receiver.url + "/hook",
        "httpMethod": method,
        "cert": {"enable": True, "certCA": str(alert_certs.root_cert), **cert},
    }
    return WebhookNotification.model_validate(
        {"enable": True, group: {"rateLimit": rate_limit, "webhooks": [hook]}}
    )


def webhook_channel(settings, tmp_path, **routes) -> WebhookChannel:
    options = {"send_recurring": True, "send_alert": True, "access_alerts": True, **routes}
    return WebhookChannel(settings, base_dir=tmp_path, state_dir=tmp_path, **options)


@pytest.mark.parametrize("method", ["POST", "PUT", "post"])
def test_webhook_body_has_butlers_fields(https_receiver, alert_certs, tmp_path, method):
    settings = webhooks(
        https_receiver, alert_certs, method, group="qlikSenseServerLicenseExpiryAlert"
    )
    webhook_channel(settings, tmp_path).write([server_expiry().to_point()])
    [request] = https_receiver.wait()
    assert request.method == method.upper()
    assert request.json() == {
        "event": "server license about to expire alert",
        "licenseExpired": False,
        "expiryDateStr": "2026-12-30T00:00:00Z",
        "daysUntilExpiry": 25,
    }


def test_webhook_get_sends_query_parameters(https_receiver, alert_certs, tmp_path):
    settings = webhooks(https_receiver, alert_certs, "GET", group="qlikSenseServerLicenseMonitor")
    webhook_channel(settings, tmp_path).write([server_status().to_point()])
    [request] = https_receiver.wait()
    assert request.query == {
        "event": "server license status",
        "licenseExpired": "false",
        "expiryDateStr": "2026-12-30T00:00:00Z",
        "daysUntilExpiry": "25",
    }


def test_webhook_routes_follow_butlers_send_flags(https_receiver, alert_certs, tmp_path):
    settings = webhooks(https_receiver, alert_certs, group="qlikSenseServerLicenseMonitor")
    # sendRecurring off: the status is not sent.
    webhook_channel(settings, tmp_path, send_recurring=False).write([server_status().to_point()])
    assert https_receiver.wait(1, timeout=0.5) == []


def test_webhook_verifies_the_receiver_with_its_ca(https_receiver, alert_certs, tmp_path):
    # Without the receiver's CA the system store does not trust it: an error, nothing sent.
    settings = WebhookNotification.model_validate(
        {
            "enable": True,
            "licenseAgentAlert": {
                "webhooks": [{"webhookURL": https_receiver.url + "/x", "httpMethod": "POST"}]
            },
        }
    )
    with pytest.raises(DestinationError, match="not trusted"):
        webhook_channel(settings, tmp_path).write([access_alert().to_point()])
    assert https_receiver.requests == []
    # rejectUnauthorized: false skips the check, as in Butler.
    lax = webhooks(https_receiver, alert_certs, rejectUnauthorized=False)
    webhook_channel(lax, tmp_path).write([access_alert().to_point()])
    assert len(https_receiver.wait()) == 1


def test_webhook_rate_limit_holds_across_restarts(https_receiver, alert_certs, tmp_path):
    settings = webhooks(
        https_receiver, alert_certs, rate_limit=300, group="qlikSenseServerLicenseExpiryAlert"
    )
    webhook_channel(settings, tmp_path).write([server_expiry().to_point()])
    # A new channel object (a restarted agent) within the rate limit sends nothing more.
    webhook_channel(settings, tmp_path).write([server_expiry().to_point()])
    assert len(https_receiver.wait(2, timeout=0.5)) == 1


def test_webhook_failure_keeps_the_point_for_the_outbox(https_receiver, alert_certs, tmp_path):
    https_receiver.status = 503
    settings = webhooks(https_receiver, alert_certs)
    point = access_alert().to_point()
    with pytest.raises(DestinationError, match="HTTP 503") as caught:
        webhook_channel(settings, tmp_path).write([point])
    assert caught.value.failed == (point,)


def test_webhook_url_without_scheme_is_a_settings_error():
    with pytest.raises(ValueError, match="scheme"):
        WebhookNotification.model_validate(
            {"licenseAgentAlert": {"webhooks": [{"webhookURL": "hooks.example.com/x"}]}}
        )


# --------------------------------------------------------------------------- Teams and Slack


@pytest.mark.parametrize("name", [TEAMS, SLACK])
def test_chat_message_arrives_readable(https_receiver, alert_certs, tmp_path, name):
    secret_path = "/webhookb2/secret-token-abc123"
    settings = ChatSettings.model_validate(
        {
            "enable": True,
            "webhookURL": https_receiver.url + secret_path,
            "caFile": str(alert_certs.root_cert),
        }
    )
    channel = ChatChannel(name, settings, tmp_path)
    channel.write([access_alert().to_point()])
    [request] = https_receiver.wait()
    assert request.path == secret_path
    body = request.json()
    if name == TEAMS:
        card = body["attachments"][0]["content"]
        assert card["type"] == "AdaptiveCard"
        assert "5 licenses available" in card["body"][0]["text"]
        facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
        assert facts["License type"] == "professional" and facts["Site"] == "prod"
    else:
        assert "5 licenses available" in body["text"]
        assert body["blocks"][0]["type"] == "header"
        assert "threshold is 10" in body["blocks"][1]["text"]["text"]
    # An error names the host, never the secret path.
    https_receiver.status = 500
    with pytest.raises(DestinationError) as caught:
        channel.write([access_alert().to_point()])
    assert "secret-token-abc123" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


# --------------------------------------------------------------------------- e-mail


def email_settings(box, alert_certs, **smtp) -> EmailSettings:
    return EmailSettings.model_validate(
        {
            "enable": True,
            "from": "agent@example.com",
            "to": ["admins@example.com"],
            "smtp": {
                "host": box.host,
                "port": box.port,
                "security": "none",
                "caFile": str(alert_certs.root_cert),
                **smtp,
            },
        }
    )


def test_email_plain_smtp(smtp_server, alert_certs, tmp_path):
    box = smtp_server()
    EmailChannel(email_settings(box, alert_certs), tmp_path).write([access_alert().to_point()])
    assert wait_until(lambda: len(box.messages) == 1)
    message = box.messages[0]
    assert "professional: 5 licenses available" in message["Subject"]
    assert message["To"] == "admins@example.com"
    assert "threshold is 10" in message.get_content()


def test_email_starttls_with_login(smtp_server, alert_certs, tmp_path):
    box = smtp_server(starttls=True, login=("agent", "smtp-secret-pw"))
    settings = email_settings(
        box, alert_certs, security="starttls", username="agent", password="smtp-secret-pw"
    )
    EmailChannel(settings, tmp_path).write([access_alert().to_point()])
    assert wait_until(lambda: len(box.messages) == 1)


def test_email_refused_login_names_server_and_user_not_password(smtp_server, alert_certs, tmp_path):
    box = smtp_server(starttls=True, login=("agent", "smtp-secret-pw"))
    settings = email_settings(
        box, alert_certs, security="starttls", username="agent", password="not-the-password"
    )
    with pytest.raises(DestinationError, match="refused the login of 'agent'") as caught:
        EmailChannel(settings, tmp_path).write([access_alert().to_point()])
    assert "not-the-password" not in str(caught.value)
    assert f"{box.host}:{box.port}" in str(caught.value)
    assert box.messages == []


def test_email_starttls_checks_the_server_certificate(smtp_server, alert_certs, tmp_path):
    box = smtp_server(starttls=True)
    settings = EmailSettings.model_validate(
        {
            "enable": True,
            "from": "agent@example.com",
            "to": "admins@example.com",
            "smtp": {"host": box.host, "port": box.port, "security": "starttls"},
        }
    )
    with pytest.raises(DestinationError, match="TLS"):
        EmailChannel(settings, tmp_path).write([access_alert().to_point()])


def test_email_enabled_without_server_is_a_settings_error():
    with pytest.raises(ValueError, match="smtp"):
        EmailSettings.model_validate({"enable": True, "to": ["a@example.com"]})
