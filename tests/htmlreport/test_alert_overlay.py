"""The report's alert overlay: thresholds and the forecast on the usage chart, active alerts;
in the page's SVG and as Chromium draws it."""

from __future__ import annotations

import re
from datetime import timedelta

from agent.alerts import AlertView, Thresholds
from agent.htmlreport import build_report, load_history, render_html, series_forecast

from .builders import END, write_history
from .png import read_png

VIEW = AlertView(
    thresholds={"professional": Thresholds(available_below=100, forecast_days=30)},
    history_days=30,
    active=[
        (
            "",
            "professional",
            "professional: licenses run out about 2026-12-20",
            END - timedelta(days=2),
        )
    ],
)


def test_thresholds_forecast_and_active_alerts_are_in_the_page(tmp_path):
    db = tmp_path / "h.sqlite"
    write_history(db, days=30, releases=False)
    history = load_history(db)
    page = render_html(history, generated=END, alerts=VIEW)
    # One threshold line and one forecast line, on the professional chart only.
    assert page.count('class="threshold"') == 1
    assert page.count('class="forecast"') == 1
    professional = next(s for s in history.usage if s.license_type == "professional")
    forecast = series_forecast(professional, 30)
    assert forecast is not None and forecast.slope_per_day < 0
    assert f"runs out about {forecast.date:%Y-%m-%d}" in page
    assert "Active alerts" in page and "licenses run out about 2026-12-20" in page
    # Without a view nothing of it is drawn.
    plain = render_html(history, generated=END)
    assert 'class="forecast"' not in plain and "Active alerts" not in plain


def test_forecast_line_ends_at_zero_on_the_predicted_day(tmp_path):
    db = tmp_path / "h.sqlite"
    write_history(db, days=30, releases=False)
    page = render_html(load_history(db), generated=END, alerts=VIEW)
    line = re.search(r'<polyline class="forecast"[^>]* points="([^"]+)"', page).group(1)
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in line.split())
    zero = re.search(r'<circle class="forecast-zero" cx="([\d.]+)" cy="([\d.]+)"', page)
    assert x1 > x0 and y1 > y0  # forward in time, downwards on the chart
    assert (x1, y1) == (float(zero.group(1)), float(zero.group(2)))


def test_chromium_draws_the_forecast_in_red(tmp_path, measure, chromium):
    db = tmp_path / "h.sqlite"
    write_history(db, days=30, releases=False)
    page = tmp_path / "report.html"
    build_report(db, page, generated=END, alerts=VIEW)
    drawn = measure(page)
    usage = [c for c in drawn["charts"] if "usage" in c["cls"]]
    forecast = [line for c in usage for line in c["lines"] if line["cls"] == "forecast"]
    assert len(forecast) == 1 and forecast[0]["width"] > 20
    assert forecast[0]["stroke"] == "rgb(220, 38, 38)"
    png = chromium.screenshot(page, tmp_path / "shot.png", (1280, 2000))
    image = read_png(png)
    red = image.count(lambda r, g, b: r > 200 and g < 80 and b < 80)
    assert red > 150, red
