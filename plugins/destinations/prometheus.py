"""Prometheus destination: serve the latest license numbers on ``/metrics`` for scraping.

Prometheus pulls, so "writing" a point here means updating an in-memory metric that the next
scrape reads; nothing is pushed anywhere and a write never fails. Enabled by
``Butler.licenseAgent.destinations.prometheus.enable`` (``host`` 127.0.0.1, ``port`` 9842,
``features``). It needs the optional extra ``pip install "sense-license-agent[prometheus]"``.

What it exposes, every series labelled with ``site`` (the point's ``site`` tag, else the QRS
host) and nothing else that could change between runs, so series stay stable:

* ``qlik_sense_license_<field>{license_type}``: a gauge per field of each
  ``qlik_sense_license`` point (``qlik_sense_license_allocated``, ``..._used_minutes``, ...);
* ``qlik_sense_license_released_total{license_type}``: release events, and
  ``qlik_sense_license_release_quarantined_total{license_type}`` for those that only went into
  QRS's quarantine; ``qlik_sense_license_restored_total{license_type}``: restore events;
* ``qlik_sense_server_license_days_until_expiry``, ``..._expired`` (0/1) and
  ``..._expiry_timestamp_seconds`` from ``qlik_sense_server_license``;
* the agent's health, fed by the ``sla_job_result`` hook after every job run:
  ``license_agent_last_success_timestamp_seconds{job_name}``,
  ``license_agent_job_runs_total{job_name, result}`` and ``license_agent_qrs_errors_total``.
  The label is ``job_name``, not ``job``: Prometheus sets ``job`` itself on every scraped
  series and would rename ours to ``exported_job``.

Each destination has its own ``CollectorRegistry`` (not the process-wide default), so several
agents or tests can run side by side in one process. The HTTP server starts at the first write
or health record (or :meth:`~PrometheusDestination.start`) and stops in ``close()``.
"""

from __future__ import annotations

import re
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from loguru import logger
from pydantic import Field

from agent.config import AGENT_FEATURES, AgentConfig, ConfigError, Features, SettingsModel
from agent.hookspecs import Settings, hookimpl
from agent.models import (
    MEASUREMENT_LICENSE,
    MEASUREMENT_RELEASE,
    MEASUREMENT_RESTORE,
    MEASUREMENT_SERVER_LICENSE,
    UTC,
    Destination,
    Point,
    SettingsSection,
)

NAME = "prometheus"
LICENSE_PREFIX = "qlik_sense_license_"
CONFIG_KEY = "Butler.licenseAgent.destinations.prometheus"
INSTALL_HINT = 'pip install "sense-license-agent[prometheus]"'

#: How many release events are remembered to recognise a re-delivery from the outbox.
SEEN_EVENTS_LIMIT = 10_000

_NAME_RE = re.compile(r"[^a-zA-Z0-9_]")


def _prometheus_client() -> Any:
    """Import prometheus-client on first use, so the agent runs without the extra."""
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            [
                f"{CONFIG_KEY}.enable: the Prometheus destination needs the package"
                f" prometheus-client; install it with: {INSTALL_HINT}"
                " (or set enable: false)"
            ]
        ) from None
    return prometheus_client


def metric_name(field: str) -> str:
    """``qlik_sense_license_<field>`` with anything Prometheus forbids replaced by ``_``."""
    return LICENSE_PREFIX + _NAME_RE.sub("_", field)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


