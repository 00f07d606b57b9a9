"""The site license collector: ``Valid To:`` parsing, the point it writes, the expiry warning,
its Butler-compatible config, and a run against the simulator's ``GET /qrs/license``."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agent.config import ConfigError
from agent.models import (
    FEATURE_SERVER_LICENSE,
    MEASUREMENT_SERVER_LICENSE,
    UTC,
    MetricCollector,
    QrsDataError,
)
from agent.plugins import PluginHost
from plugins.monitors import server_license as sl

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

SIMULATOR_STYLE = "\n".join(
    [
        "Serial: 9999000000001234",
        "Product: Qlik Sense Enterprise for Windows",
        "Valid From: 2025-03-16 12:00:00 AM",
        "Valid To: 2027-03-16 12:00:00 AM",
        "Professional Access Allocations: see totals",
    ]
)


@pytest.mark.parametrize(
    ("key_details", "expected"),
    [
        (SIMULATOR_STYLE, datetime(2027, 3, 16, 0, 0, tzinfo=UTC)),
        ("Valid To: 2027-03-16", datetime(2027, 3, 16, tzinfo=UTC)),
        # 12 h clock, afternoon: the time is kept whole (Butler cut it at the first ':').
        ("Valid To: 2027-03-16 01:30:00 PM", datetime(2027, 3, 16, 13, 30, tzinfo=UTC)),
        ("Valid To: 2027-03-16 23:59:59", datetime(2027, 3, 16, 23, 59, 59, tzinfo=UTC)),
        ("valid to:2027-03-16T08:00:00Z\r\nOther: x", datetime(2027, 3, 16, 8, tzinfo=UTC)),
        ("Valid To: 3/16/2027 12:00:00 AM", datetime(2027, 3, 16, tzinfo=UTC)),
        ("Valid To: 2027-03-16\u202f12:00:00\u202fAM", datetime(2027, 3, 16, tzinfo=UTC)),
        # Several components: the first to expire counts.
        ("Valid To: 2028-01-01\nAddon\nValid To: 2026-12-31", datetime(2026, 12, 31, tzinfo=UTC)),
    ],
)
def test_valid_to_is_parsed_whole(key_details, expected):
    assert sl.parse_valid_to(key_details) == expected


@pytest.mark.parametrize("key_details", ["", "Serial: 1\nProduct: x", "Valid To:   ", "Valid To:"])
def test_no_valid_to_means_no_expiry(key_details):
    assert sl.parse_valid_to(key_details) is None


@pytest.mark.parametrize("text", ["Valid To: soon", "Valid To: 2027-13-45", "Valid To: 16.03.2027"])
def test_unreadable_valid_to_is_a_data_error(text):
    with pytest.raises(QrsDataError, match="Valid To"):
        sl.parse_valid_to(text)


@pytest.mark.parametrize(
    ("expiry", "days"),
    [
        (NOW + timedelta(days=30), 30),
        (NOW + timedelta(days=30, hours=23), 30),  # floor, not Butler's ceil
        (NOW + timedelta(hours=1), 0),
        (NOW, 0),
        (NOW - timedelta(hours=1), -1),  # negative once expired, not Butler's absolute value
        (NOW - timedelta(days=10), -10),
    ],
)
def test_days_until_expiry_is_floored_and_signed(expiry, days):
    assert sl.days_until(expiry, NOW) == days


def test_status_uses_isExpired_from_qrs_and_computes_it_when_absent():
    past = {"keyDetails": "Valid To: 2026-05-01"}
    assert sl.server_license_status(past, NOW).license_expired is True
    assert sl.server_license_status({**past, "isExpired": False}, NOW).license_expired is False
    future = {"keyDetails": "Valid To: 2027-05-01", "isExpired": True}
    assert sl.server_license_status(future, NOW).license_expired is True
    assert sl.server_license_status({"keyDetails": None}, NOW).license_expired is False


@pytest.mark.parametrize("bad", [[], "text", {"keyDetails": 42}])
def test_uninterpretable_license_objects_raise(bad):
    with pytest.raises(QrsDataError):
        sl.server_license_status(bad, NOW)


def test_point_keeps_butler_names_with_fixed_values():
    status = sl.server_license_status({"keyDetails": SIMULATOR_STYLE, "isExpired": False}, NOW)
    point = sl.server_license_point(status, {"env": "prod"}, NOW)
    assert point.measurement == MEASUREMENT_SERVER_LICENSE == "qlik_sense_server_license"
    assert point.feature == FEATURE_SERVER_LICENSE
    assert point.time == NOW
    assert point.tags == {"env": "prod"}
    assert point.fields == {
        "license_expired": False,
        "expiry_date": "2027-03-16T00:00:00Z",
        "days_until_expiry": 287.0,
    }
    # Butler's series hold floats; an int would be a field type conflict in InfluxDB.
    assert type(point.fields["days_until_expiry"]) is float


def test_perpetual_license_point_has_only_the_expired_flag():
    status = sl.server_license_status({"keyDetails": "Serial: 1", "isExpired": False}, NOW)
    assert sl.server_license_point(status, {}, NOW).fields == {"license_expired": False}


class FakeQrs:
    """Stands in for QrsClient where only the collector's logic is under test."""

    def __init__(self, site_license):
        self.site_license_value = site_license

    def site_license(self):
        return self.site_license_value


