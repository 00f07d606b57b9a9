"""The ``mqtt`` alert channel: Butler's MQTT messages, through the paho-mqtt client.

Reads ``Butler.mqttConfig`` as Butler documents it (``enable``, ``brokerHost``, ``brokerPort``,
``azureEventGrid`` with ``clientId``, ``clientCertFile``, ``clientKeyFile``), and Butler's topics:

* ``qlikSenseServerLicenseTopic``: the site license status on every run, as JSON
  ``{"licenseExpired": false, "expiryDateStr": "...", "daysUntilExpiry": 25}``;
* ``qlikSenseServerLicenseExpireTopic``: Butler's text when the license expires within
  ``serverLicenseMonitor.alert.thresholdDays`` ("Qlik Sense server license is about to expire
  in 25 days, on ...") or has expired ("Qlik Sense server license expired on ...").

Both when ``serverLicenseMonitor.destination.mqtt.enable``, as in Butler. Agent additions in the
same section: ``licenseAlertTopic`` (default ``qliksense/license_agent/alert``) receives the
access license alerts as JSON when ``licenseMonitor.alert.destination.mqtt.enable``, and a
standard broker may use ``username`` / ``password`` and ``tls`` (``enable``, ``caFile``,
``rejectUnauthorized``), which Butler does not offer. Messages are published with QoS 1 and the
channel waits for the broker's acknowledgement: a broker that is down raises, and the outbox
keeps the message for later.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from pydantic import Field

from agent.alerts import KIND_ACCESS, KIND_SERVER_EXPIRY, KIND_SERVER_STATUS, KIND_TEST, Alert
from agent.models import DestinationError, Point
from plugins.alerts._common import FEATURES, ButlerSection, Settings

NAME = "mqtt"
#: Seconds to wait for the connection and for each acknowledgement.
TIMEOUT = 10.0


class AzureEventGrid(ButlerSection):
    enable: bool = False
    client_id: str = Field(default="", alias="clientId")
    client_cert_file: Path | None = Field(default=None, alias="clientCertFile")
    client_key_file: Path | None = Field(default=None, alias="clientKeyFile")


class MqttTls(Settings):
    enable: bool = False
    ca_file: Path | None = Field(default=None, alias="caFile")
    reject_unauthorized: bool = Field(default=True, alias="rejectUnauthorized")


class MqttConfig(ButlerSection):
    """``Butler.mqttConfig``: Butler's other topics are allowed and not read."""

    enable: bool = False
    broker_host: str = Field(default="", alias="brokerHost")
    broker_port: int = Field(default=1883, alias="brokerPort", ge=1, le=65535)
    azure_event_grid: AzureEventGrid = Field(default=AzureEventGrid(), alias="azureEventGrid")
    server_license_topic: str = Field(
        default="qliksense/qliksense_server_license", alias="qlikSenseServerLicenseTopic"
    )
    server_license_expire_topic: str = Field(
        default="qliksense/qliksense_server_license_expire",
        alias="qlikSenseServerLicenseExpireTopic",
    )
    # agent additions
    license_alert_topic: str = Field(
        default="qliksense/license_agent/alert", alias="licenseAlertTopic"
    )
    username: str | None = None
    password: str | None = None
    tls: MqttTls = MqttTls()


def butler_expire_text(alert: Alert) -> str:
    """Butler's exact texts on ``qlikSenseServerLicenseExpireTopic``."""
    details = alert.details
    if details.get("licenseExpired"):
        return f"Qlik Sense server license expired on {details.get('expiryDateStr')}"
    return (
        f"Qlik Sense server license is about to expire in {details.get('daysUntilExpiry')}"
        f" days, on {details.get('expiryDateStr')}"
    )


def messages(
    alert: Alert, settings: MqttConfig, *, server_license: bool, access_alerts: bool
) -> list[tuple[str, str]]:
    """The (topic, payload) pairs for one alert. Pure."""
    if alert.kind == KIND_SERVER_STATUS and server_license:
        return [(settings.server_license_topic, json.dumps(alert.butler_fields()))]
    if alert.kind == KIND_SERVER_EXPIRY and server_license:
        return [(settings.server_license_expire_topic, butler_expire_text(alert))]
    if alert.kind == KIND_TEST or (alert.kind == KIND_ACCESS and access_alerts):
        return [(settings.license_alert_topic, json.dumps(alert.message(), default=str))]
    return []


