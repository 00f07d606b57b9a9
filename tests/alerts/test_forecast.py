"""The forecast of when ``available`` reaches 0, on synthetic histories with known answers."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from agent.alerts import MIN_SAMPLES, forecast_exhaustion
from agent.models import UTC

START = datetime(2026, 10, 1, tzinfo=UTC)


def daily(values, start=START, step=timedelta(days=1)):
    return [(start + i * step, v) for i, v in enumerate(values)]


def test_a_straight_fall_is_extrapolated_exactly():
    # 100 available, 2 fewer every day for 30 days: 42 left, 21 days to go.
    samples = daily([100 - 2 * day for day in range(30)])
    forecast = forecast_exhaustion("professional", samples)
    assert forecast is not None
    assert forecast.slope_per_day == pytest.approx(-2.0)
    assert forecast.slope_error == pytest.approx(0.0, abs=1e-9)
    assert forecast.available == 42
    assert forecast.days_left == pytest.approx(21.0)
    assert forecast.date == START + timedelta(days=29 + 21)
    # No noise: the uncertainty range collapses onto the date.
    assert forecast.earliest == forecast.date == forecast.latest


def test_six_hourly_samples_give_the_same_rate_per_day():
    samples = daily([500 - 0.25 * i for i in range(4 * 20)], step=timedelta(hours=6))
    forecast = forecast_exhaustion("analyzer", samples)
    assert forecast is not None
    assert forecast.slope_per_day == pytest.approx(-1.0)


def test_only_the_history_window_counts():
    # Flat for 60 days, then falling 5 a day for 10 days: a 10-day window sees only the fall.
    flat = daily([300] * 60)
    falling = daily([300 - 5 * d for d in range(1, 11)], start=START + timedelta(days=60))
    samples = flat + falling
    recent = forecast_exhaustion("professional", samples, history_days=10)
    assert recent is not None and recent.slope_per_day == pytest.approx(-5.0)
    # Over 70 days the line is much flatter, and the exhaustion date far later.
    long = forecast_exhaustion("professional", samples, history_days=70)
    assert long is not None and long.date > recent.date


def test_noise_widens_the_range_around_the_date():
    rng = random.Random(7)
    samples = daily([200 - 3 * d + rng.uniform(-6, 6) for d in range(30)])
    forecast = forecast_exhaustion("professional", samples)
    assert forecast is not None
    assert forecast.slope_per_day == pytest.approx(-3.0, abs=0.3)
    assert forecast.slope_error > 0
    assert forecast.earliest < forecast.date < forecast.latest


@pytest.mark.parametrize(
    "values",
    [
        [50] * 30,  # flat
        [50 + d for d in range(30)],  # rising
        [10 - d for d in range(11)] + [0] * 5,  # already at 0: the count thresholds say so
    ],
)
def test_no_forecast_when_nothing_runs_out(values):
    assert forecast_exhaustion("professional", daily(values)) is None


def test_too_little_history_gives_no_forecast():
    assert forecast_exhaustion("professional", daily([100, 90][: MIN_SAMPLES - 1])) is None
    # Enough samples, but within one day: no trend to speak of.
    assert (
        forecast_exhaustion("professional", daily([100, 90, 80], step=timedelta(hours=1))) is None
    )
    assert forecast_exhaustion("professional", []) is None


def test_order_of_samples_does_not_matter():
    samples = daily([100 - 2 * d for d in range(30)])
    shuffled = list(reversed(samples))
    assert forecast_exhaustion("x", shuffled) == forecast_exhaustion("x", samples)


def test_a_turning_trend_ends_the_forecast():
    fall = [100 - 3 * d for d in range(10)]
    turned = fall + [fall[-1] + 4 * d for d in range(1, 11)]
    assert forecast_exhaustion("professional", daily(fall), history_days=9) is not None
    assert forecast_exhaustion("professional", daily(turned), history_days=9) is None