@pytest.fixture
def collector_for(make_config, qrs_keys):
    return lambda monitor: _collector(make_config, qrs_keys, monitor)


def _collector(make_config, qrs_keys, monitor: dict) -> tuple[MetricCollector, object]:
    config = make_config(
        {
            **qrs_keys(),
            "influxDb": {
                "tag": {"static": [{"name": "env", "value": "prod"}, {"name": "dc", "value": "a"}]}
            },
            "qlikSenseLicense": {"serverLicenseMonitor": monitor},
        }
    )
    host = PluginHost()
    host._register(sl, "server_license", "built-in")
    collectors = host.metric_collectors(config)
    assert [c.name for c in collectors] == ["server_license"]
    return collectors[0], config


def test_collector_warns_at_or_below_the_threshold(collector_for, log_lines):
    collector, config = collector_for({"enable": True, "alert": {"thresholdDays": 30}})
    site = config.sites()[0]
    for days, level in ((31, "INFO"), (30, "WARNING"), (5, "WARNING"), (-2, "WARNING")):
        expiry = (NOW + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")
        log_lines.clear()
        points = collector.collect(
            qrs=FakeQrs({"keyDetails": f"Valid To: {expiry}", "isExpired": days < 0}),
            now=NOW,
            site=site,
        )
        assert points[0].fields["days_until_expiry"] == float(days)
        mine = [(lvl, msg) for lvl, msg in log_lines if "site license" in msg]
        assert [lvl for lvl, _ in mine] == [level], (days, mine)
        assert site.name in mine[0][1]
    assert "EXPIRED" in mine[0][1]


def test_collector_tags_feature_tags_win_over_influx_tags(collector_for):
    collector, config = collector_for(
        {
            "enable": True,
            "destination": {
                "influxDb": {"enable": True, "tag": {"static": [{"name": "dc", "value": "b"}]}}
            },
        },
    )
    (point,) = collector.collect(
        qrs=FakeQrs({"keyDetails": "Valid To: 2027-01-01"}), now=NOW, site=config.sites()[0]
    )
    assert point.tags == {"env": "prod", "dc": "b"}


def test_sla_metric_collectors_registers_only_when_enabled(make_config):
    host = PluginHost()
    host._register(sl, "server_license", "built-in")
    assert host.metric_collectors(make_config()) == []
    off = make_config({"qlikSenseLicense": {"serverLicenseMonitor": {"enable": False}}})
    assert host.metric_collectors(off) == []


BUTLER_BLOCK = {
    "enable": True,
    "frequency": "every 24 hours",
    "alert": {"thresholdDays": 60},
    "destination": {
        "influxDb": {"enable": True, "tag": {"static": [{"name": "foo", "value": "bar"}]}},
        # Butler's other destinations for this feature: ignored, not rejected.
        "mqtt": {"enable": False, "sendRecurring": {"enable": True}, "sendAlert": {"enable": True}},
        "webhook": {"enable": False, "sendRecurring": {"enable": True}},
    },
}


def test_butlers_own_server_license_block_loads(make_config, qrs_keys):
    config = make_config({**qrs_keys(), "qlikSenseLicense": {"serverLicenseMonitor": BUTLER_BLOCK}})
    monitor = config.settings("qlikSenseLicense.serverLicenseMonitor")
    assert monitor.enable is True
    assert monitor.alert.threshold_days == 60
    assert monitor.destination.influx_db.enable is True
    assert [t.name for t in monitor.destination.influx_db.tag.static] == ["foo"]


def test_enabled_without_qrs_connection_is_reported(make_config):
    with pytest.raises(ConfigError) as info:
        make_config({"qlikSenseLicense": {"serverLicenseMonitor": BUTLER_BLOCK}})
    message = str(info.value)
    assert "Butler.configQRS: required key is missing" in message
    assert "qlikSenseLicense.serverLicenseMonitor is enabled" in message


def test_defaults_match_butler(make_config):
    # Absent from the file: settings() says None, the model holds the defaults.
    config = make_config()
    assert config.settings("qlikSenseLicense.serverLicenseMonitor") is None
    monitor = config.butler.qlik_sense_license.server_license_monitor
    assert (monitor.enable, monitor.frequency, monitor.alert.threshold_days) == (
        False,
        "every 24 hours",
        60,
    )


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"enable": True, "alert": {"thresholdDay": 5}}, "serverLicenseMonitor.alert.thresholdDay"),
        ({"enable": True, "alert": {"thresholdDays": -1}}, "thresholdDays"),
        ({"enabled": True}, "did you mean 'enable'"),
        ({"frequency": "whenever"}, "serverLicenseMonitor.frequency"),
    ],
)
def test_mistakes_in_the_block_are_reported_by_key(make_config, block, message):
    with pytest.raises(ConfigError) as info:
        make_config({"qlikSenseLicense": {"serverLicenseMonitor": block}})
    assert message in str(info.value)