class PrometheusDestination:
    """Holds the metrics of one agent and serves them on ``http://host:port/metrics``.

    :param host: address to listen on.
    :param port: TCP port; 0 lets the OS pick one (read it from :attr:`port` after start).
    :param features: the features whose points this destination takes.
    :param default_site: the ``site`` label for points without a ``site`` tag.
    """

    name = NAME

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9842,
        features: Iterable[str] = ("license_monitor", "license_release", "server_license"),
        default_site: str = "",
    ) -> None:
        client = _prometheus_client()
        self._client = client
        self.host = host
        self._requested_port = port
        self.features = frozenset(features)
        self.default_site = default_site
        self.registry = client.CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._license_gauges: dict[str, Any] = {}
        self._clashing: set[str] = set()
        self._seen_events: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._start_failed = False

        reg = self.registry
        self.released = client.Counter(
            "qlik_sense_license_released",
            "Allocations released by the agent (release events), by license type.",
            ["license_type", "site"],
            registry=reg,
        )
        self.release_quarantined = client.Counter(
            "qlik_sense_license_release_quarantined",
            "Releases that QRS put into its 7-day quarantine instead of freeing at once.",
            ["license_type", "site"],
            registry=reg,
        )
        self.restored = client.Counter(
            "qlik_sense_license_restored",
            "Allocations given back by `release restore` (restore events), by license type.",
            ["license_type", "site"],
            registry=reg,
        )
        self.server_days = client.Gauge(
            "qlik_sense_server_license_days_until_expiry",
            "Whole days until the site license expires; negative once expired.",
            ["site"],
            registry=reg,
        )
        self.server_expired = client.Gauge(
            "qlik_sense_server_license_expired",
            "1 when QRS reports the site license as expired, else 0.",
            ["site"],
            registry=reg,
        )
        self.server_expiry = client.Gauge(
            "qlik_sense_server_license_expiry_timestamp_seconds",
            "The site license's 'Valid To' date as a Unix timestamp.",
            ["site"],
            registry=reg,
        )
        self.last_success = client.Gauge(
            "license_agent_last_success_timestamp_seconds",
            "When each job (license_monitor, license_release) last finished successfully.",
            ["job_name"],
            registry=reg,
        )
        self.job_runs = client.Counter(
            "license_agent_job_runs",
            "Finished job runs, by job and result (success or failure).",
            ["job_name", "result"],
            registry=reg,
        )
        self.qrs_errors = client.Counter(
            "license_agent_qrs_errors",
            "QRS requests that failed (after retries or not), summed over all jobs.",
            registry=reg,
        )

    # ----------------------------------------------------------------- server

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        if self._server is not None:
            return int(self._server.server_port)
        return self._requested_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def serving(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Start serving ``/metrics`` (idempotent). A port already in use is logged once:
        the metrics stay up to date in memory and nothing else in the agent is affected."""
        with self._lock:
            if self._server is not None or self._start_failed:
                return
            try:
                server, thread = _serve(
                    self._client, self.registry, self.host, self._requested_port
                )
            except OSError as exc:
                self._start_failed = True
                logger.error(
                    "prometheus: cannot listen on {}:{} ({}); /metrics is not served."
                    " Choose another {}.port or stop the program using it",
                    self.host,
                    self._requested_port,
                    exc.strerror or exc,
                    CONFIG_KEY,
                )
                return
            self._server, self._thread = server, thread
        logger.info("prometheus: serving metrics on {}", self.url)

    def close(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def describe(self) -> str:
        return f"prometheus {self.url}" if self.serving else f"prometheus {self.host}:{self.port}"

    # ----------------------------------------------------------------- points

    def write(self, points: Sequence[Point]) -> None:
        """Update the metrics from points; unknown measurements are ignored."""
        self.start()
        with self._lock:
            for point in points:
                if point.measurement == MEASUREMENT_LICENSE:
                    self._license(point)
                elif point.measurement in (MEASUREMENT_RELEASE, MEASUREMENT_RESTORE):
                    self._release(point)
                elif point.measurement == MEASUREMENT_SERVER_LICENSE:
                    self._server_license(point)

    def _site(self, tags: Mapping[str, str]) -> str:
        return tags.get("site") or self.default_site

    def _license(self, point: Point) -> None:
        license_type = point.tags.get("license_type", "")
        site = self._site(point.tags)
        for field, value in point.fields.items():
            number = _number(value)
            if number is None:
                continue
            name = metric_name(field)
            gauge = self._license_gauges.get(name)
            if gauge is None:
                if name in self._clashing:
                    continue
                try:
                    gauge = self._client.Gauge(
                        name,
                        f"Field {field!r} of measurement {MEASUREMENT_LICENSE}, by license type.",
                        ["license_type", "site"],
                        registry=self.registry,
                    )
                except ValueError:
                    # A plugin's field named like one of the fixed metrics (``released``).
                    self._clashing.add(name)
                    logger.warning(
                        "prometheus: field {!r} of license type {!r} is not exported:"
                        " {} is already a metric of this destination",
                        field,
                        license_type,
                        name,
                    )
                    continue
                self._license_gauges[name] = gauge
            gauge.labels(license_type=license_type, site=site).set(number)

    def _release(self, point: Point) -> None:
        # The outbox re-delivers after failures; a counter must not count an event twice.
        key = (
            point.measurement,
            tuple(sorted(point.tags.items())),
            point.time,
            str(point.fields.get("allocation_id", "")),
        )
        if key in self._seen_events:
            return
        self._seen_events[key] = None
        while len(self._seen_events) > SEEN_EVENTS_LIMIT:
            self._seen_events.popitem(last=False)
        labels = {
            "license_type": point.tags.get("license_type", ""),
            "site": self._site(point.tags),
        }
        if point.measurement == MEASUREMENT_RESTORE:
            self.restored.labels(**labels).inc()
            return
        self.released.labels(**labels).inc()
        if point.fields.get("quarantined") is True:
            self.release_quarantined.labels(**labels).inc()

    def _server_license(self, point: Point) -> None:
        site = self._site(point.tags)
        expired = _number(point.fields.get("license_expired"))
        if expired is not None:
            self.server_expired.labels(site=site).set(expired)
        days = _number(point.fields.get("days_until_expiry"))
        if days is not None:
            self.server_days.labels(site=site).set(days)
        expiry = point.fields.get("expiry_date")
        if isinstance(expiry, str) and expiry:
            try:
                when = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
            except ValueError:
                return
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            self.server_expiry.labels(site=site).set(when.timestamp())

    # ----------------------------------------------------------------- health

    def record_job_result(
        self,
        job: str,
        ok: bool,
        finished: datetime | None = None,
        qrs_errors: int = 0,
    ) -> None:
        """Record one finished job run (this plugin's ``sla_job_result`` calls it).

        :param job: ``license_monitor`` or ``license_release`` (any job name works).
        :param ok: whether the run succeeded.
        :param finished: when it finished (aware datetime; default now).
        :param qrs_errors: QRS requests that failed during the run.
        """
        self.start()
        result = "success" if ok else "failure"
        with self._lock:
            self.job_runs.labels(job_name=job, result=result).inc()
            if ok:
                moment = finished or datetime.now(UTC)
                self.last_success.labels(job_name=job).set(moment.timestamp())
            if qrs_errors > 0:
                self.qrs_errors.inc(qrs_errors)

    def record_qrs_errors(self, count: int = 1) -> None:
        """Count QRS requests that failed, when they are known outside a job result."""
        if count > 0:
            with self._lock:
                self.qrs_errors.inc(count)

    def metrics_text(self) -> str:
        """The exposition text a scrape would get (for tests and ``--debug`` output)."""
        return self._client.generate_latest(self.registry).decode("utf-8")


#: The key this plugin owns.
PATH = "licenseAgent.destinations.prometheus"


class PrometheusSettings(SettingsModel):
    """``Butler.licenseAgent.destinations.prometheus``: serve ``/metrics`` for scraping."""

    enable: bool = False
    #: Address to listen on; loopback by default (set 0.0.0.0 to let a remote Prometheus in).
    host: str = Field(default="127.0.0.1", min_length=1)
    #: TCP port; 0 picks a free port (tests).
    port: int = Field(default=9842, ge=0, le=65535)
    features: Features = list(AGENT_FEATURES)


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, PrometheusSettings, per_site=False)]


def _enabled(settings: Settings) -> PrometheusSettings | None:
    prometheus = settings[PATH]
    return prometheus if prometheus is not None and prometheus.enable else None


@hookimpl
def sla_job_result(
    job: str,
    ok: bool,
    finished: datetime,
    qrs_errors: int,
    destinations: Sequence[Destination],
) -> None:
    for destination in destinations:
        if isinstance(destination, PrometheusDestination):
            destination.record_job_result(job, ok, finished, qrs_errors)


@hookimpl
def sla_configure(settings: Settings) -> None:
    # A missing optional extra is a configuration problem: say so at start, with exit code 2.
    if _enabled(settings):
        _prometheus_client()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would flood the agent's log


def _serve(client: Any, registry: Any, host: str, port: int) -> tuple[Any, threading.Thread]:
    """prometheus-client's WSGI app on a threading server of our own: unlike
    ``start_http_server`` it stops within 50 ms, which keeps shutdowns and tests quick."""
    from prometheus_client.exposition import ThreadingWSGIServer

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
    server = make_server(
        host, port, client.make_wsgi_app(registry), server_class, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"prometheus-metrics-{server.server_port}",
        daemon=True,
    )
    thread.start()
    return server, thread


def _default_site(config: AgentConfig) -> str:
    sites = config.sites()
    return sites[0].name if sites else ""


@hookimpl
def sla_destinations(config: AgentConfig, settings: Settings) -> list[Destination] | None:
    prometheus = _enabled(settings)
    if prometheus is None:
        return None
    destination = PrometheusDestination(
        host=prometheus.host,
        port=prometheus.port,
        features=prometheus.features,
        default_site=_default_site(config),
    )
    return [destination]
