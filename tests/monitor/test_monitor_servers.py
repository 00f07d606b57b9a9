"""The monitor end to end: QRS simulator over mutual TLS -> real destinations, read back.

InfluxDB 1.x is read back with InfluxQL, VictoriaMetrics (written through the InfluxDB v2 API,
``version: 2``) with its export API, SQLite with SQL and JSON lines as text.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from typing import Any

import pytest

from agent.jobs import run_monitor_job
from agent.models import format_qrs_time
from agent.outbox import time_to_ns
from agent.plugins import build_plugin_host

from .conftest import influx_v1
from .data import EXPECTED, NOW

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def overview_requests(sim: Any) -> int:
    return sim.get_stats()["requests"].get("GET /qrs/license/accesstypeoverview", 0)


def run(config: Any) -> Any:
    [result] = run_monitor_job(config, build_plugin_host(config))
    assert result.ok, result.error
    return result


@pytest.mark.influxdb
def test_influxdb_v1_gets_every_type_with_exact_tags_fields_and_types(
    simulator, make_config, influxdb_server, influxdb_database
):
    config = make_config(
        simulator,
        influx_v1(
            influxdb_server,
            influxdb_database,
            influxDb={"tag": {"static": [{"name": "site", "value": "qs-prod"}]}},
        ),
    )
    result = run(config)
    assert overview_requests(simulator) == 1
    [report] = result.delivery.destinations
    assert (report.name, report.written, report.pending) == ("influxdb", 6, 0)

    rows = influxdb_server.rows("SELECT * FROM qlik_sense_license", influxdb_database)
    assert len(rows) == 6
    assert {row["time"] for row in rows} == {time_to_ns(result.time)}  # one timestamp, exact
    by_type = {row["license_type"]: row for row in rows}
    assert set(by_type) == set(EXPECTED)
    for license_type, fields in EXPECTED.items():
        row = by_type[license_type]
        assert row["site"] == "qs-prod"
        written = {
            k: v
            for k, v in row.items()
            if v is not None and k not in ("time", "license_type", "site")
        }
        assert written == pytest.approx(fields), license_type
    field_types = influxdb_server.query(
        "SHOW FIELD KEYS FROM qlik_sense_license", influxdb_database
    )["series"][0]["values"]
    assert {t for _, t in field_types} == {"float"}
    tag_keys = influxdb_server.query("SHOW TAG KEYS FROM qlik_sense_license", influxdb_database)
    assert sorted(v[0] for v in tag_keys["series"][0]["values"]) == ["license_type", "site"]
    policies = influxdb_server.query(f'SHOW RETENTION POLICIES ON "{influxdb_database}"')
    assert ["autogen", "0s", "168h0m0s", 1, True] in policies["series"][0]["values"]


@pytest.mark.influxdb
def test_influxdb_v1_older_sense_overview(
    simulator, make_config, influxdb_server, influxdb_database
):
    # Older Sense: no analyzer capacity block, no `excess`, no token blocks at all.
    simulator.load_state(
        {
            "now": NOW,
            "overview": {
                "analyzerTimeAccess": None,
                "userAccess": None,
                "loginAccess": None,
                "tokensEnabled": None,
                "professionalAccess": {
                    "total": 25,
                    "allocated": 5,
                    "available": 20,
                    "excess": None,
                },
                "analyzerAccess": {"total": 30, "allocated": 4, "available": 26, "excess": None},
            },
        }
    )
    config = make_config(
        simulator,
        influx_v1(
            influxdb_server,
            influxdb_database,
            influxDb={"retentionPolicy": {"name": "ten_years", "duration": "3650d"}},
        ),
    )
    run(config)
    rows = influxdb_server.rows(
        "SELECT * FROM qlik_sense_license GROUP BY license_type", influxdb_database
    )
    assert {row["license_type"] for row in rows} == {"professional", "analyzer"}
    pro = next(row for row in rows if row["license_type"] == "professional")
    assert "excess" not in pro and pro["allocated"] == 5 and pro["available"] == 20
    # The configured retention policy was created and made the default.
    policies = influxdb_server.query(f'SHOW RETENTION POLICIES ON "{influxdb_database}"')
    assert ["ten_years", "87600h0m0s", "168h0m0s", 1, True] in policies["series"][0]["values"]


def wait_for_series(vm: Any, match: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """VictoriaMetrics makes new series searchable a moment after the write."""
    deadline = time.monotonic() + timeout
    while True:
        series = vm.export(match)
        if len(series) >= count or time.monotonic() > deadline:
            return series
        time.sleep(0.1)


@pytest.mark.victoriametrics
def test_victoriametrics_through_the_influxdb_v2_api(
    simulator, make_config, victoriametrics_server
):
    run_id = uuid.uuid4().hex[:12]
    vm = victoriametrics_server
    config = make_config(
        simulator,
        {
            "influxDb": {
                "enable": True,
                "version": 2,
                "hostIP": vm.host,
                "hostPort": vm.port,
                "org": "acme",
                "bucket": "licenses",
                "token": "not-checked-by-victoriametrics",
                "tag": {"static": [{"name": "run", "value": run_id}]},
            },
            "qlikSenseLicense": {"licenseMonitor": {"destination": {"influxDb": {"enable": True}}}},
        },
    )
    result = run(config)
    expected_series = sum(len(fields) for fields in EXPECTED.values())
    series = wait_for_series(vm, f'{{run="{run_id}"}}', expected_series)
    got = {
        (s["metric"]["__name__"], s["metric"]["license_type"]): (s["values"], s["timestamps"])
        for s in series
    }
    millis = int(result.time.timestamp() * 1000)
    expected = {
        (f"qlik_sense_license_{field}", license_type): ([value], [millis])
        for license_type, fields in EXPECTED.items()
        for field, value in fields.items()
    }
    assert got == expected
    assert {frozenset(s["metric"]) for s in series} == {
        frozenset({"__name__", "license_type", "run"})
    }


def test_sqlite_and_jsonl_get_the_same_points(simulator, make_config, tmp_path):
    config = make_config(
        simulator,
        {
            "licenseAgent": {
                "destinations": {
                    "sqlite": {"enable": True, "path": "history.sqlite"},
                    "jsonl": {"enable": True, "path": "points.jsonl"},
                }
            }
        },
    )
    result = run(config)
    assert [(d.name, d.written) for d in result.delivery.destinations] == [
        ("sqlite", 6),
        ("jsonl", 6),
    ] or sorted((d.name, d.written) for d in result.delivery.destinations) == [
        ("jsonl", 6),
        ("sqlite", 6),
    ]
    stamp = format_qrs_time(result.time)

    lines = [json.loads(x) for x in (tmp_path / "points.jsonl").read_text("utf-8").splitlines()]
    assert {line["tags"]["license_type"]: line["fields"] for line in lines} == EXPECTED
    assert {(line["measurement"], line["time"], line["feature"]) for line in lines} == {
        ("qlik_sense_license", stamp, "license_monitor")
    }

    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        rows = db.execute(
            "SELECT time, license_type, field, value FROM license_snapshot"
        ).fetchall()
        usage = db.execute(
            "SELECT license_type, total, allocated, used, quarantined, available"
            " FROM license_usage WHERE license_type = 'professional'"
        ).fetchall()
    assert {(t, lt, f): v for t, lt, f, v in rows} == {
        (stamp, license_type, field): value
        for license_type, fields in EXPECTED.items()
        for field, value in fields.items()
    }
    assert usage == [("professional", 25.0, 5.0, 3.0, 1.0, 20.0)]