# --------------------------------------------------------------------------- against the simulator


def test_monitor_run_writes_the_site_license_from_qrs(sim, sim_config, tmp_path, log_lines):
    """The real stack: QRS client over mutual TLS -> monitor run -> collector -> delivery."""
    from agent.delivery import Delivery
    from agent.monitor import run_monitor
    from agent.plugins import build_plugin_host
    from agent.qrs import QrsClient

    state = sim.dump_state()
    state["license"] = {
        "keyDetails": "Serial: 1\nValid From: 2025-06-20 12:00:00 AM\nValid To: 2026-06-20 12:00:00 AM",
        "isExpired": False,
    }
    sim.load_state(state)
    out = tmp_path / "points.jsonl"
    config = sim_config(
        {
            "influxDb": {"tag": {"static": [{"name": "env", "value": "test"}]}},
            "qlikSenseLicense": {
                "licenseMonitor": {"enable": True},
                "serverLicenseMonitor": {"enable": True, "alert": {"thresholdDays": 30}},
            },
            "licenseAgent": {"destinations": {"jsonl": {"enable": True, "path": str(out)}}},
        }
    )
    host = build_plugin_host(config)
    site = config.sites()[0]
    delivery = Delivery.from_config(config, host)
    try:
        with QrsClient(site) as qrs:
            result = run_monitor(site, qrs, host, delivery, now=NOW, config=config)
    finally:
        delivery.close()
    assert result.ok and not result.plugin_errors
    assert sim.get_stats()["requests"].get("GET /qrs/license") == 1

    import json

    written = [json.loads(line) for line in out.read_text().splitlines()]
    server = [p for p in written if p["measurement"] == "qlik_sense_server_license"]
    assert server == [
        {
            "measurement": "qlik_sense_server_license",
            "tags": {"env": "test"},
            "fields": {
                "license_expired": False,
                "expiry_date": "2026-06-20T00:00:00Z",
                "days_until_expiry": 18.0,
            },
            "time": "2026-06-01T12:00:00.000Z",
            "feature": "server_license",
        }
    ]
    warnings = [m for level, m in log_lines if level == "WARNING" and "site license" in m]
    assert len(warnings) == 1 and "18 days" in warnings[0] and "thresholdDays" in warnings[0]


def test_a_failing_site_license_read_does_not_stop_the_overview(sim, sim_config):
    from agent.monitor import run_monitor
    from agent.plugins import build_plugin_host
    from agent.qrs import QrsClient

    sim.add_fault("GET /qrs/license", "error", status=500)
    config = sim_config(
        {
            "configQRS": {"retries": 0},
            "qlikSenseLicense": {
                "licenseMonitor": {"enable": True},
                "serverLicenseMonitor": {"enable": True},
            },
        }
    )
    host = build_plugin_host(config)
    site = config.sites()[0]
    with QrsClient(site) as qrs:
        result = run_monitor(site, qrs, host, None, now=NOW, config=config)
    assert result.ok
    assert "server_license" in result.plugin_errors
    measurements = {p.measurement for p in result.points}
    assert measurements == {"qlik_sense_license"}
