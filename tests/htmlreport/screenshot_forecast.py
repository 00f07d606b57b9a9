"""Make ``docs/screenshots/report-forecast.png``, docs/alerts.md's picture of the alert overlay.

Run from the checkout: ``python -m tests.htmlreport.screenshot_forecast [OUT.png]``: 30 days of
a site running out of Professional licenses (the Chromium tests' history without releases),
with the alert thresholds, the forecast and an active alert drawn.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from agent.alerts import AlertView, Thresholds
from agent.htmlreport import build_report

from .builders import END, write_history
from .conftest import CHROMIUM_NAMES, Chromium

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "report-forecast.png"

VIEW = AlertView(
    thresholds={
        "professional": Thresholds(available_below=100, forecast_days=30),
        "analyzer": Thresholds(available_below_percent=5, forecast_days=30),
    },
    active=[("", "professional", "professional: 58 licenses available", END - timedelta(days=4))],
)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    binary = next(filter(None, (shutil.which(name) for name in CHROMIUM_NAMES)), None)
    if binary is None:
        print("headless Chromium is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "license-agent.sqlite"
        write_history(db, days=30, releases=False)
        page = folder / "report.html"
        build_report(db, page, generated=END, alerts=VIEW)
        png = Chromium(binary, folder / "profile").screenshot(
            page, folder / "shot.png", (1280, 760)
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, out)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
