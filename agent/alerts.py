"""Early warning: the conditions that raise an alert, the forecast, and the alert's life cycle.

An *alert* is a message for the admins (MQTT, webhooks, Teams, Slack, e-mail). The alert
plugins decide *when* there is something to say; the channels (destinations enabled for the
``alert`` feature) decide *how* to say it. Alerts travel as :class:`agent.models.Point` objects
of measurement ``license_agent_alert`` through the same durable outbox as every other point, so a
channel that is down gets its alerts later and never blocks another channel or the monitor run.

Everything here is pure (data in, decision out) except :class:`AlertStateStore`, which keeps the
life cycle of each condition in ``stateDir`` so that a restart neither repeats nor forgets an
alert:

* a condition that starts fires **once** (``firing``),
* while it lasts it is repeated at most every ``repeatHours`` (``repeat``),
* when it ends a ``resolved`` message is sent, once.

The forecast (:func:`forecast_exhaustion`) is an ordinary least-squares line through the
``available`` counts of the last ``historyDays`` days, moved to today's total first
(:func:`at_todays_total`); see docs/alerts.md for the method and its uncertainty.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.models import FEATURE_ALERT, MEASUREMENT_ALERT, UTC, Point

#: Alert states, as the ``state`` tag of an alert point.
FIRING = "firing"
REPEAT = "repeat"
RESOLVED = "resolved"
#: Butler's recurring site-license status (not a condition: sent on every run).
STATUS = "status"
#: ``license-agent alert test``.
TEST = "test"

#: Alert kinds, as the ``kind`` tag: what the alert is about.
KIND_ACCESS = "access_license"
KIND_SERVER_STATUS = "server_license_status"
KIND_SERVER_EXPIRY = "server_license_expiry"
KIND_TEST = "test"

STATE_FILE = "alerts-state.json"
#: A state file larger than this is refused unread.
MAX_STATE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Alert:
    """One message for the channels."""

    key: str
    kind: str
    state: str
    title: str
    text: str
    time: datetime
    site: str = ""
    license_type: str = ""
    severity: str = "warning"
    #: Values a channel may show or send as they are (Butler's payload fields, counts, dates).
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_point(self) -> Point:
        tags = {"alert": self.key, "kind": self.kind, "state": self.state}
        if self.site:
            tags["site"] = self.site
        if self.license_type:
            tags["license_type"] = self.license_type
        return Point(
            measurement=MEASUREMENT_ALERT,
            tags=tags,
            fields={
                "title": self.title,
                "text": self.text,
                "severity": self.severity,
                "details": json.dumps(dict(self.details), sort_keys=True, default=str),
            },
            time=self.time,
            feature=FEATURE_ALERT,
        )

    def butler_fields(self) -> dict[str, Any]:
        """Butler's site license payload (MQTT status, webhooks): three fields, its names."""
        return {
            "licenseExpired": self.details.get("licenseExpired"),
            "expiryDateStr": self.details.get("expiryDateStr"),
            "daysUntilExpiry": self.details.get("daysUntilExpiry"),
        }

    def message(self) -> dict[str, Any]:
        """The agent's own JSON message for MQTT and webhooks (access license and test
        alerts); docs/alerts.md lists the fields."""
        return {
            "event": "license agent test" if self.kind == KIND_TEST else "license agent alert",
            "state": self.state,
            "alert": self.key,
            "licenseType": self.license_type,
            "site": self.site,
            "severity": self.severity,
            "title": self.title,
            "text": self.text,
            "time": _iso(self.time),
            "details": dict(self.details),
        }

    @classmethod
    def from_point(cls, point: Point) -> Alert:
        details = point.fields.get("details") or "{}"
        try:
            parsed = json.loads(details) if isinstance(details, str) else dict(details)
        except ValueError:
            parsed = {}
        return cls(
            key=str(point.tags.get("alert", "")),
            kind=str(point.tags.get("kind", "")),
            state=str(point.tags.get("state", "")),
            title=str(point.fields.get("title", "")),
            text=str(point.fields.get("text", "")),
            time=point.time,
            site=str(point.tags.get("site", "")),
            license_type=str(point.tags.get("license_type", "")),
            severity=str(point.fields.get("severity", "warning")),
            details=parsed,
        )


def alerts_in(points: Iterable[Point]) -> list[Alert]:
    """The alerts among ``points`` (a channel's ``write`` receives only those, in practice)."""
    return [Alert.from_point(p) for p in points if p.measurement == MEASUREMENT_ALERT]


# --------------------------------------------------------------------------- forecast


