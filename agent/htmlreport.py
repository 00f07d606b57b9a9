"""The HTML report: the SQLite license history as one self-contained page of charts.

:func:`load_history` reads what the ``sqlite`` destination wrote (``license_snapshot`` and
``release_event``), :func:`load_decisions` reads the decision report of a release run
(``release --report``), and :func:`render_html` turns both into a single HTML file: license usage
over time per license type (total, allocated, used, available, quarantined), releases per day
per type, the allocations ``release restore`` gave back, and the latest release run's decisions
and the rules that kept allocations. The charts
are inline SVG drawn here, styled by an inline stylesheet; the page loads nothing from anywhere
and runs no JavaScript, so it opens the same from a file share, a mail attachment or an offline
server. Hovering a point or bar shows its value (SVG ``<title>``).

Everything is drawn in UTC, the zone the agent's schedules and timestamps use. The functions are
pure apart from the two loaders and :func:`write_html`, so the rendering is tested without files.
"""

from __future__ import annotations

import html
import json
import math
import os
import secrets
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from agent import __version__
from agent.alerts import AlertView, Forecast, Thresholds, at_todays_total, forecast_exhaustion
from agent.models import (
    MEASUREMENT_LICENSE,
    MEASUREMENT_RESTORE,
    UTC,
    Point,
    QrsDataError,
    parse_qrs_time,
)
from agent.monitor import overview_row

#: The usage fields charted per license type, in legend order: (field, label, color, dash).
USAGE_SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("total", "Total", "#6b7280", "6 4"),
    ("allocated", "Allocated", "#2563eb", ""),
    ("used", "Used", "#16a34a", ""),
    ("available", "Available", "#0891b2", ""),
    ("quarantined", "Quarantined", "#ea580c", ""),
)

#: Colors of license types in the bar charts; other types take the palette in order.
TYPE_COLORS = {"professional": "#2563eb", "analyzer": "#9333ea"}
_PALETTE = ("#0d9488", "#d97706", "#db2777", "#4b5563", "#65a30d")

#: Decision outcomes as the report shows them, in the order the release report lists them.
DECISION_LABELS: tuple[tuple[str, str], ...] = (
    ("released", "Released"),
    ("quarantined", "Quarantined by QRS"),
    ("would_release", "Would release (dry run)"),
    ("failed", "Failed"),
    ("already_gone", "Already gone"),
    ("kept", "Kept by a rule"),
    ("skipped_quarantined", "Skipped: in quarantine"),
    ("not_eligible", "Not eligible yet"),
)

#: Above this many days the release chart counts per week instead of per day.
MAX_DAY_BARS = 120
#: Series with at most this many points get a marker on every point.
MARKER_LIMIT = 60
#: The shortest time axis drawn; runs closer together are centred on it.
MIN_SPAN = timedelta(hours=1)
#: A snapshot older than this when the report is made gets a warning on the page.
STALE_AFTER = timedelta(days=2)


class ReportError(Exception):
    """The history or the decision report cannot be read; the message says which file and why."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Snapshot:
    """One monitor run's counts for one license type (``None``: not reported by QRS)."""

    time: datetime
    values: Mapping[str, float | None]


@dataclass
class UsageSeries:
    site: str
    license_type: str
    snapshots: list[Snapshot] = field(default_factory=list)

    def has_usage(self) -> bool:
        """False when every value is missing or zero (a type the site does not use)."""
        return any(v for s in self.snapshots for v in s.values.values())


@dataclass(frozen=True)
class ReleaseCount:
    """Allocations released on one UTC day, of one type, on one site."""

    site: str
    day: date
    license_type: str
    released: int
    #: Of ``released``, those QRS put into its 7-day quarantine instead of freeing them.
    quarantined: int = 0


@dataclass(frozen=True)
class RestoreRow:
    """One allocation ``release restore`` gave back (a ``qlik_sense_license_restore`` point)."""

    site: str
    time: datetime
    license_type: str
    user: str
    reinstated: bool
    run_id: str
    release_run_id: str


@dataclass
class History:
    """What the SQLite file holds, grouped for the charts."""

    path: Path | None = None
    usage: list[UsageSeries] = field(default_factory=list)
    releases: list[ReleaseCount] = field(default_factory=list)
    restores: list[RestoreRow] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len({s.time for series in self.usage for s in series.snapshots})

    @property
    def first(self) -> datetime | None:
        times = [s.time for series in self.usage for s in series.snapshots]
        return min(times) if times else None

    @property
    def last(self) -> datetime | None:
        times = [s.time for series in self.usage for s in series.snapshots]
        return max(times) if times else None

    def sites(self) -> list[str]:
        names = {s.site for s in self.usage} | {r.site for r in self.releases}
        return sorted(names | {r.site for r in self.restores})


def threshold_lines(series: UsageSeries, thresholds: Thresholds | None) -> list[tuple[str, float]]:
    """The ``available`` values at which an alert starts, with their labels."""
    if thresholds is None or not series.snapshots:
        return []
    lines = []
    if thresholds.available_below is not None:
        lines.append((f"alert below {thresholds.available_below:g}", thresholds.available_below))
    total = series.snapshots[-1].values.get("total")
    if thresholds.available_below_percent is not None and total:
        value = total * thresholds.available_below_percent / 100
        lines.append((f"alert below {thresholds.available_below_percent:g} %", value))
    return lines


def series_forecast(series: UsageSeries, history_days: float) -> Forecast | None:
    """The forecast the alert makes (:func:`agent.alerts.at_todays_total`: purchases within
    the window are not a turn of the trend)."""

    def number(value: object) -> float | None:
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    samples = [
        (s.time, v, number(s.values.get("total")))
        for s in series.snapshots
        if (v := number(s.values.get("available"))) is not None
    ]
    total = samples[-1][2] if samples else None
    return forecast_exhaustion(
        series.license_type, at_todays_total(samples, total), history_days=history_days
    )


