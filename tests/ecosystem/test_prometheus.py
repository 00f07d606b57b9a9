"""The Prometheus destination: what ``/metrics`` serves after license points, release events,
server license points and job results; its isolation (own registry, own port), idempotence,
failure modes; and a real Prometheus server scraping it and answering queries."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from agent.config import ConfigError
from agent.models import (
    FEATURE_LICENSE_RELEASE,
    FEATURE_SERVER_LICENSE,
    MEASUREMENT_LICENSE,
    MEASUREMENT_RELEASE,
    MEASUREMENT_SERVER_LICENSE,
    UTC,
    Destination,
    Point,
)
from agent.plugins import PluginHost
from plugins.destinations import prometheus as prom

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def license_point(license_type: str, fields: dict, site: str | None = None) -> Point:
    tags = {"license_type": license_type, "env": "prod"}
    if site:
        tags["site"] = site
    return Point(MEASUREMENT_LICENSE, tags, fields, NOW)


def release_point(license_type: str, user: str, allocation_id: str, **extra) -> Point:
    return Point(
        MEASUREMENT_RELEASE,
        {"license_type": license_type, "user": user},
        {"days_since_last_use": 40.0, "allocation_id": allocation_id, **extra},
        NOW,
        FEATURE_LICENSE_RELEASE,
    )


SERVER_POINT = Point(
    MEASUREMENT_SERVER_LICENSE,
    {},
    {"license_expired": False, "expiry_date": "2027-03-16T00:00:00Z", "days_until_expiry": 287.0},
    NOW,
    FEATURE_SERVER_LICENSE,
)


def scrape(destination: prom.PrometheusDestination) -> dict[tuple[str, tuple], float]:
    """GET /metrics over HTTP and return ``{(sample name, sorted labels): value}``."""
    response = requests.get(destination.url, timeout=5)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture
def destination():
    dest = prom.PrometheusDestination(port=0, default_site="sense1.example.com")
    yield dest
    dest.close()


def test_license_points_become_gauges_per_type_and_field(destination):
    destination.write(
        [
            license_point("professional", {"total": 25.0, "allocated": 5.0, "used": 2.0}),
            license_point("analyzer_capacity", {"allocated_minutes": 700.0, "used_minutes": 0.0}),
        ]
    )
    samples = scrape(destination)
    site = ("site", "sense1.example.com")
    assert samples[("qlik_sense_license_total", (("license_type", "professional"), site))] == 25
    assert samples[("qlik_sense_license_allocated", (("license_type", "professional"), site))] == 5
    key = ("qlik_sense_license_allocated_minutes", (("license_type", "analyzer_capacity"), site))
    assert samples[key] == 700
    # Static tags such as env are not labels: series stay stable when tags change.
    assert all(
        dict(labels).keys() <= {"license_type", "site", "job_name", "result"}
        for _, labels in samples
    )

    destination.write([license_point("professional", {"total": 30.0})])
    assert (
        scrape(destination)[("qlik_sense_license_total", (("license_type", "professional"), site))]
        == 30
    )


def test_site_label_comes_from_the_points_site_tag(destination):
    destination.write([license_point("professional", {"total": 1.0}, site="emea")])
    destination.write([license_point("professional", {"total": 2.0}, site="apac")])
    samples = scrape(destination)
    assert (
        samples[("qlik_sense_license_total", (("license_type", "professional"), ("site", "emea")))]
        == 1
    )
    assert (
        samples[("qlik_sense_license_total", (("license_type", "professional"), ("site", "apac")))]
        == 2
    )


def test_release_events_count_once_even_when_redelivered(destination):
    events = [
        release_point("professional", "ACME\\a", "id-1"),
        release_point("professional", "ACME\\b", "id-2", quarantined=True),
        release_point("analyzer", "ACME\\c", "id-3"),
    ]
    destination.write(events)
    destination.write(events[:2])  # the outbox re-sends after a failure elsewhere
    samples = scrape(destination)
    site = ("site", "sense1.example.com")
    assert (
        samples[("qlik_sense_license_released_total", (("license_type", "professional"), site))]
        == 2
    )
    assert samples[("qlik_sense_license_released_total", (("license_type", "analyzer"), site))] == 1
    key = ("qlik_sense_license_release_quarantined_total", (("license_type", "professional"), site))
    assert samples[key] == 1


def test_server_license_gauges(destination):
    destination.write([SERVER_POINT])
    samples = scrape(destination)
    site = (("site", "sense1.example.com"),)
    assert samples[("qlik_sense_server_license_days_until_expiry", site)] == 287
    assert samples[("qlik_sense_server_license_expired", site)] == 0
    expected = datetime(2027, 3, 16, tzinfo=UTC).timestamp()
    assert samples[("qlik_sense_server_license_expiry_timestamp_seconds", site)] == expected


def test_job_results_and_qrs_errors(destination):
    destination.record_job_result("license_monitor", ok=True, finished=NOW, qrs_errors=0)
    later = NOW + timedelta(hours=6)
    destination.record_job_result("license_monitor", ok=False, finished=later, qrs_errors=3)
    destination.record_job_result("license_release", ok=True, finished=later)
    destination.record_qrs_errors(2)
    samples = scrape(destination)
    assert (
        samples[
            ("license_agent_last_success_timestamp_seconds", (("job_name", "license_monitor"),))
        ]
        == NOW.timestamp()
    )
    assert (
        samples[
            ("license_agent_last_success_timestamp_seconds", (("job_name", "license_release"),))
        ]
        == later.timestamp()
    )
    runs = "license_agent_job_runs_total"
    assert samples[(runs, (("job_name", "license_monitor"), ("result", "failure")))] == 1
    assert samples[(runs, (("job_name", "license_monitor"), ("result", "success")))] == 1
    assert samples[("license_agent_qrs_errors_total", ())] == 5


def test_two_destinations_side_by_side_keep_their_own_numbers():
    first = prom.PrometheusDestination(port=0, default_site="a")
    second = prom.PrometheusDestination(port=0, default_site="b")
    try:
        first.write([license_point("professional", {"total": 10.0})])
        second.write([license_point("professional", {"total": 20.0})])
        assert first.port != second.port
        assert [v for (n, _), v in scrape(first).items() if n == "qlik_sense_license_total"] == [10]
        assert [v for (n, _), v in scrape(second).items() if n == "qlik_sense_license_total"] == [
            20
        ]
    finally:
        first.close()
        second.close()


def test_close_stops_the_server_and_frees_the_port(destination):
    destination.start()
    port = destination.port
    assert port > 0 and destination.serving
    destination.close()
    assert not destination.serving
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    # The port is free again for the next agent.
    again = prom.PrometheusDestination(port=port)
    try:
        again.start()
        assert again.serving and again.port == port
    finally:
        again.close()


def test_port_in_use_is_logged_and_writes_still_work(destination, log_lines):
    destination.start()
    clash = prom.PrometheusDestination(port=destination.port)
    try:
        clash.write([license_point("professional", {"total": 3.0})])  # must not raise
        assert not clash.serving
        errors = [m for level, m in log_lines if level == "ERROR"]
        assert len(errors) == 1 and str(destination.port) in errors[0]
        assert "destinations.prometheus.port" in errors[0]
        assert "qlik_sense_license_total" in clash.metrics_text()
        clash.write([license_point("professional", {"total": 4.0})])
        assert len([m for level, m in log_lines if level == "ERROR"]) == 1  # logged once
    finally:
        clash.close()


def test_a_field_clashing_with_a_fixed_metric_is_skipped(destination, log_lines):
    # A third-party license type with a field named "released" would collide with the counter.
    destination.write([license_point("custom", {"released": 1.0, "total": 2.0})])
    text = destination.metrics_text()
    assert 'qlik_sense_license_total{license_type="custom"' in text
    assert any("released" in m for level, m in log_lines if level == "WARNING")


def test_strings_and_unknown_measurements_are_ignored(destination):
    destination.write(
        [
            license_point("professional", {"note": "text", "total": 1.0}),
            Point("something_else", {}, {"x": 1.0}, NOW),
        ]
    )
    text = destination.metrics_text()
    assert "qlik_sense_license_note" not in text and "something_else" not in text


def test_it_is_a_destination():
    dest = prom.PrometheusDestination(port=0, features=["license_monitor"])
    assert isinstance(dest, Destination)
    assert dest.name == "prometheus" and dest.features == frozenset({"license_monitor"})
    assert "127.0.0.1" in dest.describe()
    dest.close()  # closing a never-started destination is fine


# --------------------------------------------------------------------------- config and hooks


def test_config_defaults_and_limits(make_config):
    settings = make_config().agent.destinations.prometheus
    assert (settings.enable, settings.host, settings.port) == (False, "127.0.0.1", 9842)
    assert set(settings.features) == {"license_monitor", "license_release", "server_license"}
    with pytest.raises(ConfigError, match=r"destinations\.prometheus\.port"):
        make_config({"licenseAgent": {"destinations": {"prometheus": {"port": 70000}}}})
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        make_config({"licenseAgent": {"destinations": {"prometheus": {"prot": 1}}}})


def host_with_prometheus() -> PluginHost:
    host = PluginHost()
    host._register(prom, "prometheus", "built-in")
    return host


def test_sla_destinations_gives_a_destination_only_when_enabled(make_config, qrs_keys):
    host = host_with_prometheus()
    assert host.destinations(make_config()) == []
    config = make_config(
        {
            **qrs_keys(host="qs1.example.com"),
            "licenseAgent": {
                "destinations": {
                    "prometheus": {"enable": True, "port": 0, "features": ["server_license"]}
                }
            },
        }
    )
    host.configure(config)
    (dest,) = host.destinations(config)
    try:
        assert dest.features == frozenset({"server_license"})
        dest.write([SERVER_POINT])
        assert (
            scrape(dest)[("qlik_sense_server_license_expired", (("site", "qs1.example.com"),))] == 0
        )
    finally:
        dest.close()


def test_sla_configure_reports_a_missing_extra_clearly(make_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import now fails
    config = make_config({"licenseAgent": {"destinations": {"prometheus": {"enable": True}}}})
    with pytest.raises(ConfigError) as info:
        host_with_prometheus().configure(config)
    message = str(info.value)
    assert "destinations.prometheus.enable" in message
    assert 'pip install "sense-license-agent[prometheus]"' in message
    # Disabled, the missing package does not matter.
    host_with_prometheus().configure(make_config())


# --------------------------------------------------------------------------- a real Prometheus


@pytest.mark.prometheus
def test_a_real_prometheus_scrapes_the_agent(prometheus_server):
    dest = prom.PrometheusDestination(port=prometheus_server.target_port, default_site="scraped")
    try:
        dest.write(
            [
                license_point("professional", {"total": 25.0, "allocated": 5.0, "available": 20.0}),
                license_point("analyzer", {"total": 25.0, "allocated": 4.0, "available": 21.0}),
                release_point("professional", "ACME\\a", "id-1"),
                release_point("professional", "ACME\\b", "id-2"),
                SERVER_POINT,
            ]
        )
        dest.record_job_result("license_monitor", ok=True, finished=NOW)
        dest.record_qrs_errors(3)
        server = prometheus_server
        up = server.wait_for('up{job="license_agent"} == 1')
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{dest.port}"
        allocated = server.wait_for('qlik_sense_license_allocated{site="scraped"}')
        values = {r["metric"]["license_type"]: float(r["value"][1]) for r in allocated}
        assert values == {"professional": 5.0, "analyzer": 4.0}
        released = server.wait_for(
            'sum by (license_type) (qlik_sense_license_released_total{site="scraped"})'
        )
        assert [(r["metric"]["license_type"], float(r["value"][1])) for r in released] == [
            ("professional", 2.0)
        ]
        days = server.wait_for('qlik_sense_server_license_days_until_expiry{site="scraped"}')
        assert float(days[0]["value"][1]) == 287.0
        health = server.wait_for(
            'license_agent_last_success_timestamp_seconds{job_name="license_monitor"}'
        )
        assert float(health[0]["value"][1]) == NOW.timestamp()
        # The agent's label is job_name; Prometheus's own job label is left alone.
        assert health[0]["metric"]["job"] == "license_agent"
        errors = server.wait_for("license_agent_qrs_errors_total == 3")
        assert float(errors[0]["value"][1]) == 3
    finally:
        dest.close()


@pytest.mark.prometheus
def test_monitor_and_release_runs_reach_a_real_prometheus(sim, sim_config, prometheus_server):
    """The real stack end to end: simulator -> QRS client -> monitor and release runs ->
    delivery (outbox) -> this destination -> scraped by Prometheus -> PromQL."""
    from agent.delivery import Delivery
    from agent.models import Decision
    from agent.monitor import run_monitor
    from agent.plugins import build_plugin_host
    from agent.qrs import QrsClient
    from agent.release import run_release

    config = sim_config(
        {
            "qlikSenseLicense": {
                "licenseMonitor": {"enable": True},
                "serverLicenseMonitor": {"enable": True},
                "licenseRelease": {
                    "enable": True,
                    "dryRun": False,
                    "licenseType": {
                        "professional": {"enable": True, "releaseThresholdDays": 30},
                        "analyzer": {"enable": True, "releaseThresholdDays": 30},
                    },
                },
            },
            "licenseAgent": {
                "destinations": {
                    "prometheus": {"enable": True, "port": prometheus_server.target_port}
                }
            },
        }
    )
    host = build_plugin_host(config)
    site = config.sites()[0]
    delivery = Delivery.from_config(config, host)
    (dest,) = [d for d in delivery.destinations if d.name == "prometheus"]
    try:
        with QrsClient(site) as qrs:
            monitored = run_monitor(site, qrs, host, delivery, now=NOW, config=config)
            released = run_release(config, site, host, qrs, delivery=delivery, now=NOW)
        assert monitored.ok and released.ok
        finished = NOW + timedelta(minutes=5)
        dest.record_job_result("license_release", ok=True, finished=finished)
        expected = {}
        for decision in released.decisions:
            if decision.decision in (Decision.RELEASED, Decision.QUARANTINED):
                kind = decision.allocation.license_type
                expected[kind] = expected.get(kind, 0) + 1
        assert expected, "the generated site should have allocations past 30 days"

        server = prometheus_server
        mine = f'site="{site.name}"'
        health = server.wait_for(
            'license_agent_last_success_timestamp_seconds{job_name="license_release"}'
        )
        assert float(health[0]["value"][1]) == finished.timestamp()
        totals = server.wait_for(f"qlik_sense_license_total{{{mine}}}")
        overview = {
            p.tags["license_type"]: p.fields for p in monitored.points if "license_type" in p.tags
        }
        assert {r["metric"]["license_type"]: float(r["value"][1]) for r in totals} == {
            name: fields["total"] for name, fields in overview.items() if "total" in fields
        }
        assert {r["metric"]["site"] for r in totals} == {site.name}
        counted = server.wait_for(
            f"sum by (license_type) (qlik_sense_license_released_total{{{mine}}})"
        )
        assert {r["metric"]["license_type"]: float(r["value"][1]) for r in counted} == expected
        days = server.wait_for(f"qlik_sense_server_license_days_until_expiry{{{mine}}}")
        (server_point,) = [
            p for p in monitored.points if p.measurement == MEASUREMENT_SERVER_LICENSE
        ]
        assert float(days[0]["value"][1]) == server_point.fields["days_until_expiry"]
    finally:
        delivery.close()
    assert not dest.serving  # closing the delivery closed the destination and its server
