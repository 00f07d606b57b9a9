"""Alerts through the real command line, the simulator over mutual TLS and real receivers: a
Butler config's site license messages on mosquitto and a webhook, access license alerts, the
outbox when a channel is down, ``alert test`` on every channel, and config mistakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import main
from agent.models import UTC
from agent.outbox import Outbox
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths
from tests.alerts.conftest import subscribed, wait_until

SIM_NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def simulator(alert_certs: CertPaths) -> Iterator[Simulator]:
    sim = Simulator(users=40, seed=3, now=datetime.now(UTC), cert_dir=alert_certs.cert_dir)
    sim.start()
    yield sim
    sim.stop()


def expiring_in(days: int) -> dict[str, Any]:
    # Valid To is a date (midnight): the day after now + days leaves days and a part of a day,
    # which the monitor counts as `days` at any hour (now + 12 hours gave one day less before
    # noon UTC).
    valid_to = (datetime.now(UTC) + timedelta(days=days + 1)).strftime("%Y-%m-%d")
    return {"keyDetails": f"Serial: 1\nValid To: {valid_to} 12:00:00 AM", "isExpired": False}


def write_config(tmp_path: Path, sim: Simulator, certs: CertPaths, **sections: Any) -> Path:
    butler: dict[str, Any] = {
        "configQRS": {"host": sim.host, "port": sim.port},
        "cert": {
            "clientCert": str(certs.client_cert),
            "clientCertKey": str(certs.client_key),
            "clientCertCA": str(certs.root_cert),
        },
        "qlikSenseLicense": {
            "licenseMonitor": {"enable": True},
            "licenseRelease": {"enable": False},
        },
        "licenseAgent": {"stateDir": str(tmp_path / "state")},
    }
    for key, value in sections.items():
        if key in ("licenseMonitor", "serverLicenseMonitor"):
            butler["qlikSenseLicense"][key] = {**butler["qlikSenseLicense"].get(key, {}), **value}
        else:
            butler[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"Butler": butler}), encoding="utf-8")
    return path


def butler_sections(broker, receiver, certs) -> dict[str, Any]:
    """A Butler config's site license alert sections, unchanged from Butler's documentation."""
    return {
        "mqttConfig": {
            "enable": True,
            "brokerHost": broker.host,
            "brokerPort": broker.port,
            "azureEventGrid": {"enable": False, "clientId": "x"},
            "taskFailureTopic": "qliksense/task_failure",  # Butler's other keys stay allowed
            "qlikSenseServerLicenseTopic": "qliksense/qliksense_server_license",
            "qlikSenseServerLicenseExpireTopic": "qliksense/qliksense_server_license_expire",
        },
        "webhookNotification": {
            "enable": True,
            "reloadTaskFailure": {"rateLimit": 300, "webhooks": None},
            "qlikSenseServerLicenseMonitor": {
                "rateLimit": 0,
                "webhooks": [
                    {
                        "description": "status",
                        "webhookURL": receiver.url + "/status",
                        "httpMethod": "GET",
                        "cert": {
                            "enable": True,
                            "rejectUnauthorized": True,
                            "certCA": str(certs.root_cert),
                        },
                    }
                ],
            },
            "qlikSenseServerLicenseExpiryAlert": {
                "rateLimit": 0,
                "webhooks": [
                    {
                        "description": "expiry",
                        "webhookURL": receiver.url + "/expiry",
                        "httpMethod": "POST",
                        "cert": {
                            "enable": True,
                            "rejectUnauthorized": True,
                            "certCA": str(certs.root_cert),
                        },
                    }
                ],
            },
        },
        "serverLicenseMonitor": {
            "enable": True,
            "frequency": "every 24 hours",
            "alert": {"thresholdDays": 60},
            "destination": {
                "influxDb": {"enable": False},
                "mqtt": {"enable": True},
                "webhook": {
                    "enable": True,
                    "sendRecurring": {"enable": True},
                    "sendAlert": {"enable": True},
                },
            },
        },
    }


def test_monitor_once_sends_butlers_expiry_alert(
    simulator, alert_certs, mosquitto, https_receiver, tmp_path, capsys
):
    state = simulator.dump_state()
    state["license"] = expiring_in(20)
    simulator.load_state(state)
    config = write_config(
        tmp_path, simulator, alert_certs, **butler_sections(mosquitto, https_receiver, alert_certs)
    )
    assert main(["config", "check", "-c", str(config)]) == 0
    listed = capsys.readouterr().out
    assert "mqtt" in listed and "webhook" in listed
    with subscribed(mosquitto, "qliksense/#") as messages:
        assert main(["monitor", "--once", "-c", str(config)]) == 0
        assert wait_until(lambda: len(messages) >= 2)
    by_topic = dict(messages)
    status = json.loads(by_topic["qliksense/qliksense_server_license"])
    assert status["licenseExpired"] is False and status["daysUntilExpiry"] == 20
    expiry_date = status["expiryDateStr"]
    assert by_topic["qliksense/qliksense_server_license_expire"] == (
        f"Qlik Sense server license is about to expire in 20 days, on {expiry_date}"
    )
    requests = {r.path: r for r in https_receiver.wait(2)}
    assert requests["/expiry"].method == "POST"
    assert requests["/expiry"].json() == {
        "event": "server license about to expire alert",
        "licenseExpired": False,
        "expiryDateStr": expiry_date,
        "daysUntilExpiry": 20,
    }
    assert requests["/status"].method == "GET"
    assert requests["/status"].query["event"] == "server license status"
    assert requests["/status"].query["daysUntilExpiry"] == "20"


def test_expired_site_license_is_butlers_expired_text(
    simulator, alert_certs, mosquitto, https_receiver, tmp_path
):
    state = simulator.dump_state()
    state["license"] = {**expiring_in(-3), "isExpired": True}
    simulator.load_state(state)
    config = write_config(
        tmp_path, simulator, alert_certs, **butler_sections(mosquitto, https_receiver, alert_certs)
    )
    with subscribed(mosquitto, "qliksense/qliksense_server_license_expire") as messages:
        assert main(["monitor", "--once", "-c", str(config)]) == 0
        assert wait_until(lambda: len(messages) >= 1)
    assert messages[0][1].startswith("Qlik Sense server license expired on ")
    expiry = next(r for r in https_receiver.wait(2) if r.path == "/expiry")
    assert expiry.json()["event"] == "server license has expired alert"


def low_availability(sim: Simulator) -> None:
    """Professional: 25 in total, about 5 available."""
    state = sim.dump_state()
    allocated = len(state.get("professionalaccesstype") or [])
    state.setdefault("totals", {})["professional"] = allocated + 5
    sim.load_state(state)


def access_alert_config(tmp_path, sim, certs, receiver, box, password) -> Path:
    return write_config(
        tmp_path,
        sim,
        certs,
        webhookNotification={
            "enable": True,
            "licenseAgentAlert": {
                "rateLimit": 0,
                "webhooks": [
                    {
                        "webhookURL": receiver.url + "/alert",
                        "httpMethod": "POST",
                        "cert": {"enable": True, "certCA": str(certs.root_cert)},
                    }
                ],
            },
        },
        licenseMonitor={
            "alert": {
                "enable": True,
                "repeatHours": 24,
                "licenseType": {"professional": {"availableBelow": 10}},
                "destination": {
                    "webhook": {"enable": True},
                    "email": {
                        "enable": True,
                        "from": "agent@example.com",
                        "to": ["admins@example.com"],
                        "smtp": {
                            "host": box.host,
                            "port": box.port,
                            "security": "starttls",
                            "caFile": str(certs.root_cert),
                            "username": "agent",
                            "password": password,
                        },
                    },
                },
            }
        },
    )


def test_access_alert_waits_in_the_outbox_while_a_channel_is_down(
    simulator, alert_certs, https_receiver, smtp_server, tmp_path, capsys
):
    low_availability(simulator)
    box = smtp_server(starttls=True, login=("agent", "right-smtp-password"))
    config = access_alert_config(
        tmp_path, simulator, alert_certs, https_receiver, box, "wrong-smtp-password"
    )
    # The monitor run succeeds; the webhook gets the alert although e-mail refuses the login.
    assert main(["monitor", "--once", "-c", str(config)]) == 0
    output = capsys.readouterr()
    assert "wrong-smtp-password" not in output.out + output.err
    [alert] = https_receiver.wait(1)
    assert alert.json()["alert"] == "professional:available_below"
    assert alert.json()["state"] == "firing"
    assert box.messages == []
    outbox = Outbox(tmp_path / "state" / "outbox.sqlite")
    assert outbox.count("email") == 1
    outbox.close()
    # The admin fixes the password: the next run delivers the waiting alert, once; the
    # condition still holds, but it is not fired again (the state survived).
    config = access_alert_config(
        tmp_path, simulator, alert_certs, https_receiver, box, "right-smtp-password"
    )
    assert main(["monitor", "--once", "-c", str(config)]) == 0
    assert wait_until(lambda: len(box.messages) == 1)
    assert "professional" in box.messages[0]["Subject"]
    assert len(https_receiver.requests) == 1
    assert (
        "right-smtp-password" not in (tmp_path / "state").joinpath("alerts-state.json").read_text()
    )


def every_channel_config(
    tmp_path,
    sim,
    certs,
    receiver,
    box,
    *,
    mqtt_config,
    webhooks,
    smtp_password,
    teams_path,
    slack_path,
) -> Path:
    """A config whose access alerts go to every channel: MQTT, webhooks, Teams, Slack, e-mail."""
    return write_config(
        tmp_path,
        sim,
        certs,
        mqttConfig=mqtt_config,
        webhookNotification=webhooks,
        licenseMonitor={
            "alert": {
                "enable": True,
                "licenseType": {"professional": {"availableBelow": 1}},
                "destination": {
                    "mqtt": {"enable": True},
                    "webhook": {"enable": True},
                    "teams": {
                        "enable": True,
                        "webhookURL": receiver.url + teams_path,
                        "caFile": str(certs.root_cert),
                    },
                    "slack": {
                        "enable": True,
                        "webhookURL": receiver.url + slack_path,
                        "caFile": str(certs.root_cert),
                    },
                    "email": {
                        "enable": True,
                        "from": "agent@example.com",
                        "to": "admins@example.com",
                        "smtp": {
                            "host": box.host,
                            "port": box.port,
                            "caFile": str(certs.root_cert),
                            "username": "agent",
                            "password": smtp_password,
                        },
                    },
                },
            }
        },
    )


def test_alert_test_reaches_every_channel(
    simulator, alert_certs, mosquitto, https_receiver, smtp_server, tmp_path, capsys
):
    box = smtp_server(starttls=True, login=("agent", "smtp-pw-1234"))
    sections = butler_sections(mosquitto, https_receiver, alert_certs)
    config = every_channel_config(
        tmp_path,
        simulator,
        alert_certs,
        https_receiver,
        box,
        mqtt_config=sections["mqttConfig"],
        webhooks=sections["webhookNotification"],
        smtp_password="smtp-pw-1234",
        teams_path="/teams/secret-teams-token",
        slack_path="/slack/secret-slack-token",
    )
    with subscribed(mosquitto, "qliksense/license_agent/alert") as messages:
        assert main(["alert", "test", "-c", str(config)]) == 0
        assert wait_until(lambda: len(messages) == 1)
    out = capsys.readouterr().out
    for name in ("mqtt", "webhook", "teams", "slack", "email"):
        assert any(line.startswith(name) and " sent " in line for line in out.splitlines()), out
    assert "secret-teams-token" not in out and "secret-slack-token" not in out
    assert json.loads(messages[0][1])["event"] == "license agent test"
    paths = sorted(r.path for r in https_receiver.wait(4))
    assert paths == ["/expiry", "/slack/secret-slack-token", "/status", "/teams/secret-teams-token"]
    assert wait_until(lambda: len(box.messages) == 1)
    assert "Test alert" in box.messages[0]["Subject"]
    # One channel only; an unknown one is a usage error that lists the configured ones.
    assert main(["alert", "test", "--channel", "email", "-c", str(config)]) == 0
    assert wait_until(lambda: len(box.messages) == 2)
    capsys.readouterr()
    assert main(["alert", "test", "--channel", "pagerduty", "-c", str(config)]) == 2
    assert "configured: mqtt, webhook, teams, slack, email" in capsys.readouterr().err


def test_alert_test_says_which_channel_failed(
    simulator, alert_certs, smtp_server, tmp_path, capsys
):
    box = smtp_server(starttls=True, login=("agent", "right-pw-5678"))
    config = write_config(
        tmp_path,
        simulator,
        alert_certs,
        licenseMonitor={
            "alert": {
                "enable": True,
                "destination": {
                    "email": {
                        "enable": True,
                        "from": "agent@example.com",
                        "to": ["admins@example.com"],
                        "smtp": {
                            "host": box.host,
                            "port": box.port,
                            "caFile": str(alert_certs.root_cert),
                            "username": "agent",
                            "password": "wrong-pw-5678",
                        },
                    }
                },
            }
        },
    )
    assert main(["alert", "test", "-c", str(config)]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "refused the login of 'agent'" in captured.out
    assert f"{box.host}:{box.port}" in captured.out
    assert "wrong-pw-5678" not in captured.out + captured.err
    assert "Traceback" not in captured.err


def test_alert_config_mistakes_are_reported_together(simulator, alert_certs, tmp_path, capsys):
    config = write_config(
        tmp_path,
        simulator,
        alert_certs,
        mqttConfig={"enable": True, "brokerHost": "mqtt.example.com", "brokerPort": "eighteen"},
        webhookNotification={
            "enable": True,
            "licenseAgentAlert": {"webhooks": [{"webhookURL": "hooks.example.com/x"}]},
        },
        licenseMonitor={
            "alert": {
                "enable": True,
                "destination": {"pagerduty": {"enable": True}},
            }
        },
    )
    assert main(["config", "check", "-c", str(config)]) == 2
    err = capsys.readouterr()
    text = err.out + err.err
    assert "brokerPort" in text and "eighteen" in text
    assert "webhookURL" in text and "scheme" in text
    assert "pagerduty" in text
    assert "Traceback" not in text


def test_a_forecast_without_history_is_a_config_error(simulator, alert_certs, tmp_path, capsys):
    config = write_config(
        tmp_path,
        simulator,
        alert_certs,
        licenseMonitor={
            "alert": {"enable": True, "licenseType": {"analyzer": {"forecastDays": 30}}}
        },
    )
    assert main(["config", "check", "-c", str(config)]) == 2
    assert main(["monitor", "--once", "-c", str(config)]) == 2
    text = "".join(capsys.readouterr())
    assert "licenseType.analyzer.forecastDays" in text
    assert "destinations.sqlite.enable: true" in text
    assert "Traceback" not in text