class MqttChannel:
    """Publishes alerts to an MQTT broker (one connection per batch)."""

    name = NAME
    features = FEATURES

    def __init__(
        self, settings: MqttConfig, *, server_license: bool, access_alerts: bool, base_dir: Path
    ) -> None:
        self.settings = settings
        self.server_license = server_license
        self.access_alerts = access_alerts
        self.base_dir = base_dir

    @property
    def where(self) -> str:
        return f"{self.settings.broker_host}:{self.settings.broker_port}"

    def describe(self) -> str:
        return f"MQTT broker {self.where}"

    def _path(self, path: Path | None) -> str | None:
        if path is None:
            return None
        return str(path if path.is_absolute() else self.base_dir / path)

    def _client(self) -> paho.Client:
        settings = self.settings
        azure = settings.azure_event_grid
        client_id = azure.client_id if azure.enable else ""
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        if azure.enable:
            # Azure Event Grid: TLS with the client certificate; the client id is the user name.
            client.tls_set(
                certfile=self._path(azure.client_cert_file),
                keyfile=self._path(azure.client_key_file),
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.username_pw_set(azure.client_id)
        elif settings.tls.enable:
            verify = settings.tls.reject_unauthorized
            client.tls_set(
                ca_certs=self._path(settings.tls.ca_file),
                cert_reqs=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
            )
            client.tls_insecure_set(not verify)
        if settings.username and not azure.enable:
            client.username_pw_set(settings.username, settings.password)
        return client

    def write(self, points: Sequence[Point]) -> None:
        batch: list[tuple[Point, list[tuple[str, str]]]] = []
        for point in points:
            alert = Alert.from_point(point)
            batch.append(
                (
                    point,
                    messages(
                        alert,
                        self.settings,
                        server_license=self.server_license,
                        access_alerts=self.access_alerts,
                    ),
                )
            )
        if not any(pairs for _, pairs in batch):
            return
        self.publish([pair for _, pairs in batch for pair in pairs])

    def publish(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Publish with QoS 1 and wait for every acknowledgement, or raise."""
        client = self._client()
        connected = threading.Event()
        outcome: dict[str, Any] = {}

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            outcome["reason"] = reason
            connected.set()

        client.on_connect = on_connect
        try:
            client.connect(self.settings.broker_host, self.settings.broker_port, keepalive=30)
        except ssl.SSLError as exc:
            raise DestinationError(
                f"mqtt: TLS with {self.where} failed ({exc.reason or exc}); check"
                " mqttConfig.tls.caFile or the Azure Event Grid certificate files"
            ) from None
        except OSError as exc:
            raise DestinationError(
                f"mqtt: cannot connect to the broker {self.where}: {exc.strerror or exc};"
                " check Butler.mqttConfig.brokerHost and brokerPort"
            ) from None
        client.loop_start()
        try:
            if not connected.wait(TIMEOUT):
                raise DestinationError(f"mqtt: the broker {self.where} did not answer in time")
            reason = outcome.get("reason")
            if reason is not None and getattr(reason, "is_failure", False):
                raise DestinationError(
                    f"mqtt: the broker {self.where} refused the connection: {reason}"
                )
            infos = [client.publish(topic, payload, qos=1) for topic, payload in pairs]
            for info in infos:
                info.wait_for_publish(TIMEOUT)
                if not info.is_published():
                    raise DestinationError(
                        f"mqtt: the broker {self.where} did not acknowledge a message in time"
                    )
        except DestinationError:
            raise  # already says what failed (it is a RuntimeError too)
        except (RuntimeError, ValueError) as exc:
            raise DestinationError(f"mqtt: publishing to {self.where} failed: {exc}") from None
        finally:
            client.disconnect()
            client.loop_stop()

    def close(self) -> None:
        pass
