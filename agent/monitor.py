"""One license monitor run: read the access type overview once, write one point per type.

:func:`run_monitor` makes exactly one ``GET /qrs/license/accesstypeoverview`` request, asks every
registered license type to map the overview to its fields, and builds one
``qlik_sense_license`` point per type with the tag ``license_type`` plus the configured static
tags. Every point of a run carries the same timestamp, the moment the overview was read, so a
point re-delivered from the outbox overwrites itself. The metric collectors registered by
plugins (the site license, for example) run next, each in its own error handling. All points go
to :class:`agent.delivery.Delivery`, which stores them in the outbox and sends them to every
destination.

The job around a run (QRS client, delivery, one log line per failed run) is
:func:`agent.jobs.run_monitor_job`, which ``monitor --once`` and the scheduler both call.

The helpers :func:`block_extractor` and :func:`numeric_fields` are for license type plugins: they
tolerate older and newer Sense versions (a missing block means no point, a missing key means no
field, each with a debug line).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from agent.models import (
    FEATURE_LICENSE_MONITOR,
    MEASUREMENT_LICENSE,
    UTC,
    LicenseType,
    MetricCollector,
    Point,
)

if TYPE_CHECKING:
    from agent.config import AgentConfig, SiteConfig
    from agent.delivery import Delivery, DeliveryReport
    from agent.plugins import PluginHost

#: ``qlik_sense_license`` field -> overview key, for ``professionalAccess`` / ``analyzerAccess``.
ACCESS_FIELDS: Mapping[str, str] = {
    "allocated": "allocated",
    "available": "available",
    "excess": "excess",
    "quarantined": "quarantined",
    "total": "total",
    "used": "used",
}

TAG_LICENSE_TYPE = "license_type"


# --------------------------------------------------------------------------- for license types


def numeric_fields(
    block: Mapping[str, Any], fields: Mapping[str, str], *, license_type: str
) -> dict[str, float] | None:
    """Read ``fields`` (point field -> overview key) from ``block`` as floats.

    A key that is missing or not a number is skipped with a debug line; the others are kept.
    Returns ``None`` when no field is left (a point needs at least one).
    """
    values: dict[str, float] = {}
    for name, key in fields.items():
        value = block.get(key)
        # bool is an int in Python, but True is not a license count.
        if isinstance(value, bool) or not isinstance(value, int | float):
            logger.debug(
                "license type {}: {} is {} in the overview; field {} not written",
                license_type,
                key,
                "missing" if value is None else f"not a number ({type(value).__name__})",
                name,
            )
            continue
        values[name] = float(value)
    if not values:
        logger.debug("license type {}: no usable field in the overview; no point", license_type)
        return None
    return values


def block_extractor(
    license_type: str, block_key: str, fields: Mapping[str, str]
) -> Callable[[Mapping[str, Any]], dict[str, float] | None]:
    """An ``extract`` for :class:`LicenseType` that reads one block of the overview.

    No point is written when the block is missing (older Sense) or its ``enabled`` is false,
    as the existing tool does. A block without an ``enabled`` key is read: its presence is the
    best evidence there is.
    """

    def extract(overview: Mapping[str, Any]) -> dict[str, float] | None:
        block = overview.get(block_key)
        if not isinstance(block, Mapping):
            logger.debug(
                "license type {}: no {} block in the overview (older Sense?); no point",
                license_type,
                block_key,
            )
            return None
        if block.get("enabled", True) is not True:
            logger.debug("license type {}: {} is not enabled; no point", license_type, block_key)
            return None
        return numeric_fields(block, fields, license_type=license_type)

    extract.__doc__ = f"The {license_type} fields from the overview's {block_key} block."
    return extract


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class OverviewRow:
    """One line of ``license-agent monitor --once``: a license type's main counts."""

    license_type: str
    total: float | None = None
    allocated: float | None = None
    used: float | None = None
    quarantined: float | None = None
    available: float | None = None


#: Table column -> the point fields that fill it, per naming family (seats, tokens, minutes).
_ROW_FIELDS: Mapping[str, tuple[str, ...]] = {
    "total": ("total", "total_tokens"),
    "allocated": ("allocated", "allocated_tokens", "allocated_minutes"),
    "used": ("used", "used_tokens", "used_minutes"),
    "quarantined": ("quarantined", "quarantined_tokens"),
    "available": ("available", "available_tokens"),
}


def overview_row(point: Point) -> OverviewRow:
    values: dict[str, float | None] = {}
    for column, names in _ROW_FIELDS.items():
        found = next((point.fields[n] for n in names if n in point.fields), None)
        values[column] = float(found) if isinstance(found, int | float) else None
    return OverviewRow(license_type=str(point.tags.get(TAG_LICENSE_TYPE, "")), **values)


@dataclass
class MonitorResult:
    """What one monitor run of one site did."""

    site: str
    #: The timestamp of every license point of the run; ``None`` if QRS could not be read.
    time: datetime | None = None
    points: list[Point] = field(default_factory=list)
    delivery: DeliveryReport | None = None
    #: Why the run failed (QRS unreachable, bad answer); ``None`` when it succeeded.
    error: str | None = None
    #: Plugins (license types, collectors) that failed, by name, with the error.
    plugin_errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def rows(self) -> list[OverviewRow]:
        return [overview_row(p) for p in self.points if p.measurement == MEASUREMENT_LICENSE]


