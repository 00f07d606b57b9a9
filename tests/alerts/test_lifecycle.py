"""An alert fires once when its condition starts, repeats per repeatHours, resolves once, and
its state survives a restart (a new store reading the same file)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agent.alerts import (
    FIRING,
    REPEAT,
    RESOLVED,
    Alert,
    AlertStateError,
    AlertStateStore,
    Thresholds,
    access_conditions,
    forecast_exhaustion,
    transitions,
)
from agent.models import UTC

NOW = datetime(2026, 12, 1, 6, tzinfo=UTC)
HOUR = timedelta(hours=1)
LOW = {"total": 100.0, "allocated": 95.0, "available": 5.0, "excess": 0.0}
FINE = {"total": 100.0, "allocated": 50.0, "available": 50.0, "excess": 0.0}
THRESHOLDS = Thresholds(available_below=10)


def run(fields, state, now, repeat=timedelta(hours=24)):
    conditions = access_conditions("professional", fields, THRESHOLDS)
    return transitions(conditions, state, now, repeat, site="prod", scope=["professional"])


def test_fires_once_repeats_then_resolves():
    state = {}
    first = run(LOW, state, NOW)
    assert [(a.state, a.key) for a in first] == [(FIRING, "professional:available_below")]
    assert "5 professional licenses" in first[0].text and first[0].site == "prod"
    # Every 6 hours the condition still holds: nothing until 24 h have passed.
    for hours in (6, 12, 18):
        assert run(LOW, state, NOW + hours * HOUR) == []
    again = run(LOW, state, NOW + 24 * HOUR)
    assert [a.state for a in again] == [REPEAT]
    assert run(LOW, state, NOW + 30 * HOUR) == []
    resolved = run(FINE, state, NOW + 36 * HOUR)
    assert [a.state for a in resolved] == [RESOLVED]
    assert resolved[0].title.startswith("Resolved: ")
    assert run(FINE, state, NOW + 42 * HOUR) == []
    assert state == {}


def test_no_repeat_when_repeat_hours_is_off():
    state = {}
    run(LOW, state, NOW, repeat=None)
    assert run(LOW, state, NOW + 1000 * HOUR, repeat=None) == []


def test_a_type_not_read_in_this_run_is_neither_repeated_nor_resolved():
    state = {}
    run(LOW, state, NOW)
    # A run in which professional was not in the overview (scope excludes it).
    assert (
        transitions([], state, NOW + HOUR, timedelta(hours=1), site="prod", scope=["analyzer"])
        == []
    )
    assert "professional:available_below" in state


def test_state_survives_a_restart(tmp_path):
    store = AlertStateStore(tmp_path)
    state = {}
    run(LOW, state, NOW)
    store.save({"prod": state})
    reloaded = AlertStateStore(tmp_path).load()["prod"]
    # The restarted agent does not fire again, and repeats on the original schedule.
    assert run(LOW, reloaded, NOW + 6 * HOUR) == []
    assert [a.state for a in run(LOW, reloaded, NOW + 24 * HOUR)] == [REPEAT]


def test_an_unreadable_state_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "alerts-state.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(AlertStateError, match="alerts-state.json"):
        AlertStateStore(tmp_path).load()


def test_each_threshold_kind():
    fields = {"total": 200.0, "available": 6.0, "excess": 3.0}
    conditions = access_conditions(
        "analyzer",
        fields,
        Thresholds(available_below=5, available_below_percent=5, excess=True),
    )
    # 6 is not below 5; 3 % is below 5 %; 3 in excess.
    assert [c.key for c in conditions] == ["analyzer:available_below_percent", "analyzer:excess"]


def test_forecast_condition_names_type_and_date():
    samples = [(NOW - timedelta(days=29 - d), 100.0 - 2 * d) for d in range(30)]
    forecast = forecast_exhaustion("professional", samples)
    conditions = access_conditions(
        "professional", {"available": 42.0, "total": 100.0}, Thresholds(forecast_days=30), forecast
    )
    assert [c.key for c in conditions] == ["professional:forecast"]
    assert forecast.date.strftime("%Y-%m-%d") in conditions[0].title
    # 21 days left is not less than a 14-day threshold.
    assert (
        access_conditions(
            "professional", {"available": 42.0}, Thresholds(forecast_days=14), forecast
        )
        == []
    )


def test_alert_point_round_trip():
    alert = run(LOW, {}, NOW)[0]
    assert Alert.from_point(alert.to_point()) == alert
