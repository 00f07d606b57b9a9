"""The report as a browser draws it: headless Chromium lays it out and takes a screenshot."""

from __future__ import annotations

import pytest

from agent.htmlreport import TYPE_COLORS, USAGE_SERIES, build_report

from .builders import END, write_history
from .png import read_png

pytestmark = pytest.mark.chromium

BACKGROUND = (243, 244, 246)  # the page's #f3f4f6


def _hex(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _near(rgb: tuple[int, int, int], tolerance: int = 40):
    return lambda r, g, b: abs(r - rgb[0]) + abs(g - rgb[1]) + abs(b - rgb[2]) <= tolerance


def test_history_charts_are_drawn(tmp_path, history_db, decisions_file, measure, chromium):
    page = tmp_path / "report.html"
    build_report(history_db, page, decisions_file, generated=END)

    drawn = measure(page)
    usage = [c for c in drawn["charts"] if "usage" in c["cls"]]
    releases = [c for c in drawn["charts"] if "releases" in c["cls"]]
    hbars = [c for c in drawn["charts"] if "hbar" in c["cls"]]
    assert len(usage) == 2 and len(releases) == 1 and len(hbars) == 2
    for chart in usage:
        # Laid out at a readable size, one line per field, each spanning the whole time axis.
        assert chart["width"] > 400 and chart["height"] > 180
        assert {line["cls"] for line in chart["lines"]} == {
            f"series series-{name}" for name, *_ in USAGE_SERIES
        }
        for line in chart["lines"]:
            assert line["width"] > 400, line
            assert line["length"] >= line["width"] - 1
        allocated = next(x for x in chart["lines"] if x["cls"].endswith("allocated"))
        assert allocated["height"] > 10  # the history's ups and downs are drawn
        assert allocated["stroke"] == "rgb(37, 99, 235)"  # the legend's color
        assert chart["texts"] >= 8  # tick labels on both axes
    # One bar segment per day and type with releases; each visibly tall.
    bars = releases[0]["bars"]
    assert len(bars) >= 40
    assert all(b["width"] >= 5 for b in bars)
    assert max(b["height"] for b in bars) > 50
    assert all(len(c["bars"]) >= 4 for c in hbars)

    png = chromium.screenshot(page, tmp_path / "report.png", (1280, 2000))
    image = read_png(png)
    assert (image.width, image.height) == (1280, 2000)
    usage_top = int(min(c["top"] for c in usage))
    usage_box = (0, usage_top, image.width, usage_top + int(usage[0]["height"]))
    blue = image.count(_near(_hex(TYPE_COLORS["professional"])), usage_box)
    green = image.count(_near(_hex("#16a34a")), usage_box)
    assert blue > 800 and green > 800, (blue, green)  # lines, not a stray pixel
    bars_top = int(releases[0]["top"])
    bars_box = (0, bars_top, image.width, bars_top + int(releases[0]["height"]))
    assert bars_box[3] < image.height
    assert image.count(_near(_hex(TYPE_COLORS["analyzer"])), bars_box) > 3000
    not_background = image.count(lambda r, g, b: (r, g, b) != BACKGROUND)
    assert not_background > image.width * image.height // 3


def test_single_snapshot_draws_markers(tmp_path, measure):
    db = tmp_path / "one.sqlite"
    write_history(db, days=0, releases=False)
    page = tmp_path / "one.html"
    build_report(db, page, generated=END)

    drawn = measure(page)
    usage = [c for c in drawn["charts"] if "usage" in c["cls"]]
    assert len(usage) == 2
    for chart in usage:
        assert chart["lines"] == []  # nothing to join
        assert chart["markers"] == len(USAGE_SERIES)
        assert chart["texts"] >= 8 + len(USAGE_SERIES)  # ticks and a label per value
    assert not [c for c in drawn["charts"] if "releases" in c["cls"]]


def test_empty_history_page_renders(tmp_path, measure):
    from plugins.destinations.sqlite import SqliteDestination

    db = tmp_path / "empty.sqlite"
    destination = SqliteDestination(db, frozenset({"license_monitor"}))
    destination.write([])
    destination.close()
    page = tmp_path / "empty.html"
    build_report(db, page, generated=END)

    drawn = measure(page)
    assert drawn["charts"] == []
    assert drawn["page"] > 200  # the empty states are shown, not a blank page