def overview_rows(
    overview: Mapping[str, Any], license_types: Sequence[LicenseType], time: datetime
) -> list[OverviewRow]:
    """The table rows of an access type overview, read by the license-type plugins exactly as
    the monitor reads it (``qrs check`` shows the same table as ``monitor --once``)."""
    return [overview_row(p) for p in license_points(overview, license_types, {}, time)]


def license_points(
    overview: Mapping[str, Any],
    license_types: Sequence[LicenseType],
    static_tags: Mapping[str, str],
    time: datetime,
    errors: dict[str, str] | None = None,
) -> list[Point]:
    """One ``qlik_sense_license`` point per license type present in ``overview``.

    Pure: no I/O. A type whose ``extract`` raises is recorded in ``errors`` and skipped, so a
    broken plugin cannot stop the others.
    """
    tags = {k: v for k, v in static_tags.items() if k != TAG_LICENSE_TYPE}
    points = []
    for license_type in license_types:
        try:
            fields = license_type.extract(overview)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            logger.error(
                "license type {} failed to read the overview: {}", license_type.name, message
            )
            if errors is not None:
                errors[license_type.name] = message
            continue
        if not fields:
            continue
        points.append(
            Point(
                measurement=MEASUREMENT_LICENSE,
                tags={**tags, TAG_LICENSE_TYPE: license_type.name},
                fields={k: _field(v) for k, v in fields.items() if v is not None},
                time=time,
                feature=FEATURE_LICENSE_MONITOR,
            )
        )
    return points


def _field(value: Any) -> Any:
    # Numeric fields are floats, as the users' existing series are: InfluxDB rejects a point
    # whose field type differs from the one already stored.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def monitor_tags(site: SiteConfig) -> dict[str, str]:
    """The static tags of the monitor's points; ``license_type`` is reserved."""
    tags = dict(site.static_tags(FEATURE_LICENSE_MONITOR))
    if TAG_LICENSE_TYPE in tags:
        logger.warning(
            "static tag {!r} is ignored: the monitor sets it to the license type"
            " (rename it in Butler.influxDb.tag.static or"
            " licenseMonitor.destination.influxDb.tag.static)",
            TAG_LICENSE_TYPE,
        )
        del tags[TAG_LICENSE_TYPE]
    return tags


def run_monitor(
    site: SiteConfig,
    qrs: Any,
    host: PluginHost,
    delivery: Delivery | None,
    now: datetime | None = None,
    *,
    config: AgentConfig | None = None,
    collectors: Sequence[MetricCollector] | None = None,
) -> MonitorResult:
    """One monitor run of one site; never raises for QRS, plugin or destination failures.

    :param qrs: a QRS client; only ``access_type_overview()`` is used here (collectors may use
        more).
    :param delivery: where the points go; ``None`` to only compute them.
    :param now: the timestamp of the run's points; by default, the moment the overview arrived.
    :param config: the agent's config, needed to run the plugins' metric collectors.
    """
    result = MonitorResult(site=site.name)
    try:
        overview = qrs.access_type_overview()
    except Exception as exc:
        result.error = f"cannot read the license overview from QRS: {exc}"
        return result
    time = (now or datetime.now(UTC)).astimezone(UTC)
    result.time = time
    if not isinstance(overview, Mapping):
        result.error = "QRS answered the license overview with something that is not an object"
        return result
    result.points = license_points(
        overview, host.license_types(), monitor_tags(site), time, result.plugin_errors
    )
    if collectors is None and config is not None:
        collectors = host.metric_collectors(config)
    for collector in collectors or ():
        result.points.extend(collect(collector, qrs, time, site, result.plugin_errors))
    batches = (
        host.alerts(config, site, tuple(result.points), time, result.plugin_errors)
        if config is not None
        else []
    )
    for batch in batches:
        result.points.extend(batch.points)
    if delivery is not None and result.points:
        result.delivery = delivery.deliver(result.points)
        # The alerts are in the outbox now: their plugins may record them as sent.
        for batch in batches:
            try:
                batch.commit()
            except Exception as exc:
                result.plugin_errors["alerts"] = f"{type(exc).__name__}: {exc}"
                logger.error("cannot record the alerts that were sent: {}", exc)
    return result


def collect(
    collector: MetricCollector, qrs: Any, now: datetime, site: SiteConfig, errors: dict[str, str]
) -> list[Point]:
    """The points of one metric collector; a failure is recorded in ``errors`` by its name."""
    offered = {"qrs": qrs, "now": now, "site": site}
    try:
        # Like a pluggy hook: a collector may accept fewer arguments than offered.
        params = inspect.signature(collector.collect).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            offered = {k: v for k, v in offered.items() if k in params}
        points = list(collector.collect(**offered) or ())
        bad = [p for p in points if not isinstance(p, Point)]
        if bad:
            raise TypeError(f"returned {type(bad[0]).__name__}, not Point")
        return points
    except Exception as exc:
        errors[collector.name] = f"{type(exc).__name__}: {exc}"
        logger.error("metric collector {} failed: {}", collector.name, errors[collector.name])
        return []