def _site_of(tags_json: str | None) -> str:
    try:
        tags = json.loads(tags_json or "{}")
    except ValueError:
        return ""
    value = tags.get("site") if isinstance(tags, dict) else None
    return value if isinstance(value, str) else ""


def _time(text: str, time_ns: int | None) -> datetime:
    try:
        parsed = parse_qrs_time(text)
    except QrsDataError:
        parsed = None
    if parsed is None and time_ns is not None:
        parsed = datetime.fromtimestamp(time_ns / 1e9, UTC)
    return parsed or datetime.fromtimestamp(0, UTC)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise ReportError(
            f"{path}: no such file. The SQLite history is written by the sqlite destination"
            " (Butler.licenseAgent.destinations.sqlite.enable: true); run `license-agent"
            " monitor --once` once it is enabled, or try `license-agent demo`"
        )
    try:
        # Read-write mode (never creating the file) with writes refused by query_only, not
        # mode=ro: closing a read-only connection cannot checkpoint, so it would leave the
        # -wal and -shm files it created beside the history. A file the OS write-protects is
        # still opened (read-only).
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=rw", uri=True)
        db.execute("PRAGMA query_only = ON")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        raise ReportError(f"{path}: cannot read it as a SQLite file: {exc}") from None
    if "license_snapshot" not in tables:
        db.close()
        raise ReportError(
            f"{path}: not a license-agent history (no license_snapshot table); point --db at"
            " the file of Butler.licenseAgent.destinations.sqlite.path"
        )
    return db


def load_history(path: str | os.PathLike[str]) -> History:
    """Read the ``sqlite`` destination's file (read-only; the agent may be writing to it)."""
    path = Path(path)
    db = _connect_read_only(path)
    try:
        grouped: dict[tuple[str, str, int], dict[str, Any]] = {}
        times: dict[int, datetime] = {}
        rows = db.execute(
            "SELECT time, time_ns, license_type, field, value, tags FROM license_snapshot"
            " ORDER BY time_ns"
        )
        for text, time_ns, license_type, name, value, tags in rows:
            key = (_site_of(tags), license_type, time_ns)
            grouped.setdefault(key, {})[name] = value
            if time_ns not in times:
                times[time_ns] = _time(text, time_ns)
        series: dict[tuple[str, str], UsageSeries] = {}
        for (site, license_type, time_ns), fields in grouped.items():
            # The same field families the monitor's table uses (seats, tokens, minutes).
            row = overview_row(
                Point(
                    MEASUREMENT_LICENSE,
                    {"license_type": license_type},
                    {k: v for k, v in fields.items() if v is not None},
                    times[time_ns],
                )
            )
            values = {name: getattr(row, name) for name, *_ in USAGE_SERIES}
            target = series.setdefault(
                (site, license_type), UsageSeries(site=site, license_type=license_type)
            )
            target.snapshots.append(Snapshot(times[time_ns], values))
        releases: dict[tuple[str, date, str], list[int]] = {}
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if "release_event" in tables:
            for text, time_ns, license_type, quarantined, tags in db.execute(
                "SELECT time, time_ns, license_type, quarantined, tags FROM release_event"
            ):
                day = _time(text, time_ns).date()
                counts = releases.setdefault((_site_of(tags), day, license_type), [0, 0])
                counts[0] += 1
                counts[1] += 1 if quarantined else 0
        restores = _load_restores(db) if "point" in tables else []
    except sqlite3.Error as exc:
        raise ReportError(f"{path}: cannot read the license history: {exc}") from None
    finally:
        db.close()
    for item in series.values():
        item.snapshots.sort(key=lambda s: s.time)
    return History(
        path=path,
        usage=sorted(series.values(), key=lambda s: (s.site, _type_order(s.license_type))),
        releases=[
            ReleaseCount(site, day, license_type, released, quarantined)
            for (site, day, license_type), (released, quarantined) in sorted(releases.items())
        ],
        restores=restores,
    )


def _load_restores(db: sqlite3.Connection) -> list[RestoreRow]:
    rows = []
    for text, time_ns, tags_json, fields_json in db.execute(
        "SELECT time, time_ns, tags, fields FROM point WHERE measurement = ? ORDER BY time_ns",
        (MEASUREMENT_RESTORE,),
    ):
        try:
            tags, fields = json.loads(tags_json or "{}"), json.loads(fields_json or "{}")
        except ValueError:
            continue
        rows.append(
            RestoreRow(
                site=str(tags.get("site", "")),
                time=_time(text, time_ns),
                license_type=str(tags.get("license_type", "")),
                user=str(tags.get("user", "")),
                reinstated=fields.get("reinstated") is True,
                run_id=str(fields.get("run_id", "")),
                release_run_id=str(fields.get("release_run_id", "")),
            )
        )
    return rows


def _type_order(license_type: str) -> tuple[int, str]:
    order = ("professional", "analyzer", "analyzer_capacity", "token_login", "token_user")
    return (order.index(license_type) if license_type in order else len(order), license_type)


def load_decisions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The run documents of a decision report (``release --report``): one, or one per site."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such decision report") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{path}: not a readable decision report: {exc}") from None
    documents = document if isinstance(document, list) else [document]
    for document in documents:
        if not isinstance(document, dict) or not isinstance(document.get("run"), dict):
            raise ReportError(
                f"{path}: not a decision report (expected the JSON that"
                " `license-agent release --once --report FILE` writes)"
            )
    return documents


# --------------------------------------------------------------------------- scales and ticks


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``maximum``: steps of 1, 2, 2.5 or 5 x 10^n."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if step < 1 and maximum >= 1:
        step = 1.0  # license counts are whole numbers
    top = math.ceil(maximum / step - 1e-9) * step
    return [round(i * step, 10) for i in range(int(round(top / step)) + 1)]


