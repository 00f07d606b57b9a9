"""The site license's expiry: ``GET /qrs/license`` -> measurement ``qlik_sense_server_license``.

Enabled by ``Butler.qlikSenseLicense.serverLicenseMonitor.enable``, as in Butler. The expiry
date comes from the ``Valid To:`` line of the license's ``keyDetails`` text. The point keeps
Butler's field names (``license_expired``, ``expiry_date``, ``days_until_expiry``) but fixes its
faults: the date is read whole (Butler cut it at the first ``:``), and ``days_until_expiry`` is
negative once the license has expired (Butler's was an absolute value). When it is at or below
``alert.thresholdDays`` the agent logs a warning.

The parsing functions are pure and take ``now`` explicitly; :func:`collect` is the thin I/O
part the monitor run calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from pydantic import Field

from agent.alerts import FIRING, KIND_SERVER_EXPIRY, KIND_SERVER_STATUS, STATUS, Alert
from agent.config import ButlerSection, Frequency, SettingsModel
from agent.hookspecs import Settings, hookimpl
from agent.models import (
    FEATURE_SERVER_LICENSE,
    MEASUREMENT_SERVER_LICENSE,
    UTC,
    MetricCollector,
    Point,
    QrsDataError,
    SettingsSection,
)

NAME = "server_license"
#: The key this plugin owns.
PATH = "qlikSenseLicense.serverLicenseMonitor"


class ServerLicenseAlert(SettingsModel):
    #: Log a warning when the site license expires in this many days or fewer.
    threshold_days: int = Field(default=60, alias="thresholdDays", ge=0, le=36500)


class Enabled(ButlerSection):
    """Butler's ``{enable: ...}`` blocks; Butler's other keys there are allowed."""

    enable: bool = False


class ServerLicenseWebhook(ButlerSection):
    """Butler's ``serverLicenseMonitor.destination.webhook``: which webhooks of
    ``Butler.webhookNotification`` get the status (``sendRecurring``) and the expiry alert
    (``sendAlert``)."""

    enable: bool = False
    send_recurring: Enabled = Field(default=Enabled(), alias="sendRecurring")
    send_alert: Enabled = Field(default=Enabled(), alias="sendAlert")


class ServerLicenseDestination(ButlerSection):
    """Where the points and messages go; the influxdb plugin adds ``influxDb`` here."""

    #: Butler's MQTT messages (topics in ``Butler.mqttConfig``), see docs/alerts.md.
    mqtt: Enabled = Enabled()
    #: Butler's outgoing webhooks (``Butler.webhookNotification``), see docs/alerts.md.
    webhook: ServerLicenseWebhook = ServerLicenseWebhook()


class ServerLicenseMonitor(SettingsModel):
    """``Butler.qlikSenseLicense.serverLicenseMonitor``: the site license's expiry."""

    enable: bool = False
    frequency: Frequency = "every 24 hours"
    alert: ServerLicenseAlert = ServerLicenseAlert()
    destination: ServerLicenseDestination = ServerLicenseDestination()


_VALID_TO_RE = re.compile(r"^\s*valid\s*to\s*:\s*(?P<value>.*?)\s*$", re.IGNORECASE | re.MULTILINE)

# Date forms seen in (or plausible for) keyDetails. The time of day, when given, is kept.
_DATE_FORMATS = (
    "%Y-%m-%d %I:%M:%S %p",
    "%Y-%m-%d %I:%M %p",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y",
)


@dataclass(frozen=True, slots=True)
class ServerLicenseStatus:
    """What the agent knows about the site license at one moment.

    ``expiry`` and ``days_until_expiry`` are ``None`` when ``keyDetails`` has no ``Valid To:``
    date (a perpetual license).
    """

    license_expired: bool
    expiry: datetime | None
    days_until_expiry: int | None

    @property
    def expiry_date(self) -> str | None:
        """The expiry as ISO 8601 UTC text, e.g. ``2027-03-16T00:00:00Z``."""
        return self.expiry.strftime("%Y-%m-%dT%H:%M:%SZ") if self.expiry else None