@dataclass(frozen=True)
class Forecast:
    """When ``available`` reaches 0 at the recent rate.

    ``days_left`` is counted from the latest sample. ``earliest``/``latest`` bound the date with
    the slope +/- two standard errors (about 95 %); ``latest`` is ``None`` when, within that
    uncertainty, the trend may not be falling at all.
    """

    license_type: str
    available: float
    slope_per_day: float
    slope_error: float
    samples: int
    last_time: datetime
    days_left: float
    date: datetime
    earliest: datetime
    latest: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "license_type": self.license_type,
            "available": self.available,
            "slope_per_day": round(self.slope_per_day, 4),
            "slope_error": round(self.slope_error, 4),
            "samples": self.samples,
            "days_left": round(self.days_left, 1),
            "date": _iso(self.date),
            "earliest": _iso(self.earliest),
            "latest": _iso(self.latest) if self.latest else None,
        }


#: Fewer samples, or a shorter span, give no forecast: a line through two points says nothing.
MIN_SAMPLES = 3
MIN_SPAN = timedelta(days=2)
#: A date further away than this (100 years) is no forecast: nothing runs out in any horizon
#: that matters, and a near-flat line's date would pass the calendar's end (year 9999).
MAX_FORECAST_DAYS = 36525


#: One stored run: its time, ``available`` and ``total`` (``None`` when not stored).
Sample = tuple[datetime, float, float | None]


def at_todays_total(history: Sequence[Sample], total: float | None) -> list[tuple[datetime, float]]:
    """``(time, available)`` as if the current total had applied all along: licenses bought
    (or removed) within the window shift ``available`` at once, which a line through the raw
    counts would take for a turn of the trend (an alert resolved, then silence while the
    purchase stays in the window). Runs without a stored total are taken as they are."""
    return [
        (when, available + (total - then if total is not None and then is not None else 0.0))
        for when, available, then in history
    ]


def forecast_exhaustion(
    license_type: str,
    samples: Sequence[tuple[datetime, float]],
    *,
    history_days: float = 30,
    now: datetime | None = None,
) -> Forecast | None:
    """Fit ``available`` against time over the last ``history_days`` and extrapolate to 0.

    :param samples: ``(time, available)`` pairs, any order; ``None`` values must be left out.
    :return: ``None`` when there is too little history, the trend is not falling, or nothing
        is available already (the ``availableBelow`` thresholds cover that).
    """
    if not samples:
        return None
    ordered = sorted(samples)
    end = now or ordered[-1][0]
    start = end - timedelta(days=history_days)
    window = [(t, float(v)) for t, v in ordered if start <= t <= end and math.isfinite(v)]
    if len(window) < MIN_SAMPLES or window[-1][0] - window[0][0] < MIN_SPAN:
        return None
    origin = window[-1][0]
    xs = [(t - origin).total_seconds() / 86400 for t, _ in window]
    ys = [v for _, v in window]
    n = len(xs)
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    slope_error = math.sqrt(residual / (n - 2) / sxx) if n > 2 else 0.0
    available = ys[-1]
    if slope >= 0 or available <= 0 or available / -slope > MAX_FORECAST_DAYS:
        return None
    days_left = available / -slope
    steep = slope - 2 * slope_error
    shallow = slope + 2 * slope_error
    if shallow < 0 and available / -shallow > MAX_FORECAST_DAYS:
        shallow = 0.0  # the slow end of the range is "never" (within the horizon)
    return Forecast(
        license_type=license_type,
        available=available,
        slope_per_day=slope,
        slope_error=slope_error,
        samples=n,
        last_time=origin,
        days_left=days_left,
        date=origin + timedelta(days=days_left),
        earliest=origin + timedelta(days=available / -steep),
        latest=origin + timedelta(days=available / -shallow) if shallow < 0 else None,
    )


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Thresholds:
    """The ``licenseMonitor.alert.licenseType.<name>`` settings of one type (None: off)."""

    available_below: float | None = None
    available_below_percent: float | None = None
    excess: bool = False
    forecast_days: float | None = None