_MINUTE = 60
_HOUR = 3600
_DAY = 86400
#: Candidate tick steps (seconds) for time axes; months are handled by calendar.
_TIME_STEPS = (
    _MINUTE,
    5 * _MINUTE,
    15 * _MINUTE,
    30 * _MINUTE,
    _HOUR,
    3 * _HOUR,
    6 * _HOUR,
    12 * _HOUR,
    _DAY,
    2 * _DAY,
    7 * _DAY,
    14 * _DAY,
)


def time_ticks(start: datetime, end: datetime, count: int = 6) -> list[tuple[datetime, str]]:
    """Tick times between ``start`` and ``end`` (UTC) on round boundaries, with their labels."""
    span = (end - start).total_seconds()
    if span <= 0:
        return [(start, start.strftime("%b %d %H:%M"))]
    step = next((s for s in _TIME_STEPS if span / s <= count), None)
    ticks: list[datetime] = []
    if step is None:
        months = next((m for m in (1, 2, 3, 6, 12) if span / (m * 30.44 * _DAY) <= count), 12)
        years = max(1, math.ceil(span / (365.25 * _DAY) / count)) if months == 12 else 1
        index = start.year * 12 + start.month - 1
        while True:
            year, month = divmod(index, 12)
            moment = datetime(year, month + 1, 1, tzinfo=UTC)
            if moment > end:
                break
            if moment >= start and index % months == 0 and year % years == 0:
                ticks.append(moment)
            index += 1
        fmt = "%Y" if months == 12 else "%b %Y"
        return [(t, t.strftime(fmt)) for t in ticks]
    if step == 7 * _DAY or step == 14 * _DAY:
        # Weeks start on Monday, as in ISO dates.
        first = datetime(start.year, start.month, start.day, tzinfo=UTC)
        first += timedelta(days=(7 - first.weekday()) % 7)
    else:
        epoch = int(start.timestamp())
        first = datetime.fromtimestamp(math.ceil(epoch / step) * step, UTC)
    moment = first
    while moment <= end:
        if moment >= start:
            ticks.append(moment)
        moment += timedelta(seconds=step)
    if step >= _DAY:
        fmt = "%b %d"
    elif start.date() == end.date():
        fmt = "%H:%M"
    else:
        fmt = "%b %d %H:%M"
    return [(t, t.strftime(fmt)) for t in ticks]


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def type_color(license_type: str, known: Sequence[str] = ()) -> str:
    if license_type in TYPE_COLORS:
        return TYPE_COLORS[license_type]
    others = [t for t in known if t not in TYPE_COLORS] or [license_type]
    index = others.index(license_type) if license_type in others else len(others)
    return _PALETTE[index % len(_PALETTE)]


def type_label(license_type: str) -> str:
    return license_type.replace("_", " ").capitalize()


# --------------------------------------------------------------------------- SVG charts


@dataclass(frozen=True)
class _Frame:
    """A chart's drawing area inside its viewBox."""

    width: float
    height: float
    left: float = 56
    right: float = 18
    top: float = 14
    bottom: float = 34

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top


def _svg_open(frame: _Frame, label: str, css_class: str) -> str:
    return (
        f'<svg class="{css_class}" viewBox="0 0 {frame.width:g} {frame.height:g}"'
        f' role="img" aria-label="{_esc(label)}" xmlns="http://www.w3.org/2000/svg">'
    )


def _y_axis(frame: _Frame, ticks: Sequence[float], title: str = "") -> list[str]:
    top = ticks[-1] or 1
    parts = []
    for value in ticks:
        y = frame.y0 - (frame.y0 - frame.y1) * value / top
        parts.append(
            f'<line class="grid" x1="{frame.x0:g}" x2="{frame.x1:g}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{frame.x0 - 6:g}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_number(value)}</text>"
        )
    if title:
        mid = (frame.y0 + frame.y1) / 2
        parts.append(
            f'<text class="axis-title" transform="translate(12 {mid:.1f}) rotate(-90)"'
            f' text-anchor="middle">{_esc(title)}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{frame.x0:g}" x2="{frame.x1:g}"'
        f' y1="{frame.y0:g}" y2="{frame.y0:g}"/>'
    )
    return parts


def _x_tick(frame: _Frame, x: float, label: str) -> list[str]:
    return [
        f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.y0:g}" y2="{frame.y0 + 4:g}"/>',
        f'<text class="tick" x="{x:.1f}" y="{frame.y0 + 17:g}" text-anchor="middle">'
        f"{_esc(label)}</text>",
    ]


#: How far past the latest snapshot a forecast line is drawn, at most.
FORECAST_REACH = timedelta(days=90)
ALERT_COLOR = "#dc2626"