def parse_expiry_date(text: str) -> datetime:
    """Parse the value of a ``Valid To:`` line to an aware UTC datetime.

    Sense writes no time zone; the date is taken as UTC. Raises :class:`QrsDataError` for text
    that is not a date.
    """
    cleaned = " ".join(text.replace("\u202f", " ").split())  # some locales use a narrow NBSP
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise QrsDataError(f"'Valid To' is not a date: {text[:40]!r}")


def parse_valid_to(key_details: str) -> datetime | None:
    """The expiry date from ``keyDetails``; ``None`` when it has no ``Valid To:`` line.

    A license can list several components, each with its own ``Valid To:``; the earliest is
    returned, since that is the first thing that stops working. An empty ``Valid To:`` value
    (seen on perpetual licenses) counts as no date.
    """
    dates = [
        parse_expiry_date(m.group("value"))
        for m in _VALID_TO_RE.finditer(key_details)
        if m.group("value").strip()
    ]
    return min(dates) if dates else None


def days_until(expiry: datetime, now: datetime) -> int:
    """Whole days from ``now`` to ``expiry``, rounded down; negative once expired."""
    return math.floor((expiry - now).total_seconds() / 86400)


def server_license_status(site_license: Mapping[str, Any], now: datetime) -> ServerLicenseStatus:
    """Interpret the ``GET /qrs/license`` object. Raises :class:`QrsDataError` if it cannot."""
    if not isinstance(site_license, Mapping):
        raise QrsDataError("the site license is not an object")
    key_details = site_license.get("keyDetails")
    if key_details is None:
        key_details = ""
    if not isinstance(key_details, str):
        raise QrsDataError("'keyDetails' is not text")
    expiry = parse_valid_to(key_details)
    days = days_until(expiry, now) if expiry is not None else None
    is_expired = site_license.get("isExpired")
    # QRS's own verdict wins (it knows about grace periods); without one, the date decides.
    computed = expiry is not None and expiry <= now
    expired = is_expired if isinstance(is_expired, bool) else computed
    return ServerLicenseStatus(license_expired=expired, expiry=expiry, days_until_expiry=days)


def server_license_point(
    status: ServerLicenseStatus, tags: Mapping[str, str], now: datetime
) -> Point:
    """The ``qlik_sense_server_license`` point for a status.

    ``days_until_expiry`` is a float: Butler's existing series hold floats, and InfluxDB
    rejects a field whose type changes.
    """
    fields: dict[str, bool | float | str] = {"license_expired": status.license_expired}
    if status.expiry_date is not None and status.days_until_expiry is not None:
        fields["expiry_date"] = status.expiry_date
        fields["days_until_expiry"] = float(status.days_until_expiry)
    return Point(
        measurement=MEASUREMENT_SERVER_LICENSE,
        tags=dict(tags),
        fields=fields,
        time=now,
        feature=FEATURE_SERVER_LICENSE,
    )


def static_tags(settings: ServerLicenseMonitor, site: Any) -> dict[str, str]:
    """``Butler.influxDb.tag.static``, then the feature's own static tags (which win)."""
    tags = dict(getattr(site, "influx_tags", ()) or ())
    # Butler keeps them in destination.influxDb (the influxdb plugin's key, when it is loaded).
    influx = getattr(settings.destination, "influx_db", None)
    static = getattr(getattr(influx, "tag", None), "static", None) or ()
    tags.update((t.name, t.value) for t in static)
    if getattr(site, "site_tag", False):
        tags["site"] = site.name  # reserved, as in SiteConfig.static_tags
    return tags


