"""Early warning for access licenses: thresholds and a forecast, after every monitor run.

Settings: ``Butler.qlikSenseLicense.licenseMonitor.alert`` (agent keys)::

    alert:
      enable: true
      repeatHours: 24          # an ongoing condition is sent again this often (0: never)
      historyDays: 30          # the forecast's window
      licenseType:
        professional:
          availableBelow: 10          # fewer than 10 available
          availableBelowPercent: 5    # fewer than 5 % of the total available
          excess: true                # any allocation in excess of the license
          forecastDays: 30            # available reaches 0 within 30 days at the recent rate

After each monitor run, the conditions of each configured type are evaluated on the run's
``qlik_sense_license`` point (and, for the forecast, the SQLite history: the ``sqlite``
destination must be enabled). :mod:`agent.alerts` turns them into ``firing`` / ``repeat`` /
``resolved`` alerts, whose state is kept in ``stateDir``; the alerts go to every enabled alert
channel through the outbox. The state is saved only after the alerts are in the outbox, so a
crash in between sends an alert twice rather than never.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from pydantic import Field

from agent.alerts import (
    AlertStateStore,
    AlertView,
    Sample,
    Thresholds,
    access_conditions,
    at_todays_total,
    forecast_exhaustion,
    transitions,
)
from agent.config import ConfigError
from agent.hookspecs import hookimpl
from agent.models import MEASUREMENT_LICENSE, AlertBatch, Point, SettingsSection
from plugins.alerts._common import Settings
from plugins.alerts.chat import ChatSettings
from plugins.alerts.email import EmailSettings

if TYPE_CHECKING:
    from agent.config import AgentConfig

NAME = "early_warning"
PATH = "qlikSenseLicense.licenseMonitor.alert"


class TypeThresholds(Settings):
    available_below: float | None = Field(default=None, alias="availableBelow", ge=0)
    available_below_percent: float | None = Field(
        default=None, alias="availableBelowPercent", gt=0, le=100
    )
    excess: bool = False
    forecast_days: float | None = Field(default=None, alias="forecastDays", gt=0, le=3650)

    def core(self) -> Thresholds:
        return Thresholds(
            available_below=self.available_below,
            available_below_percent=self.available_below_percent,
            excess=self.excess,
            forecast_days=self.forecast_days,
        )


class Enable(Settings):
    enable: bool = False


class AlertDestinations(Settings):
    """``licenseMonitor.alert.destination``: the channels that receive access license alerts.

    ``mqtt`` and ``webhook`` use Butler's ``mqttConfig`` and ``webhookNotification`` (topic
    ``licenseAlertTopic``, webhooks ``licenseAgentAlert``); the others carry their settings.
    """

    mqtt: Enable = Enable()
    webhook: Enable = Enable()
    teams: ChatSettings = ChatSettings()
    slack: ChatSettings = ChatSettings()
    email: EmailSettings = EmailSettings()


class LicenseAlert(Settings):
    """``qlikSenseLicense.licenseMonitor.alert``."""

    enable: bool = False
    repeat_hours: float = Field(default=24, alias="repeatHours", ge=0, le=8760)
    history_days: float = Field(default=30, alias="historyDays", ge=2, le=3650)
    license_type: dict[str, TypeThresholds] = Field(default_factory=dict, alias="licenseType")
    destination: AlertDestinations = AlertDestinations()

    @property
    def repeat(self) -> timedelta | None:
        return timedelta(hours=self.repeat_hours) if self.repeat_hours else None

    @property
    def needs_history(self) -> bool:
        return any(t.forecast_days is not None for t in self.license_type.values())


def history_samples(
    path: Path, site_tag: str, license_types: Sequence[str]
) -> dict[str, list[Sample]]:
    """``(time, available, total)`` per license type from the SQLite history of one site."""
    # Imported here: the HTML report module is only needed when a forecast is configured.
    from agent.htmlreport import load_history

    samples: dict[str, list[Sample]] = {name: [] for name in license_types}
    if not path.is_file():
        return samples  # no run has been stored yet: this run's point is the history
    for series in load_history(path).usage:
        if series.site != site_tag or series.license_type not in samples:
            continue
        samples[series.license_type] = [
            (s.time, float(v), _finite(s.values.get("total")))
            for s in series.snapshots
            if (v := _finite(s.values.get("available"))) is not None
        ]
    return samples


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def evaluate(
    settings: LicenseAlert,
    points: Sequence[Point],
    now: datetime,
    *,
    site: str,
    state_dir: Path,
    history_path: Path | None,
) -> AlertBatch | None:
    """The alerts of one monitor run of one site, and how to commit their state."""
    current = {
        str(p.tags.get("license_type")): p for p in points if p.measurement == MEASUREMENT_LICENSE
    }
    configured = [name for name in settings.license_type if name in current]
    site_tag = next(iter(current.values())).tags.get("site", "") if current else ""
    samples: dict[str, list[Sample]] = {}
    if history_path is not None and any(
        settings.license_type[n].forecast_days is not None for n in configured
    ):
        samples = history_samples(history_path, site_tag, configured)
    active = []
    for name in configured:
        thresholds = settings.license_type[name]
        fields = current[name].fields
        forecast = None
        if thresholds.forecast_days is not None:
            available = _finite(fields.get("available", fields.get("available_tokens")))
            total = _finite(fields.get("total"))
            history = [s for s in samples.get(name, []) if s[0] < now]
            if available is not None:
                history.append((now, available, total))
            forecast = forecast_exhaustion(
                name, at_todays_total(history, total), history_days=settings.history_days, now=now
            )
        active.extend(access_conditions(name, fields, thresholds.core(), forecast, site=site))
    store = AlertStateStore(state_dir)
    sites = store.load()
    state = sites.setdefault(site, {})
    alerts = transitions(active, state, now, settings.repeat, site=site, scope=configured)
    return AlertBatch(points=[a.to_point() for a in alerts], commit=lambda: store.save(sites))


def settings_of(where: Any) -> LicenseAlert:
    """The alert settings of a config or of one site (sites may override them)."""
    return where.settings(PATH) or LicenseAlert()


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(path=PATH, model=LicenseAlert)]


@hookimpl
def sla_configure(config: AgentConfig) -> None:
    """A forecast without a history to read would never fire: a config error, not silence."""
    if sqlite_history(config) is not None:
        return
    problems = [
        f"{prefix}qlikSenseLicense.licenseMonitor.alert.licenseType.{name}.forecastDays:"
        " the forecast reads the license history; enable the sqlite destination"
        " (Butler.licenseAgent.destinations.sqlite.enable: true) or remove forecastDays"
        for prefix, where in [
            ("Butler.", config),
            *((f"site {s.name}: Butler.", s) for s in config.sites()),
        ]
        for name, thresholds in settings_of(where).license_type.items()
        if settings_of(where).enable and thresholds.forecast_days is not None
    ]
    if problems:
        raise ConfigError(sorted(set(problems)))


def sqlite_history(config: AgentConfig) -> Path | None:
    sqlite = config.settings("licenseAgent.destinations.sqlite")
    if sqlite is None or not getattr(sqlite, "enable", False):
        return None
    return getattr(sqlite, "path", None) or config.base_dir / "license-agent.sqlite"


@hookimpl
def sla_alerts(config: AgentConfig, site: Any, points: Sequence[Point], now: datetime):
    settings = settings_of(site)
    if not settings.enable or not settings.license_type:
        return None
    unknown = sorted(
        set(settings.license_type)
        - {str(p.tags.get("license_type")) for p in points if p.measurement == MEASUREMENT_LICENSE}
    )
    if unknown:
        logger.warning(
            "licenseMonitor.alert.licenseType: no point of {} in this run (not in the license"
            " overview, or no such license type); their alerts are not evaluated",
            ", ".join(unknown),
        )
    history = sqlite_history(config) if settings.needs_history else None
    return evaluate(
        settings,
        points,
        now,
        site=getattr(site, "name", "") or "",
        state_dir=config.state_dir,
        history_path=Path(history) if history is not None else None,
    )


@hookimpl
def sla_alert_view(config: AgentConfig) -> AlertView | None:
    settings = settings_of(config)
    if not settings.enable:
        return None
    active = [
        (site, state.license_type, state.title, state.since)
        for site, conditions in AlertStateStore(config.state_dir).load().items()
        for state in conditions.values()
    ]
    return AlertView(
        thresholds={name: t.core() for name, t in settings.license_type.items()},
        history_days=settings.history_days,
        active=sorted(active, key=lambda a: (a[0], a[1], a[3])),
    )