def usage_chart(
    series: UsageSeries,
    *,
    width: float = 560,
    height: float = 270,
    thresholds: Sequence[tuple[str, float]] = (),
    forecast: Forecast | None = None,
) -> str:
    """Lines of total, allocated, used, available and quarantined over time for one type,
    with the alert thresholds and the forecast of ``available`` when given."""
    frame = _Frame(width, height)
    snapshots = series.snapshots
    start, end = snapshots[0].time, snapshots[-1].time
    forecast_end = None
    if forecast is not None:
        reach = min(forecast.date, forecast.last_time + FORECAST_REACH)
        forecast_end = reach
        end = max(end, reach)
    # Runs minutes apart (or a single one) would stretch over the whole width with no tick
    # to read: show at least an hour around them, and label the values.
    collapsed = end - start < MIN_SPAN
    if collapsed:
        middle = start + (end - start) / 2
        start, end = middle - MIN_SPAN / 2, middle + MIN_SPAN / 2
    span = (end - start).total_seconds()
    maximum = max((v or 0 for s in snapshots for v in s.values.values()), default=0)
    ticks = nice_ticks(maximum)
    top = ticks[-1] or 1

    def x(moment: datetime) -> float:
        return frame.x0 + (frame.x1 - frame.x0) * (moment - start).total_seconds() / span

    def y(value: float) -> float:
        return frame.y0 - (frame.y0 - frame.y1) * value / top

    title = f"{type_label(series.license_type)} license usage over time"
    parts = [_svg_open(frame, title, "chart usage")]
    parts += _y_axis(frame, ticks, "allocations")
    for moment, label in time_ticks(start, end):
        parts += _x_tick(frame, x(moment), label)
    pixel = span / max(frame.x1 - frame.x0, 1)
    for name, label, color, dash in USAGE_SERIES:
        points = [(s.time, s.values.get(name)) for s in snapshots]
        if all(v is None for _, v in points):
            continue
        style = f'stroke="{color}"' + (f' stroke-dasharray="{dash}"' if dash else "")
        for run in _runs(_thin(points, pixel)):
            if len(run) > 1:
                coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
                parts.append(
                    f'<polyline class="series series-{name}" fill="none" {style}'
                    f' points="{coords}"><title>{_esc(label)}</title></polyline>'
                )
        shown = [(t, v) for t, v in points if v is not None]
        if len(shown) <= MARKER_LIMIT:
            for t, v in shown:
                parts.append(
                    f'<circle class="marker marker-{name}" cx="{x(t):.1f}" cy="{y(v):.1f}"'
                    f' r="{4 if collapsed else 3}" fill="{color}"><title>{_esc(label)}:'
                    f" {_number(v)} at {_when(t)}</title></circle>"
                )
    if collapsed:
        parts += _single_labels(snapshots[-1], x(snapshots[-1].time), y, frame.y0)
    for label, value in thresholds:
        if 0 <= value <= top:
            parts.append(
                f'<line class="threshold" x1="{frame.x0}" x2="{frame.x1}" y1="{y(value):.1f}"'
                f' y2="{y(value):.1f}" stroke="{ALERT_COLOR}" stroke-dasharray="2 3">'
                f"<title>{_esc(label)}</title></line>"
                f'<text class="threshold-label" x="{frame.x0 + 4}" y="{y(value) - 4:.1f}"'
                f' text-anchor="start" fill="{ALERT_COLOR}">{_esc(label)}</text>'
            )
    if forecast is not None and forecast_end is not None:
        days = (forecast_end - forecast.last_time).total_seconds() / 86400
        value = max(forecast.available + forecast.slope_per_day * days, 0.0)
        label = f"runs out about {forecast.date:%Y-%m-%d}"
        parts.append(
            f'<polyline class="forecast" fill="none" stroke="{ALERT_COLOR}"'
            f' stroke-dasharray="8 4" stroke-width="2" points="{x(forecast.last_time):.1f},'
            f'{y(forecast.available):.1f} {x(forecast_end):.1f},{y(value):.1f}">'
            f"<title>Forecast of available: {_esc(label)} (between"
            f" {forecast.earliest:%Y-%m-%d} and"
            f" {forecast.latest.strftime('%Y-%m-%d') if forecast.latest else 'never'})</title>"
            "</polyline>"
        )
        if forecast_end >= forecast.date:
            parts.append(
                f'<circle class="forecast-zero" cx="{x(forecast.date):.1f}" cy="{y(0):.1f}"'
                f' r="4" fill="{ALERT_COLOR}"><title>{_esc(label)}</title></circle>'
                f'<text class="forecast-label" x="{x(forecast.date) - 6:.1f}"'
                f' y="{y(0) - 14:.1f}" text-anchor="end" fill="{ALERT_COLOR}">'
                f"{_esc(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _single_labels(snapshot: Snapshot, cx: float, y: Any, bottom: float) -> list[str]:
    """Value labels beside the markers of one snapshot, nudged apart when they collide."""
    items = sorted(
        (
            (y(value), f"{label} {_number(value)}", color)
            for name, label, color, _ in USAGE_SERIES
            if (value := snapshot.values.get(name)) is not None
        ),
        key=lambda item: -item[0],
    )
    parts = []
    previous = bottom + 13
    # Bottom-up, so the labels of small values never slide under the time axis.
    for wanted, text, color in items:
        at = min(wanted + 4, bottom - 3, previous - 13)
        previous = at
        parts.append(
            f'<text class="value-label" x="{cx + 10:.1f}" y="{at:.1f}" fill="{color}">'
            f"{_esc(text)}</text>"
        )
    return parts


def _thin(
    points: Sequence[tuple[datetime, float | None]], pixel_seconds: float
) -> list[tuple[datetime, float | None]]:
    """At most one point per horizontal pixel (the last one), so a year of 5-minute runs
    stays a light drawing; gaps (``None``) are kept so lines break there."""
    if len(points) <= 1000:
        return list(points)
    kept: dict[int, tuple[datetime, float | None]] = {}
    origin = points[0][0]
    for moment, value in points:
        bucket = int((moment - origin).total_seconds() // max(pixel_seconds, 1e-9))
        if value is None or kept.get(bucket, (None, 0))[1] is not None:
            kept[bucket] = (moment, value)
    return [kept[k] for k in sorted(kept)]


def _runs(points: Iterable[tuple[datetime, float | None]]) -> list[list[tuple[datetime, float]]]:
    """Split a series at missing values: a line never bridges a field QRS did not report."""
    runs: list[list[tuple[datetime, float]]] = [[]]
    for moment, value in points:
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((moment, value))
    return [r for r in runs if r]


def release_chart(
    counts: Sequence[ReleaseCount],
    start: date,
    end: date,
    types: Sequence[str],
    *,
    width: float = 1120,
    height: float = 270,
) -> tuple[str, str]:
    """Stacked bars of released allocations per day (or week) and type. Returns the SVG and
    the unit (``day`` or ``week``)."""
    days = (end - start).days + 1
    unit = "day" if days <= MAX_DAY_BARS else "week"
    if unit == "week":
        start -= timedelta(days=start.weekday())
        end -= timedelta(days=end.weekday())
    step = 1 if unit == "day" else 7
    buckets = [start + timedelta(days=i) for i in range(0, (end - start).days + 1, step)]
    index = {b: i for i, b in enumerate(buckets)}
    totals: dict[tuple[int, str], list[int]] = {}
    for count in counts:
        day = count.day - timedelta(days=count.day.weekday()) if unit == "week" else count.day
        if day not in index:
            continue
        cell = totals.setdefault((index[day], count.license_type), [0, 0])
        cell[0] += count.released
        cell[1] += count.quarantined
    per_bucket = [sum(totals.get((i, t), [0])[0] for t in types) for i in range(len(buckets))]
    frame = _Frame(width, height)
    ticks = nice_ticks(max(per_bucket, default=0))
    top = ticks[-1] or 1
    slot = (frame.x1 - frame.x0) / len(buckets)
    bar = max(min(slot * 0.72, 48), 1.0)
    parts = [_svg_open(frame, f"Licenses released per {unit}", "chart releases")]
    parts += _y_axis(frame, ticks, "released")
    label_every = max(1, math.ceil(len(buckets) / 12))
    for i, bucket in enumerate(buckets):
        cx = frame.x0 + slot * (i + 0.5)
        if i % label_every == 0:
            parts += _x_tick(frame, cx, bucket.strftime("%b %d"))
        base = 0
        for license_type in types:
            released, quarantined = totals.get((i, license_type), [0, 0])
            if not released:
                continue
            color = type_color(license_type, types)
            scale = (frame.y0 - frame.y1) / top
            for amount, css, fill_opacity in (
                (released - quarantined, "bar", 1.0),
                (quarantined, "bar quarantined", 0.45),
            ):
                if not amount:
                    continue
                y_top = frame.y0 - (base + amount) * scale
                label = (
                    f"{bucket.isoformat()}{' (week)' if unit == 'week' else ''}:"
                    f" {type_label(license_type)} {amount}"
                    + (" quarantined by QRS" if "quarantined" in css else " released")
                )
                parts.append(
                    f'<rect class="{css}" x="{cx - bar / 2:.1f}" y="{y_top:.1f}"'
                    f' width="{bar:.1f}" height="{amount * scale:.1f}" fill="{color}"'
                    f' fill-opacity="{fill_opacity:g}"><title>{_esc(label)}</title></rect>'
                )
                base += amount
    parts.append("</svg>")
    return "".join(parts), unit


def hbar_chart(
    rows: Sequence[tuple[str, Mapping[str, int]]],
    types: Sequence[str],
    *,
    label: str,
    width: float = 560,
) -> str:
    """Horizontal bars, one per row, stacked by license type, with the total at the end."""
    row_height = 26
    frame = _Frame(width, 24 + row_height * len(rows) + 26, left=170, right=56, top=10, bottom=26)
    maximum = max((sum(values.values()) for _, values in rows), default=0)
    ticks = nice_ticks(maximum, 4)
    top = ticks[-1] or 1
    scale = (frame.x1 - frame.x0) / top
    parts = [_svg_open(frame, label, "chart hbar")]
    for value in ticks:
        x = frame.x0 + value * scale
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.y1:g}" y2="{frame.y0:g}"/>'
        )
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{frame.y0 + 16:g}" text-anchor="middle">'
            f"{_number(value)}</text>"
        )
    for i, (name, values) in enumerate(rows):
        y = frame.y1 + 8 + i * row_height
        parts.append(
            f'<text class="row-label" x="{frame.x0 - 8:g}" y="{y + 13:.1f}" text-anchor="end">'
            f"{_esc(name)}</text>"
        )
        x = frame.x0
        for license_type in types:
            amount = values.get(license_type, 0)
            if not amount:
                continue
            w = amount * scale
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="18"'
                f' fill="{type_color(license_type, types)}"><title>{_esc(name)}:'
                f" {type_label(license_type)} {amount:,}</title></rect>"
            )
            x += w
        parts.append(
            f'<text class="bar-total" x="{x + 6:.1f}" y="{y + 13:.1f}">'
            f"{_number(sum(values.values()))}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{frame.x0:g}" x2="{frame.x0:g}" y1="{frame.y1:g}"'
        f' y2="{frame.y0:g}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- the page


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: #111827;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 24px 40px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: #4b5563; }
h2 { margin: 28px 0 4px; font-size: 20px; }
h3 { margin: 22px 0 8px; font-size: 16px; color: #1f2937; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 14px 16px; }
.card h4 { margin: 0 0 6px; font-size: 15px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 12px; }
.tile .big { font-size: 26px; font-weight: 600; }
.tile .muted, .muted { color: #6b7280; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 2px 0 6px; font-size: 13px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 18px; height: 0; border-top: 3px solid; }
.swatch.block { width: 12px; height: 12px; border: 0; border-radius: 2px; }
.empty { color: #4b5563; background: #f9fafb; border: 1px dashed #d1d5db; border-radius: 6px;
  padding: 18px; text-align: center; }
.warn { background: #fffbeb; border: 1px solid #fcd34d; border-radius: 6px; padding: 8px 12px;
  margin-top: 12px; }
code { background: #f3f4f6; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
svg.chart { display: block; width: 100%; height: auto; overflow: visible; }
svg .grid { stroke: #e5e7eb; stroke-width: 1; }
svg .axis { stroke: #9ca3af; stroke-width: 1; }
svg .tick { fill: #4b5563; font-size: 11px; }
svg .axis-title { fill: #6b7280; font-size: 11px; }
svg .series { stroke-width: 2.2; stroke-linejoin: round; stroke-linecap: round; }
svg .marker { stroke: #fff; stroke-width: 1; }
svg .value-label { font-size: 11px; font-weight: 600; }
svg .row-label { fill: #1f2937; font-size: 12px; }
svg .bar-total { fill: #1f2937; font-size: 12px; font-weight: 600; }
footer { margin-top: 28px; color: #6b7280; font-size: 12px; }
table.meta { border-collapse: collapse; font-size: 13px; }
table.meta td { padding: 1px 12px 1px 0; vertical-align: top; }
table.alerts { border-collapse: collapse; font-size: 14px; }
table.alerts th, table.alerts td { padding: 3px 24px 3px 0; text-align: left; }
table.alerts td:nth-child(2) { color: #dc2626; }
"""


def _legend(items: Sequence[tuple[str, str, str]], block: bool = False) -> str:
    """``(label, color, dash)`` entries; ``block`` draws squares (bars) instead of lines."""
    spans = []
    for label, color, dash in items:
        if block:
            swatch = f'<i class="swatch block" style="background:{color}"></i>'
        else:
            style = f"border-top-color:{color}" + (";border-top-style:dashed" if dash else "")
            swatch = f'<i class="swatch" style="{style}"></i>'
        spans.append(f"<span>{swatch}{_esc(label)}</span>")
    return f'<div class="legend">{"".join(spans)}</div>'


def _tiles(series: Sequence[UsageSeries]) -> str:
    tiles = []
    for item in series:
        latest = item.snapshots[-1].values
        allocated, total = latest.get("allocated"), latest.get("total")
        share = f" ({allocated / total:.0%})" if allocated is not None and total else ""
        details = " &middot; ".join(
            f"{label.lower()} {_number(latest.get(name))}"
            for name, label, *_ in USAGE_SERIES
            if name in ("used", "available", "quarantined") and latest.get(name) is not None
        )
        tiles.append(
            '<div class="card tile">'
            f"<div class=muted>{_esc(type_label(item.license_type))}</div>"
            f'<div class="big">{_number(allocated)}'
            f'<span class="muted"> / {_number(total)}</span></div>'
            f"<div>allocated{share}</div><div class=muted>{details}</div></div>"
        )
    return f'<div class="tiles">{"".join(tiles)}</div>'


def _usage_section(
    series: Sequence[UsageSeries], now: datetime, alerts: AlertView | None = None
) -> str:
    shown = [s for s in series if s.has_usage()]
    idle = [s.license_type for s in series if not s.has_usage()]
    parts = ["<h3>License usage over time</h3>"]
    if not shown:
        parts.append(
            '<div class="empty">No license data yet. Enable the SQLite destination'
            " (<code>Butler.licenseAgent.destinations.sqlite.enable: true</code>), run"
            " <code>license-agent monitor --once</code> or <code>license-agent run</code>, then"
            " make this report again.</div>"
        )
        return "".join(parts)
    legend = _legend([(label, color, dash) for _, label, color, dash in USAGE_SERIES])
    cards = []
    for item in shown:
        first, last = item.snapshots[0].time, item.snapshots[-1].time
        runs = len(item.snapshots)
        note = (
            f"one snapshot, {_when(first)}"
            if runs == 1
            else f"{runs:,} snapshots, {_when(first)} to {_when(last)}"
        )
        chart = usage_chart(item)
        if alerts is not None and item.license_type in alerts.thresholds:
            settings = alerts.thresholds[item.license_type]
            forecast = (
                series_forecast(item, alerts.history_days)
                if settings.forecast_days is not None
                else None
            )
            chart = usage_chart(item, thresholds=threshold_lines(item, settings), forecast=forecast)
            if forecast is not None:
                note += (
                    f"; at the last {alerts.history_days:g} days' rate, available reaches 0"
                    f" about {forecast.date:%Y-%m-%d}"
                )
        cards.append(
            f'<div class="card"><h4>{_esc(type_label(item.license_type))}</h4>'
            f'<div class="muted">{note}</div>{legend}{chart}</div>'
        )
    parts.append(_tiles(shown))
    parts.append(f'<div class="grid2" style="margin-top:16px">{"".join(cards)}</div>')
    if idle:
        parts.append(f'<p class="muted">No usage recorded for: {_esc(", ".join(idle))}.</p>')
    last = max(s.snapshots[-1].time for s in shown)
    if now - last > STALE_AFTER:
        days = (now - last).days
        parts.append(
            f'<div class="warn">The latest snapshot is from {_when(last)}, {days} days before'
            " this report: is the agent running, and is the sqlite destination enabled?</div>"
        )
    return "".join(parts)


def _releases_section(
    counts: Sequence[ReleaseCount], span: tuple[date, date] | None, decisions: dict | None
) -> str:
    parts = ["<h3>Licenses released</h3>"]
    if not counts:
        hint = ""
        run = (decisions or {}).get("run") or {}
        if run.get("dry_run") and run.get("limit_note"):
            hint = f" The latest release run was a dry run. {_esc(run['limit_note'])}"
        elif run.get("dry_run"):
            would = sum(
                (c or {}).get("would_release", 0) for c in (run.get("counts") or {}).values()
            )
            hint = (
                f" The latest release run was a dry run: it would release {would:,}"
                " allocation(s) (see below); set <code>dryRun: false</code> to release them."
            )
        parts.append(f'<div class="empty">No license has been released yet.{hint}</div>')
        return "".join(parts)
    days = [c.day for c in counts]
    start, end = min(days), max(days)
    if span is not None:
        start, end = min(start, span[0]), max(end, span[1])
    types = sorted({c.license_type for c in counts}, key=_type_order)
    svg, unit = release_chart(counts, start, end, types)
    total = sum(c.released for c in counts)
    quarantined = sum(c.quarantined for c in counts)
    items = [(type_label(t), type_color(t, types), "") for t in types]
    note = f"{total:,} allocation(s) released from {start} to {end}"
    if quarantined:
        note += (
            f"; {quarantined:,} of them were used in the 7 days before and went into QRS's"
            " quarantine (pale bars) instead of being freed at once"
        )
    parts.append(
        f'<div class="card"><h4>Released per {unit} and license type</h4>'
        f'<div class="muted">{_esc(note)}</div>{_legend(items, block=True)}{svg}</div>'
    )
    return "".join(parts)


#: The restore table shows this many of the latest restored allocations.
MAX_RESTORE_ROWS = 50


def _restores_section(rows: Sequence[RestoreRow]) -> str:
    if not rows:
        return ""
    latest = sorted(rows, key=lambda r: r.time, reverse=True)[:MAX_RESTORE_ROWS]
    reinstated = sum(1 for r in rows if r.reinstated)
    note = (
        f"{len(rows):,} allocation(s) given back with `license-agent release restore`;"
        f" {reinstated:,} of them reinstated from QRS's quarantine without using a license"
    )
    if len(rows) > len(latest):
        note += f" (the latest {len(latest)} are listed)"
    cells = "".join(
        f"<tr><td>{_esc(_when(r.time))}</td><td>{_esc(type_label(r.license_type))}</td>"
        f"<td>{_esc(r.user)}</td><td>{'reinstated' if r.reinstated else 'new allocation'}</td>"
        f"<td>{_esc(r.run_id)}</td><td>{_esc(r.release_run_id)}</td></tr>"
        for r in latest
    )
    return (
        '<h3>Licenses restored</h3><div class="card"><h4>Restored allocations</h4>'
        f'<div class="muted">{_esc(note)}</div><table class="meta"><tr><th>Time</th>'
        "<th>Type</th><th>User</th><th>How</th><th>Restore run</th><th>Released by run</th>"
        f"</tr>{cells}</table></div>"
    )


def _decision_counts(document: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per type: decision -> count, and ``rule:<name>`` -> allocations that rule kept."""
    run = document.get("run") or {}
    counts: dict[str, dict[str, int]] = {}
    summary = run.get("counts")
    if isinstance(summary, dict) and summary:
        for license_type, values in summary.items():
            if not isinstance(values, dict):
                continue
            row = {k: int(v) for k, v in values.items() if isinstance(v, int | float)}
            for rule, n in (values.get("kept_by_rule") or {}).items():
                row[f"rule:{rule}"] = int(n)
            counts[license_type] = row
        return counts
    # An older report without counts: count the decisions themselves.
    for decision in document.get("decisions") or []:
        row = counts.setdefault(str(decision.get("license_type", "")), {})
        name = str(decision.get("decision", ""))
        row[name] = row.get(name, 0) + 1
        if name == "kept":
            for reason in decision.get("reasons") or []:
                key = f"rule:{reason.get('rule', '')}"
                row[key] = row.get(key, 0) + 1
    return counts


def _run_time(value: Any) -> str:
    try:
        moment = parse_qrs_time(value)
    except QrsDataError:
        moment = None
    return _when(moment) if moment else str(value or "?")


def _decisions_section(document: Mapping[str, Any] | None, source: str) -> str:
    parts = ["<h3>Latest release run</h3>"]
    if document is None:
        parts.append(
            '<div class="empty">No decision report. <code>license-agent release --once'
            " --dry-run --report release-report.json</code> writes one; pass it with"
            " <code>--decisions</code> (or keep it next to the SQLite file).</div>"
        )
        return "".join(parts)
    run = document.get("run") or {}
    counts = _decision_counts(document)
    types = sorted(counts, key=_type_order)
    decision_rows = [
        (label, {t: counts[t].get(key, 0) for t in types})
        for key, label in DECISION_LABELS
        if any(counts[t].get(key, 0) for t in types)
    ]
    rules = sorted(
        {k[5:] for row in counts.values() for k in row if k.startswith("rule:")},
        key=lambda r: (-sum(counts[t].get(f"rule:{r}", 0) for t in types), r),
    )
    rule_rows = [(rule, {t: counts[t].get(f"rule:{rule}", 0) for t in types}) for rule in rules]
    thresholds = run.get("thresholds") or {}
    meta = [
        ("Site", run.get("site", "")),
        ("Run", _run_time(run.get("started")) + (" (dry run)" if run.get("dry_run") else "")),
        (
            "Thresholds",
            ", ".join(f"{type_label(t)} {d} days" for t, d in thresholds.items()) or "-",
        ),
        ("Report", source),
    ]
    if run.get("id"):
        meta.insert(2, ("Run id", run["id"]))
    if run.get("limit_note"):
        meta.append(("Safety limit", run["limit_note"]))
    if run.get("aborted"):
        meta.append(("Stopped", run["aborted"]))
    for error in run.get("errors") or []:
        meta.append(("Error", error))
    rows_html = "".join(
        f"<tr><td class=muted>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in meta
    )
    legend = _legend([(type_label(t), type_color(t, types), "") for t in types], block=True)
    cards = [
        f'<div class="card"><h4>Decisions</h4><table class="meta">{rows_html}</table>{legend}'
        + (
            hbar_chart(decision_rows, types, label="Decisions of the latest release run")
            if decision_rows
            else '<div class="empty">The run considered no allocation.</div>'
        )
        + "</div>",
        '<div class="card"><h4>Kept by rule</h4><div class="muted">Allocations past their'
        " threshold that a neverRelease rule protected; one kept by several rules counts under"
        f" each.</div>{legend}"
        + (
            hbar_chart(rule_rows, types, label="Allocations kept, by rule")
            if rule_rows
            else '<div class="empty">No rule kept an allocation in this run.</div>'
        )
        + "</div>",
    ]
    parts.append(f'<div class="grid2">{"".join(cards)}</div>')
    return "".join(parts)


@dataclass(frozen=True)
class _Section:
    name: str
    #: The ``site`` tag value of its data ("" for untagged data; None: decisions only).
    key: str | None
    decisions: Mapping[str, Any] | None


def _sections(
    history: History, decisions: Sequence[Mapping[str, Any]], site: str
) -> list[_Section]:
    """One section per site. A single-site agent tags no point with its site, so untagged
    data is shown under ``site``, else under the name in the decision report."""
    by_site = {str((d.get("run") or {}).get("site", "")): d for d in decisions}
    keys = history.sites() or [""]
    if len(keys) == 1 and len(by_site) <= 1:
        only = next(iter(by_site.items()), ("", None))
        name = keys[0] or site or only[0]
        return [_Section(name, keys[0], by_site.get(name) or only[1])]
    sections = [_Section(key or site, key, by_site.get(key or site)) for key in keys]
    named = {s.name for s in sections}
    sections += [_Section(name, None, d) for name, d in by_site.items() if name not in named]
    return sections


def _alerts_section(alerts: AlertView | None, site: str) -> str:
    if alerts is None:
        return ""
    active = [a for a in alerts.active if a[0] == site or not site]
    parts = ["<h3>Active alerts</h3>"]
    if not active:
        parts.append('<p class="muted">No alert is active.</p>')
        return "".join(parts)
    rows = "".join(
        f"<tr><td>{_esc(type_label(license_type) if license_type else '')}</td>"
        f"<td>{_esc(title)}</td><td>{_esc(_when(since))}</td></tr>"
        for _, license_type, title, since in active
    )
    parts.append(
        '<table class="alerts"><thead><tr><th>License type</th><th>Alert</th><th>Since</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )
    return "".join(parts)


def render_html(
    history: History,
    decisions: Sequence[Mapping[str, Any]] = (),
    *,
    generated: datetime | None = None,
    site: str = "",
    decisions_source: str = "",
    alerts: AlertView | None = None,
) -> str:
    """The whole report page.

    :param site: the name shown for data without a ``site`` tag (a single-site agent writes
        none); by default the decision report's site.
    :param decisions_source: where the decision report came from, shown on the page.
    """
    now = (generated or datetime.now(UTC)).astimezone(UTC)
    sections = _sections(history, decisions, site)
    names = [s.name for s in sections if s.name]
    title_site = ", ".join(names) if names else "(site unknown)"
    source = history.path.name if history.path else "(no file)"
    span = None
    if history.first and history.last:
        span = (history.first.date(), history.last.date())
        period = (
            f"{history.runs:,} monitor run{'s' if history.runs != 1 else ''},"
            f" {_when(history.first)} to {_when(history.last)}"
        )
    else:
        period = "no monitor run yet"
    body = [
        "<header>",
        f"<h1>Qlik Sense license report &mdash; {_esc(title_site)}</h1>",
        f"<p>Generated {_esc(_when(now))} from {_esc(source)} ({_esc(period)}).</p>",
        "</header>",
    ]
    for section in sections:
        if len(sections) > 1:
            body.append(f"<h2>Site {_esc(section.name or '(no site tag)')}</h2>")
        series = [s for s in history.usage if s.site == section.key]
        releases = [r for r in history.releases if r.site == section.key]
        body.append(_alerts_section(alerts, section.name if len(sections) > 1 else ""))
        body.append(_usage_section(series, now, alerts))
        body.append(_releases_section(releases, span, section.decisions))
        body.append(_restores_section([r for r in history.restores if r.site == section.key]))
        body.append(_decisions_section(section.decisions, decisions_source))
    body.append(
        f"<footer>sense-license-agent {_esc(__version__)}. Times are UTC. This page is"
        " self-contained: it loads nothing and runs no script. Hover a point or bar for its"
        " value.</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>License report: {_esc(title_site)}</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )


def write_html(text: str, path: str | os.PathLike[str]) -> None:
    """Write the page atomically (a browser reloading it never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would make the report unreadable for the web server or
    # colleague it is meant for; open() applies the usual umask.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`build_report` wrote, for the command's message."""

    out: Path
    runs: int
    releases: int
    decisions: Path | None
    #: Allocation decisions in the decision report (0 without one).
    decision_count: int = 0


def _decided(document: Mapping[str, Any]) -> int:
    """How many allocations a decision report decided on: its decisions, else its counts."""
    decisions = document.get("decisions") or ()
    if decisions:
        return len(decisions)
    counts = document.get("run", {}).get("counts") or {}
    return sum(int(c.get("considered") or 0) for c in counts.values() if isinstance(c, Mapping))


def build_report(
    db: str | os.PathLike[str],
    out: str | os.PathLike[str],
    decisions: str | os.PathLike[str] | None = None,
    *,
    site: str = "",
    generated: datetime | None = None,
    alerts: AlertView | None = None,
) -> ReportSummary:
    """Read the history (and the decision report, if any), write the page. Raises ReportError."""
    history = load_history(db)
    documents: list[dict[str, Any]] = []
    decisions_path = Path(decisions) if decisions else None
    if decisions_path is not None:
        documents = load_decisions(decisions_path)
    write_html(
        render_html(
            history,
            documents,
            generated=generated,
            site=site,
            decisions_source=decisions_path.name if decisions_path else "",
            alerts=alerts,
        ),
        out,
    )
    return ReportSummary(
        out=Path(out),
        runs=history.runs,
        releases=sum(r.released for r in history.releases),
        decisions=decisions_path,
        decision_count=sum(_decided(d) for d in documents),
    )


__all__ = [
    "AlertView",
    "History",
    "ReleaseCount",
    "ReportError",
    "ReportSummary",
    "Snapshot",
    "UsageSeries",
    "build_report",
    "load_decisions",
    "load_history",
    "nice_ticks",
    "render_html",
    "time_ticks",
    "write_html",
]