@dataclass(frozen=True)
class Condition:
    """A condition that holds now: the alert's key, what to say, and its values."""

    key: str
    license_type: str
    title: str
    text: str
    details: Mapping[str, Any] = field(default_factory=dict)
    severity: str = "warning"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _count(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def access_conditions(
    license_type: str,
    fields: Mapping[str, Any],
    thresholds: Thresholds,
    forecast: Forecast | None = None,
    site: str = "",
) -> list[Condition]:
    """The conditions of one license type that hold for one monitor point's fields. Pure."""
    where = f" on {site}" if site else ""
    available = _count(fields.get("available", fields.get("available_tokens")))
    total = _count(fields.get("total", fields.get("total_tokens")))
    excess = _count(fields.get("excess"))
    counts = {"available": available, "total": total, "excess": excess}
    found: list[Condition] = []
    if (
        thresholds.available_below is not None
        and available is not None
        and available < thresholds.available_below
    ):
        found.append(
            Condition(
                key=f"{license_type}:available_below",
                license_type=license_type,
                title=f"{license_type}: {available:g} licenses available{where}",
                text=(
                    f"Only {available:g} {license_type} licenses are available{where}"
                    f" (of {total:g}); the alert threshold is {thresholds.available_below:g}."
                    if total is not None
                    else f"Only {available:g} {license_type} licenses are available{where};"
                    f" the alert threshold is {thresholds.available_below:g}."
                ),
                details={**counts, "threshold": thresholds.available_below},
                severity="critical" if available <= 0 else "warning",
            )
        )
    if (
        thresholds.available_below_percent is not None
        and available is not None
        and total
        and available / total * 100 < thresholds.available_below_percent
    ):
        percent = available / total * 100
        found.append(
            Condition(
                key=f"{license_type}:available_below_percent",
                license_type=license_type,
                title=f"{license_type}: {percent:.1f} % of licenses available{where}",
                text=(
                    f"{available:g} of {total:g} {license_type} licenses ({percent:.1f} %) are"
                    f" available{where}; the alert threshold is"
                    f" {thresholds.available_below_percent:g} %."
                ),
                details={
                    **counts,
                    "percent": round(percent, 2),
                    "threshold_percent": thresholds.available_below_percent,
                },
            )
        )
    if thresholds.excess and excess:
        found.append(
            Condition(
                key=f"{license_type}:excess",
                license_type=license_type,
                title=f"{license_type}: {excess:g} allocations in excess{where}",
                text=(
                    f"{excess:g} {license_type} allocations are in excess of the license"
                    f"{where}: more are allocated than the license allows. Buy more licenses or"
                    " release some."
                ),
                details=counts,
                severity="critical",
            )
        )
    if (
        thresholds.forecast_days is not None
        and forecast is not None
        and forecast.days_left < thresholds.forecast_days
    ):
        found.append(
            Condition(
                key=f"{license_type}:forecast",
                license_type=license_type,
                title=(f"{license_type}: licenses run out about {forecast.date:%Y-%m-%d}{where}"),
                text=(
                    f"At the rate of the last {forecast.samples} monitor runs"
                    f" ({-forecast.slope_per_day:.2f} fewer available per day), the"
                    f" {forecast.available:g} available {license_type} licenses{where} run out"
                    f" in about {forecast.days_left:.0f} days, on {forecast.date:%Y-%m-%d}"
                    f" (between {forecast.earliest:%Y-%m-%d} and "
                    + (f"{forecast.latest:%Y-%m-%d}" if forecast.latest else "never")
                    + f"). The alert threshold is {thresholds.forecast_days:g} days."
                ),
                details={
                    **counts,
                    **forecast.to_dict(),
                    "threshold_days": thresholds.forecast_days,
                },
            )
        )
    return found


@dataclass(frozen=True)
class AlertView:
    """What the alert settings add to the HTML report (``sla_alert_view``): thresholds and forecast lines on the usage
    charts (per license type), and the alerts that are active now."""

    thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    history_days: float = 30
    #: ``(site, license type, title, since)`` of each active alert.
    active: Sequence[tuple[str, str, str, datetime]] = ()


# --------------------------------------------------------------------------- life cycle


@dataclass
class ConditionState:
    since: datetime
    last_sent: datetime
    title: str
    license_type: str = ""
    site: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "since": _iso(self.since),
            "last_sent": _iso(self.last_sent),
            "title": self.title,
            "license_type": self.license_type,
            "site": self.site,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConditionState:
        return cls(
            since=_aware(data["since"], "since"),
            last_sent=_aware(data["last_sent"], "last_sent"),
            title=str(data.get("title", "")),
            license_type=str(data.get("license_type", "")),
            site=str(data.get("site", "")),
        )


def _aware(value: Any, key: str) -> datetime:
    """A state file's time: ISO 8601 with a time zone (``Z``), as :meth:`to_dict` writes it. A
    time without one cannot be compared with now (a hand-edited file): an error, not a guess."""
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a time: {str(value)[:40]!r}")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{key} {value[:40]!r} has no time zone")
    return moment


