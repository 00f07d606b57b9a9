"""One monitor run: points, tags, timestamps, plugin isolation, and the scheduled job."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import pytest
from loguru import logger

from agent.hookspecs import hookimpl
from agent.jobs import run_monitor_job
from agent.models import UTC, LicenseType, MetricCollector, Point
from agent.monitor import run_monitor
from agent.plugins import build_plugin_host

from .data import EXPECTED, OVERVIEW

WHEN = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


class StandInQrs:
    """Only what the monitor calls; counts the calls."""

    def __init__(self, overview: Any = None, error: Exception | None = None) -> None:
        self.overview = copy.deepcopy(OVERVIEW) if overview is None else overview
        self.error = error
        self.calls = 0

    def access_type_overview(self) -> Any:
        self.calls += 1
        if self.error:
            raise self.error
        return self.overview


@pytest.fixture
def log_lines() -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    sink = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"])))
    yield lines
    logger.remove(sink)


def test_one_point_per_type_with_one_request_and_one_timestamp(make_config):
    config = make_config(None)
    qrs = StandInQrs()
    result = run_monitor(config.sites()[0], qrs, build_plugin_host(config), None, WHEN)
    assert result.ok and qrs.calls == 1
    assert {p.tags["license_type"]: dict(p.fields) for p in result.points} == EXPECTED
    assert {p.measurement for p in result.points} == {"qlik_sense_license"}
    assert {p.time for p in result.points} == {WHEN}
    assert {p.feature for p in result.points} == {"license_monitor"}
    assert [p.tags for p in result.points if p.tags["license_type"] == "professional"] == [
        {"license_type": "professional"}
    ]


def test_default_timestamp_is_when_the_overview_arrived(make_config):
    config = make_config(None)
    before = datetime.now(UTC)
    result = run_monitor(config.sites()[0], StandInQrs(), build_plugin_host(config), None)
    after = datetime.now(UTC)
    assert result.time is not None and before <= result.time <= after
    assert {p.time for p in result.points} == {result.time}


def test_static_tags_feature_wins_and_license_type_is_reserved(make_config, log_lines):
    config = make_config(
        None,
        {
            "influxDb": {
                "tag": {
                    "static": [
                        {"name": "butler", "value": "b1"},
                        {"name": "env", "value": "from-influxdb"},
                    ]
                }
            },
            "qlikSenseLicense": {
                "licenseMonitor": {
                    "destination": {
                        "influxDb": {
                            "tag": {
                                "static": [
                                    {"name": "env", "value": "prod"},
                                    {"name": "license_type", "value": "hijack"},
                                ]
                            }
                        }
                    }
                }
            },
        },
    )
    result = run_monitor(config.sites()[0], StandInQrs(), build_plugin_host(config), None, WHEN)
    assert {p.tags["license_type"] for p in result.points} == set(EXPECTED)
    for point in result.points:
        assert {k: v for k, v in point.tags.items() if k != "license_type"} == {
            "butler": "b1",
            "env": "prod",
        }
    warnings = [m for level, m in log_lines if level == "WARNING"]
    assert len(warnings) == 1 and "'license_type' is ignored" in warnings[0]


@pytest.mark.parametrize(
    ("qrs", "message"),
    [
        (StandInQrs(error=ConnectionError("QRS at sense:4242 refused")), "refused"),
        (StandInQrs(overview=["not", "an", "object"]), "not an object"),
    ],
)
def test_unreadable_overview_is_a_failed_run_without_points(make_config, tmp_path, qrs, message):
    from agent.delivery import Delivery
    from agent.outbox import Outbox

    config = make_config(None)
    delivery = Delivery([], Outbox(tmp_path / "outbox.sqlite"))
    result = run_monitor(config.sites()[0], qrs, build_plugin_host(config), delivery, WHEN)
    assert not result.ok and message in (result.error or "")
    assert result.points == [] and result.delivery is None
    assert delivery.outbox.count() == 0


class BrokenTypePlugin:
    @hookimpl
    def sla_license_types(self):
        def extract(overview):
            raise KeyError("boom")

        return [LicenseType(name="broken", extract=extract)]


class CollectorsPlugin:
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    @hookimpl
    def sla_metric_collectors(self, config):
        def good(qrs, now, site):
            self.seen = {"qrs": qrs, "now": now, "site": site.name}
            return [Point("extra", {"k": "v"}, {"n": 1.0}, now, "server_license")]

        def fewer_args(now):  # accepts fewer arguments than offered, like a pluggy hook
            return [Point("extra2", {}, {"n": 2.0}, now, "server_license")]

        def failing(qrs, now, site):
            raise RuntimeError("collector down")

        def wrong_type(qrs, now, site):
            return ["not a point"]

        return [
            MetricCollector("good", good),
            MetricCollector("fewer", fewer_args),
            MetricCollector("failing", failing),
            MetricCollector("wrong", wrong_type),
        ]


def test_a_failing_plugin_never_stops_the_others(make_config):
    config = make_config(None)
    collectors = CollectorsPlugin()
    host = build_plugin_host(config, extra=[("broken", BrokenTypePlugin()), ("c", collectors)])
    qrs = StandInQrs()
    result = run_monitor(config.sites()[0], qrs, host, None, WHEN, config=config)
    assert result.ok
    by_measurement: dict[str, int] = {}
    for p in result.points:
        by_measurement[p.measurement] = by_measurement.get(p.measurement, 0) + 1
    assert by_measurement == {"qlik_sense_license": 6, "extra": 1, "extra2": 1}
    assert collectors.seen == {"qrs": qrs, "now": WHEN, "site": "sense.example.com"}
    assert set(result.plugin_errors) == {"broken", "failing", "wrong"}
    assert "collector down" in result.plugin_errors["failing"]


def test_scheduled_job_logs_one_line_per_failed_run(make_config, log_lines):
    config = make_config(None)
    host = build_plugin_host(config)
    for _ in range(3):  # QRS down for three runs: three lines, no traceback
        results = run_monitor_job(
            config, host, qrs_factory=lambda site: StandInQrs(error=OSError("unreachable"))
        )
        assert len(results) == 1 and not results[0].ok
    errors = [m for level, m in log_lines if level == "ERROR"]
    assert len(errors) == 3
    assert all("license monitor run for sense.example.com failed" in m for m in errors)
    assert all("unreachable" in m for m in errors)


def test_scheduled_job_survives_a_client_that_cannot_be_built(make_config, log_lines):
    config = make_config(None)

    def factory(site):
        raise ValueError("bad certificate file")

    results = run_monitor_job(config, build_plugin_host(config), qrs_factory=factory)
    assert "bad certificate file" in (results[0].error or "")
    assert [level for level, _ in log_lines if level == "ERROR"] == ["ERROR"]


def test_scheduled_job_delivers_and_closes_the_client(make_config, tmp_path):
    config = make_config(
        None,
        {"licenseAgent": {"destinations": {"jsonl": {"enable": True, "path": "out.jsonl"}}}},
    )
    closed = []

    class Closing(StandInQrs):
        def close(self) -> None:
            closed.append(True)

    results = run_monitor_job(config, build_plugin_host(config), qrs_factory=lambda s: Closing())
    assert results[0].ok and closed == [True]
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6
    assert results[0].time is not None
    assert results[0].time - datetime.now(UTC) < timedelta(seconds=60)
