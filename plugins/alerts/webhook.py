"""The ``webhook`` alert channel: Butler's outgoing webhooks, as Butler's config describes them.

Reads ``Butler.webhookNotification`` (Butler's keys, unchanged):

* ``qlikSenseServerLicenseMonitor.webhooks``: the site license status on every run of the
  site license monitor, when ``serverLicenseMonitor.destination.webhook.sendRecurring.enable``;
* ``qlikSenseServerLicenseExpiryAlert.webhooks``: the expiry alert, when
  ``...destination.webhook.sendAlert.enable`` and the license expires within
  ``serverLicenseMonitor.alert.thresholdDays`` (or has expired);
* ``licenseAgentAlert.webhooks`` (an agent addition): the access license alerts, when
  ``licenseMonitor.alert.destination.webhook.enable``.

Each webhook has Butler's ``description``, ``webhookURL``, ``httpMethod`` (GET sends the fields
as query parameters, POST and PUT as a JSON body), and ``cert`` (``enable``,
``rejectUnauthorized``, ``certCA``: the CA that signed the receiver's certificate). A group's
``rateLimit`` (seconds, Butler's default 300) drops further messages of that group within that
time after one was sent, as Butler does; the agent keeps the times in ``stateDir`` so that a
restart does not reset them. The payload keeps Butler's fields and ``event`` texts::

    {"event": "server license about to expire alert", "licenseExpired": false,
     "expiryDateStr": "2027-03-16T00:00:00Z", "daysUntilExpiry": 25}

Unlike Butler, ``expiryDateStr`` is the whole date (Butler cut it at the first ``:``) and
``daysUntilExpiry`` is negative after expiry (Butler's was an absolute value).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from pydantic import Field, field_validator

from agent.alerts import (
    KIND_ACCESS,
    KIND_SERVER_EXPIRY,
    KIND_SERVER_STATUS,
    KIND_TEST,
    Alert,
)
from agent.models import DestinationError, Point
from plugins.alerts._common import (
    FEATURES,
    ButlerSection,
    Settings,
    Unreachable,
    call,
    send_each,
    verify_option,
)

NAME = "webhook"
RATE_LIMIT_FILE = "webhook-rate-limit.json"
#: Which webhooks of a group took an alert that another webhook of the group failed.
DELIVERED_FILE = "webhook-delivered.json"
#: Seconds a partial delivery is remembered (the outbox keeps the alert meanwhile).
DELIVERED_KEEP = 7 * 24 * 3600


def check_url(value: str) -> str:
    """A webhook URL must be whole: ``https://host/path`` (shared by Teams and Slack)."""
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "must be a whole URL with its scheme, e.g. https://hooks.example.com/path"
            + (" (http:// or https:// is missing)" if "://" not in text else "")
        )
    return text


class WebhookCert(Settings):
    enable: bool = False
    reject_unauthorized: bool = Field(default=True, alias="rejectUnauthorized")
    #: The CA certificate (PEM) that signed the receiver's certificate.
    cert_ca: Path | None = Field(default=None, alias="certCA")