def transitions(
    active: Sequence[Condition],
    state: dict[str, ConditionState],
    now: datetime,
    repeat: timedelta | None,
    *,
    site: str = "",
    scope: Iterable[str] | None = None,
) -> list[Alert]:
    """The alerts to send now, and ``state`` updated in place. Pure apart from ``state``.

    :param state: the conditions that were active, by key (for one site).
    :param repeat: how often an ongoing condition is sent again; ``None`` never.
    :param scope: the keys this evaluation could have seen (the license types read in this
        run): a condition of a type that was not read is neither repeated nor resolved.
    """
    alerts: list[Alert] = []
    seen = {c.key for c in active}
    for condition in active:
        previous = state.get(condition.key)
        if previous is None:
            state_name = FIRING
            state[condition.key] = ConditionState(
                since=now,
                last_sent=now,
                title=condition.title,
                license_type=condition.license_type,
                site=site,
            )
        elif previous.last_sent > now:
            # Sent by a clock that was ahead and has been put back: the repeat counts from
            # now, not from a moment that may be months away.
            previous.last_sent = now
            previous.title = condition.title
            continue
        elif repeat is not None and now - previous.last_sent >= repeat:
            state_name = REPEAT
            previous.last_sent = now
            previous.title = condition.title
        else:
            previous.title = condition.title
            continue
        alerts.append(
            Alert(
                key=condition.key,
                kind=KIND_ACCESS,
                state=state_name,
                title=condition.title,
                text=condition.text,
                time=now,
                site=site,
                license_type=condition.license_type,
                severity=condition.severity,
                details={**condition.details, "since": _iso(state[condition.key].since)},
            )
        )
    in_scope = set(scope) if scope is not None else None
    for key in sorted(set(state) - seen):
        ended = state[key]
        if in_scope is not None and ended.license_type not in in_scope:
            continue
        del state[key]
        alerts.append(
            Alert(
                key=key,
                kind=KIND_ACCESS,
                state=RESOLVED,
                title=f"Resolved: {ended.title}",
                text=f"Resolved: {ended.title} (active since {_iso(ended.since)}).",
                time=now,
                site=site,
                license_type=ended.license_type,
                severity="info",
                details={"since": _iso(ended.since)},
            )
        )
    return alerts


class AlertStateError(RuntimeError):
    """The alert state file cannot be read or written; the message names the file."""


class AlertStateStore:
    """The active conditions per site, in ``stateDir/alerts-state.json``.

    Written atomically (a temporary file, then ``os.replace``), so a crash leaves the old or
    the new state, never half of one. A state file that is not readable is reported, not
    silently reset: resetting would send every active alert again.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STATE_FILE

    def load(self) -> dict[str, dict[str, ConditionState]]:
        if not self.path.exists():
            return {}
        try:
            size = self.path.stat().st_size
            if size > MAX_STATE_BYTES:
                # A few hundred bytes per active condition: this is no state the agent wrote.
                raise ValueError(
                    f"the file is too large ({size:,} bytes; the agent writes a few kB)"
                )
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                site: {key: ConditionState.from_dict(v) for key, v in conditions.items()}
                for site, conditions in raw.get("sites", {}).items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AlertStateError(
                f"{self.path}: cannot read the alert state ({exc}); move the file away to"
                " start afresh (active alerts are then sent once more)"
            ) from exc

    def save(self, sites: Mapping[str, Mapping[str, ConditionState]]) -> None:
        data = {
            "version": 1,
            "sites": {
                site: {key: state.to_dict() for key, state in sorted(conditions.items())}
                for site, conditions in sorted(sites.items())
                if conditions
            },
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                prefix=".alerts-", suffix=".tmp", dir=self.path.parent
            )
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=2)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise AlertStateError(
                f"{self.path}: cannot write the alert state ({exc.strerror or exc});"
                " check that the folder (Butler.licenseAgent.stateDir) is writable"
            ) from exc


# --------------------------------------------------------------------------- alert test


@dataclass(frozen=True)
class ChannelResult:
    channel: str
    where: str
    ok: bool
    message: str


def test_alert(now: datetime, site: str = "") -> Alert:
    """The message ``license-agent alert test`` sends."""
    return Alert(
        key="test",
        kind=KIND_TEST,
        state=TEST,
        title="Test alert from sense-license-agent",
        text=(
            "This is a test of the alert channel, sent by `license-agent alert test`. If you"
            " read this, alerts about Qlik Sense licenses will reach you here."
        ),
        time=now,
        site=site,
        severity="info",
    )


def send_test_alerts(channels: Sequence[Any], now: datetime) -> list[ChannelResult]:
    """Send the test alert to each channel directly (not through the outbox: the admin wants
    to know now), one channel's failure never stopping the next."""
    point = test_alert(now).to_point()
    results = []
    for channel in channels:
        where = channel.describe()
        try:
            channel.write([point])
        except Exception as exc:  # a channel's failure is its result, whatever it is
            results.append(ChannelResult(channel.name, where, False, str(exc)))
        else:
            results.append(ChannelResult(channel.name, where, True, "sent"))
    return results
