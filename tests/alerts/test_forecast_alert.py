"""The forecast alert end to end below the CLI: a history written by the real SQLite
destination, availability falling steadily; the alert fires once naming the type and the
predicted date, repeats per repeatHours, and resolves when the trend turns."""

from __future__ import annotations

from datetime import datetime, timedelta

from agent.alerts import FIRING, REPEAT, RESOLVED, Alert, AlertStateStore
from agent.models import FEATURE_LICENSE_MONITOR, MEASUREMENT_LICENSE, UTC, Point
from plugins.alerts.early_warning import LicenseAlert, evaluate
from plugins.destinations.sqlite import SqliteDestination

START = datetime(2026, 10, 1, 6, tzinfo=UTC)
DAY = timedelta(days=1)


def point(when: datetime, available: float, total: float = 500) -> Point:
    return Point(
        measurement=MEASUREMENT_LICENSE,
        tags={"license_type": "professional"},
        fields={"total": total, "allocated": total - available, "available": available},
        time=when,
        feature=FEATURE_LICENSE_MONITOR,
    )


SETTINGS = LicenseAlert.model_validate(
    {
        "enable": True,
        "repeatHours": 48,
        "historyDays": 30,
        "licenseType": {"professional": {"forecastDays": 30}},
    }
)


def monitor_run(db: SqliteDestination, state_dir, when: datetime, available: float) -> list[Alert]:
    """What one monitor run does: the alert plugin sees the run's point and the history, the
    point is stored, and the alert state is committed after the delivery."""
    current = point(when, available)
    batch = evaluate(SETTINGS, [current], when, site="", state_dir=state_dir, history_path=db.path)
    db.write([current])
    batch.commit()
    return [Alert.from_point(p) for p in batch.points]


def test_forecast_alert_fires_once_repeats_and_resolves(tmp_path):
    db = SqliteDestination(tmp_path / "history.sqlite", frozenset({FEATURE_LICENSE_MONITOR}))
    state = tmp_path / "state"
    # 400 available, 4 fewer a day: 0 on day 100. The alert starts once fewer than 30 days
    # are left (day 70 and after), and not before.
    sent: list[Alert] = []
    day = 0
    while not sent:
        sent = monitor_run(db, state, START + day * DAY, 400 - 4 * day)
        day += 1
        assert day < 100, "the forecast alert never fired"
    assert day - 1 >= 70
    assert [a.state for a in sent] == [FIRING]
    alert = sent[0]
    assert alert.key == "professional:forecast" and alert.license_type == "professional"
    expected = (START + 100 * DAY).strftime("%Y-%m-%d")
    assert expected in alert.title and expected in alert.text
    assert alert.details["days_left"] < 30
    fired_at = alert.time
    day -= 1
    # The next runs inside repeatHours (48 h) send nothing; the one at 48 h repeats.
    later = monitor_run(db, state, fired_at + DAY, 400 - 4 * (day + 1))
    assert later == []
    again = monitor_run(db, state, fired_at + 2 * DAY, 400 - 4 * (day + 2))
    assert [a.state for a in again] == [REPEAT]
    # A restart (the state is read from the file) does not fire it again.
    assert "professional:forecast" in AlertStateStore(state).load()[""]
    # The trend turns: licenses were bought, availability rises for a week.
    resolved = []
    level = 400 - 4 * (day + 2)
    for extra in range(1, 30):
        level += 25
        resolved += monitor_run(db, state, fired_at + (2 + extra) * DAY, level)
        if resolved:
            break
    assert [a.state for a in resolved] == [RESOLVED]
    assert resolved[0].key == "professional:forecast"
    assert AlertStateStore(state).load() == {}