def log_status(status: ServerLicenseStatus, threshold_days: int, site_name: str) -> None:
    where = f" on {site_name}" if site_name else ""
    if status.expiry_date is None:
        logger.info("site license{}: no 'Valid To' date in keyDetails (perpetual)", where)
        return
    days = status.days_until_expiry
    if status.license_expired or (days is not None and days < 0):
        logger.warning("site license{} has EXPIRED (valid to {})", where, status.expiry_date)
    elif days is not None and days <= threshold_days:
        logger.warning(
            "site license{} expires in {} days ({}); alert threshold is {} days"
            " (serverLicenseMonitor.alert.thresholdDays)",
            where,
            days,
            status.expiry_date,
            threshold_days,
        )
    else:
        logger.info("site license{} expires in {} days ({})", where, days, status.expiry_date)


def butler_alerts(
    status: ServerLicenseStatus, threshold_days: int, now: datetime, site: str = ""
) -> list[Alert]:
    """Butler's site license messages: the status on every run, and the expiry alert when the
    license has expired or expires within ``threshold_days``. Pure.

    The fields are Butler's (``licenseExpired``, ``expiryDateStr``, ``daysUntilExpiry``, and
    its ``event`` texts), with the agent's values: the whole date and signed days.
    """
    where = f" on {site}" if site else ""
    fields = {
        "licenseExpired": status.license_expired,
        "expiryDateStr": status.expiry_date,
        "daysUntilExpiry": status.days_until_expiry,
    }
    days = status.days_until_expiry
    if status.expiry_date is None:
        summary = f"The site license{where} has no expiry date"
    elif status.license_expired:
        summary = f"The site license{where} expired on {status.expiry_date}"
    else:
        summary = f"The site license{where} expires in {days} days, on {status.expiry_date}"
    alerts = [
        Alert(
            key="server_license:status",
            kind=KIND_SERVER_STATUS,
            state=STATUS,
            title=summary,
            text=summary + ".",
            time=now,
            site=site,
            severity="info",
            details={**fields, "event": "server license status"},
        )
    ]
    expiring = days is not None and days <= threshold_days
    if status.license_expired or (status.expiry_date is not None and expiring):
        event = (
            "server license has expired alert"
            if status.license_expired
            else "server license about to expire alert"
        )
        alerts.append(
            Alert(
                key="server_license:expiry",
                kind=KIND_SERVER_EXPIRY,
                state=FIRING,
                title=summary,
                text=(
                    f"{summary}. Renew the license in time: Qlik Sense stops serving users"
                    " when it expires. The alert threshold is"
                    f" {threshold_days} days (serverLicenseMonitor.alert.thresholdDays)."
                ),
                time=now,
                site=site,
                severity="critical",
                details={**fields, "event": event},
            )
        )
    return alerts


def _sends_butler_alerts(settings: ServerLicenseMonitor) -> bool:
    """``destination.mqtt.enable`` or ``destination.webhook.enable``, as in Butler."""
    destination = settings.destination
    return any(
        bool(getattr(getattr(destination, name, None), "enable", False))
        for name in ("mqtt", "webhook")
    )


def make_collector(settings: ServerLicenseMonitor) -> MetricCollector:
    def collect(qrs: Any, now: datetime, site: Any = None) -> Sequence[Point]:
        status = server_license_status(qrs.site_license(), now)
        site_name = getattr(site, "name", "")
        log_status(status, settings.alert.threshold_days, site_name)
        points = [server_license_point(status, static_tags(settings, site), now)]
        if _sends_butler_alerts(settings):
            alerts = butler_alerts(status, settings.alert.threshold_days, now, site_name)
            points.extend(alert.to_point() for alert in alerts)
        return points

    return MetricCollector(
        name=NAME,
        collect=collect,
        description="site license expiry from GET /qrs/license (qlik_sense_server_license)",
        frequency=settings.frequency,
    )


@hookimpl
def sla_settings() -> list[SettingsSection]:
    # One collector job for every site, on one schedule: a site cannot override it.
    return [SettingsSection(PATH, ServerLicenseMonitor, per_site=False)]


@hookimpl
def sla_metric_collectors(settings: Settings) -> Sequence[MetricCollector] | None:
    monitor = settings[PATH]
    if monitor is None or not monitor.enable:
        return None
    return [make_collector(monitor)]