class Webhook(Settings):
    description: str = ""
    webhook_url: str = Field(alias="webhookURL")
    http_method: Literal["GET", "POST", "PUT"] = Field(default="POST", alias="httpMethod")
    cert: WebhookCert = WebhookCert()

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("http_method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class WebhookGroup(ButlerSection):
    #: Seconds after a message during which further messages of the group are dropped.
    rate_limit: int = Field(default=300, alias="rateLimit", ge=0, le=31_536_000)
    webhooks: list[Webhook] = Field(default_factory=list)

    @field_validator("webhooks", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        return [] if value is None else value


class WebhookNotification(ButlerSection):
    """``Butler.webhookNotification``: Butler's other groups are allowed and not read."""

    enable: bool = False
    server_license_monitor: WebhookGroup = Field(
        default=WebhookGroup(), alias="qlikSenseServerLicenseMonitor"
    )
    server_license_expiry_alert: WebhookGroup = Field(
        default=WebhookGroup(), alias="qlikSenseServerLicenseExpiryAlert"
    )
    license_agent_alert: WebhookGroup = Field(default=WebhookGroup(), alias="licenseAgentAlert")

    def groups(self) -> dict[str, WebhookGroup]:
        return {
            "qlikSenseServerLicenseMonitor": self.server_license_monitor,
            "qlikSenseServerLicenseExpiryAlert": self.server_license_expiry_alert,
            "licenseAgentAlert": self.license_agent_alert,
        }


def butler_payload(alert: Alert) -> dict[str, Any]:
    """Butler's webhook fields for a site license alert; the agent's own for the others."""
    if alert.kind in (KIND_SERVER_STATUS, KIND_SERVER_EXPIRY):
        return {"event": alert.details.get("event", ""), **alert.butler_fields()}
    return alert.message()


def _query_value(value: Any) -> str:
    # As JavaScript's URLSearchParams writes them (Butler's GET webhooks).
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class WebhookChannel:
    """Sends alerts to Butler's outgoing webhooks."""

    name = NAME
    features = FEATURES

    def __init__(
        self,
        settings: WebhookNotification,
        *,
        send_recurring: bool,
        send_alert: bool,
        access_alerts: bool,
        base_dir: Path,
        state_dir: Path | None,
    ) -> None:
        self.settings = settings
        self.send_recurring = send_recurring
        self.send_alert = send_alert
        self.access_alerts = access_alerts
        self.base_dir = base_dir
        self.state_path = state_dir / RATE_LIMIT_FILE if state_dir is not None else None
        self.delivered_path = state_dir / DELIVERED_FILE if state_dir is not None else None
        self.session = requests.Session()

    def describe(self) -> str:
        count = sum(len(g.webhooks) for g in self.settings.groups().values())
        return f"webhooks ({count} in Butler.webhookNotification)"

    def group_for(self, alert: Alert) -> str | None:
        if alert.kind == KIND_SERVER_STATUS:
            return "qlikSenseServerLicenseMonitor" if self.send_recurring else None
        if alert.kind == KIND_SERVER_EXPIRY:
            return "qlikSenseServerLicenseExpiryAlert" if self.send_alert else None
        if alert.kind == KIND_ACCESS:
            return "licenseAgentAlert" if self.access_alerts else None
        return None

    def write(self, points: Sequence[Point]) -> None:
        send_each(points, self.send)

    def send(self, alert: Alert) -> None:
        try:
            if alert.kind == KIND_TEST:
                self.send_test(alert)
                return
            group = self.group_for(alert)
            if group is not None:
                self.send_group(group, alert)
        except Unreachable as exc:
            # Several webhook URLs: one that is down must not hold the alerts bound for others.
            raise DestinationError(str(exc)) from None

    def send_test(self, alert: Alert) -> None:
        webhooks = [w for g in self.settings.groups().values() for w in g.webhooks]
        if not webhooks:
            raise DestinationError(
                "webhook: no webhooks are configured in Butler.webhookNotification"
            )
        for webhook in webhooks:
            self.send_one(webhook, butler_payload(alert))

    def send_group(self, group_name: str, alert: Alert) -> None:
        """Send to every webhook of the group. One that fails does not keep the alert from
        the others; the alert then stays in the outbox, and its retry goes only to the
        webhooks that did not take it yet (remembered in ``stateDir``)."""
        group = self.settings.groups()[group_name]
        if not group.webhooks or self._rate_limited(group_name, group.rate_limit):
            return
        alert_id = f"{alert.key}|{alert.state}|{alert.site}|{alert.time.isoformat()}"
        done = set(self._deliveries().get(alert_id, {}).get("hooks", []))
        errors: list[str] = []
        for webhook in group.webhooks:
            hook_id = _hook_id(webhook)
            if hook_id in done:
                continue
            try:
                self.send_one(webhook, butler_payload(alert))
            except DestinationError as exc:
                errors.append(str(exc))
                continue
            done.add(hook_id)
            self._remember(alert_id, done)
        if errors:
            raise DestinationError("; ".join(errors))
        self._remember(alert_id, None)
        self._sent(group_name)

    def send_one(self, webhook: Webhook, payload: Mapping[str, Any]) -> None:
        ca = None
        verify: bool | str = True
        if webhook.cert.enable:
            if webhook.cert.cert_ca is not None:
                ca = webhook.cert.cert_ca
                if not ca.is_absolute():
                    ca = self.base_dir / ca
            verify = verify_option(ca, webhook.cert.reject_unauthorized)
        label = f"webhook {webhook.description!r}" if webhook.description else "webhook"
        if webhook.http_method == "GET":
            call(
                "GET",
                webhook.webhook_url,
                channel=label,
                params={k: _query_value(v) for k, v in payload.items()},
                verify=verify,
                session=self.session,
            )
        else:
            call(
                webhook.http_method,
                webhook.webhook_url,
                channel=label,
                json_body=dict(payload),
                verify=verify,
                session=self.session,
            )

    # ------------------------------------------------------------ Butler's rate limit

    def _times(self) -> dict[str, float]:
        if self.state_path is None or not self.state_path.exists():
            return getattr(self, "_memory", {})
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def _rate_limited(self, group: str, seconds: int) -> bool:
        last = self._times().get(group)
        return seconds > 0 and last is not None and 0 <= time.time() - last < seconds

    def _sent(self, group: str) -> None:
        times = {**self._times(), group: time.time()}
        self._memory = times
        if self.state_path is not None:
            try:
                self.state_path.parent.mkdir(parents=True, exist_ok=True)
                self.state_path.write_text(json.dumps(times), encoding="utf-8")
            except OSError:
                pass  # the limit then holds for this process only

    # ------------------------------------------------------------ partial deliveries

    def _deliveries(self) -> dict[str, Any]:
        if self.delivered_path is None or not self.delivered_path.exists():
            return dict(getattr(self, "_delivered", {}))
        try:
            data = json.loads(self.delivered_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}  # then a retry may reach a webhook twice: at least once, as ever

    def _remember(self, alert_id: str, hooks: set[str] | None) -> None:
        now = time.time()
        entries = {
            key: value
            for key, value in self._deliveries().items()
            if isinstance(value, dict) and now - float(value.get("at", 0)) < DELIVERED_KEEP
        }
        if hooks is None:
            entries.pop(alert_id, None)
        else:
            entries[alert_id] = {"hooks": sorted(hooks), "at": now}
        self._delivered = entries
        if self.delivered_path is not None:
            try:
                self.delivered_path.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.delivered_path.with_suffix(".tmp")
                temporary.write_text(json.dumps(entries), encoding="utf-8")
                os.replace(temporary, self.delivered_path)
            except OSError:
                pass  # remembered for this process only

    def close(self) -> None:
        self.session.close()


def _hook_id(webhook: Webhook) -> str:
    """A webhook's name in the partial-delivery memo (a hash: the URL may hold a token)."""
    text = f"{webhook.http_method} {webhook.webhook_url}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
