"""The SQLite destination: tables a report can query, idempotence, migrations, WAL."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agent.models import DestinationError, Point
from agent.plugins import build_plugin_host
from plugins.destinations.sqlite import SCHEMA_VERSION, SqliteDestination, migrate

from .conftest import T0, monitor_point, release_point

FEATURES = frozenset({"license_monitor", "license_release", "server_license"})


@pytest.fixture
def path(tmp_path):
    return tmp_path / "license-agent.sqlite"


@pytest.fixture
def dest(path):
    d = SqliteDestination(path, FEATURES)
    yield d
    d.close()


def rows(path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_snapshots_are_a_long_table_with_a_usage_view(dest, path):
    dest.write([monitor_point(1, site="qs-prod"), monitor_point(1, "analyzer", site="qs-prod")])
    assert rows(
        path, "SELECT time, license_type, field, value, tags FROM license_snapshot ORDER BY 2, 3"
    ) == [
        ("2026-06-01T13:00:00.250Z", "analyzer", "allocated", 1.0, '{"site":"qs-prod"}'),
        ("2026-06-01T13:00:00.250Z", "analyzer", "total", 25.0, '{"site":"qs-prod"}'),
        ("2026-06-01T13:00:00.250Z", "professional", "allocated", 1.0, '{"site":"qs-prod"}'),
        ("2026-06-01T13:00:00.250Z", "professional", "total", 25.0, '{"site":"qs-prod"}'),
    ]
    assert rows(
        path, "SELECT license_type, total, allocated, used FROM license_usage ORDER BY 1"
    ) == [
        ("analyzer", 25.0, 1.0, None),
        ("professional", 25.0, 1.0, None),
    ]


def test_release_events_and_other_measurements(dest, path):
    server = Point(
        "qlik_sense_server_license",
        {"site": "x"},
        {
            "license_expired": False,
            "expiry_date": "2027-03-16T00:00:00Z",
            "days_until_expiry": 288.0,
        },
        T0,
        "server_license",
    )
    dest.write([release_point(1), server])
    assert rows(
        path,
        "SELECT time, license_type, user, allocation_id, days_since_last_use, quarantined, tags"
        " FROM release_event",
    ) == [("2026-06-01T12:01:00.250Z", "professional", "ACME\\user1", "id-1", 41.0, 0, "{}")]
    [(measurement, tags, fields, feature)] = rows(
        path, "SELECT measurement, tags, fields, feature FROM point"
    )
    assert (measurement, tags, feature) == (
        "qlik_sense_server_license",
        '{"site":"x"}',
        "server_license",
    )
    assert json.loads(fields) == {
        "license_expired": False,
        "expiry_date": "2027-03-16T00:00:00Z",
        "days_until_expiry": 288.0,
    }


def test_writing_the_same_points_twice_overwrites(dest, path):
    points = [monitor_point(1), release_point(1), monitor_point(2)]
    dest.write(points)
    dest.write(points)
    assert rows(path, "SELECT COUNT(*) FROM license_snapshot") == [(4,)]
    assert rows(path, "SELECT COUNT(*) FROM release_event") == [(1,)]


def test_the_file_is_in_wal_mode_and_readers_never_block_the_writer(dest, path):
    dest.write([monitor_point(1)])
    reader = sqlite3.connect(path, timeout=0.1)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        reader.execute("BEGIN")
        before = reader.execute("SELECT COUNT(*) FROM license_snapshot").fetchone()
        dest.write([monitor_point(2)])  # while the reader's transaction is open
        assert reader.execute("SELECT COUNT(*) FROM license_snapshot").fetchone() == before
        reader.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*) FROM license_snapshot").fetchone() == (4,)
    finally:
        reader.close()


def test_an_old_file_is_migrated_with_its_data(path):
    with sqlite3.connect(path, isolation_level=None) as db:
        migrate(db, target=1)  # a file written by the first release of the agent
        db.execute(
            "INSERT INTO license_snapshot VALUES"
            " ('2025-01-01T00:00:00.000Z', 1735689600000000000, 'professional', 'total', 20, '{}')"
        )
    assert rows(path, "PRAGMA user_version") == [(1,)]
    dest = SqliteDestination(path, FEATURES)
    dest.write([monitor_point(1)])
    dest.close()
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "SELECT time, total FROM license_usage ORDER BY time_ns") == [
        ("2025-01-01T00:00:00.000Z", 20.0),
        ("2026-06-01T13:00:00.250Z", 25.0),
    ]


def test_a_file_from_a_newer_agent_is_refused_clearly(path):
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    dest = SqliteDestination(path, FEATURES)
    with pytest.raises(DestinationError, match="newer than this agent's"):
        dest.write([monitor_point(1)])


def test_an_unusable_path_is_a_destination_error(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    dest = SqliteDestination(tmp_path / "blocker" / "x.sqlite", FEATURES)
    with pytest.raises(DestinationError, match="cannot open SQLite file"):
        dest.write([monitor_point(1)])


def test_enabled_by_config_with_default_path_and_features(make_config, tmp_path):
    config = make_config(
        {
            "licenseAgent": {
                "destinations": {"sqlite": {"enable": True, "features": ["license_release"]}}
            }
        }
    )
    [dest] = build_plugin_host(config).destinations(config)
    assert dest.name == "sqlite" and dest.features == {"license_release"}
    assert dest.describe() == f"SQLite file {tmp_path / 'state' / 'license-agent.sqlite'}"
    assert build_plugin_host(make_config({})).destinations(make_config({})) == []
