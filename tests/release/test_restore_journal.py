"""The journal behind restores: a version-1 release journal is upgraded in place (its rows kept,
without run or owner ids), the restore event's shape, and how a selection matches."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.journal import JournalEntry, SqliteJournal
from agent.models import UTC, Decision
from agent.restore import RestoreUsageError, Selection, restore_event

AT = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def entry(**changes: object) -> JournalEntry:
    values: dict[str, object] = {
        "site": "sense",
        "license_type": "professional",
        "resource": "professionalaccesstype",
        "allocation_id": "046b6c7f-0b8a-43b9-b35d-6489e6daee91",
        "user": "ACME\\jdoe",
        "days_since_last_use": 40,
        "last_used": datetime(2026, 4, 22, 12, 0, 0, tzinfo=UTC),  # QRS times are in ms
        "at": AT,
        "run_id": "20260601T120000Z-abcdef",
        "owner_id": "aaaaaaaa-0000-4000-8000-000000000001",
    }
    values.update(changes)
    return JournalEntry(**values)  # type: ignore[arg-type]


def test_a_version_1_journal_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "release-sense.journal.sqlite"
    db = sqlite3.connect(str(path))
    db.executescript(
        """
        CREATE TABLE release_journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL,
            license_type TEXT NOT NULL, resource TEXT NOT NULL, allocation_id TEXT NOT NULL,
            user TEXT NOT NULL, days_since_last_use INTEGER NOT NULL, last_used TEXT,
            at_us INTEGER NOT NULL, at TEXT NOT NULL, state TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '', event_sent INTEGER NOT NULL DEFAULT 0,
            updated TEXT NOT NULL);
        INSERT INTO release_journal (site, license_type, resource, allocation_id, user,
            days_since_last_use, last_used, at_us, at, state, event_sent, updated)
            VALUES ('sense', 'analyzer', 'analyzeraccesstype', 'x', 'ACME\\old', 90, NULL,
                    1780315200000000, '2026-06-01T12:00:00+00:00', 'released', 1, '');
        PRAGMA user_version = 1;
        """
    )
    db.close()
    with SqliteJournal(path) as journal:
        (old,) = journal.records()
        assert (old.entry.user, old.state, old.entry.run_id, old.entry.owner_id) == (
            "ACME\\old",
            "released",
            "",
            "",
        )
        journal.intent(entry())
        journal.outcome(entry(), Decision.RELEASED)
        new = journal.records()[-1]
        assert new.entry == entry() and new.state == "released"
    db = sqlite3.connect(str(path))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


def test_restore_event_fields_and_tags() -> None:
    point = restore_event(
        entry(), "new-id", False, "20260602T080000Z-123456", AT, {"env": "prod", "user": "x"}
    )
    assert point.measurement == "qlik_sense_license_restore"
    assert point.tags == {"env": "prod", "user": "ACME\\jdoe", "license_type": "professional"}
    assert point.fields == {
        "allocation_id": "new-id",
        "released_allocation_id": "046b6c7f-0b8a-43b9-b35d-6489e6daee91",
        "reinstated": False,
        "run_id": "20260602T080000Z-123456",
        "release_run_id": "20260601T120000Z-abcdef",
    }
    assert point.time == AT and point.feature == "license_release"


def test_selection_matches_all_its_conditions() -> None:
    with pytest.raises(RestoreUsageError, match="name what to restore"):
        Selection()
    assert Selection(run_id="20260601T120000Z-abcdef").matches(entry())
    assert not Selection(run_id="other").matches(entry())
    assert Selection(user="acme\\JDOE").matches(entry())
    assert Selection(since=AT).matches(entry())
    assert not Selection(since=AT + timedelta(seconds=1)).matches(entry())
    assert not Selection(run_id="20260601T120000Z-abcdef", user="ACME\\other").matches(entry())


def test_prometheus_counts_restore_events_once() -> None:
    from plugins.destinations.prometheus import PrometheusDestination

    destination = PrometheusDestination(port=0, default_site="sense")
    try:
        point = restore_event(entry(), "new-id", True, "20260602T080000Z-123456", AT, {})
        destination.write([point])
        destination.write([point])  # the outbox delivers again after a failure elsewhere
        labels = {"license_type": "professional", "site": "sense"}
        registry = destination.registry
        assert registry.get_sample_value("qlik_sense_license_restored_total", labels) == 1
        assert registry.get_sample_value("qlik_sense_license_released_total", labels) is None
    finally:
        destination.close()
