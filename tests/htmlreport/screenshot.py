"""Make ``docs/screenshots/report.png``, the README's picture of the HTML report.

Run from the checkout: ``python -m tests.htmlreport.screenshot [OUT.png]``. The history is the
one the Chromium tests use (60 days of a site whose releases start half-way), the decision
report that of a releasing run.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from agent.htmlreport import build_report

from .builders import END, decision_document, write_history
from .conftest import CHROMIUM_NAMES, Chromium

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "report.png"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    binary = next(filter(None, (shutil.which(name) for name in CHROMIUM_NAMES)), None)
    if binary is None:
        print("headless Chromium is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "license-agent.sqlite"
        write_history(db, days=60)
        decisions = folder / "release-report.json"
        decisions.write_text(
            json.dumps(
                decision_document(site="sense.example.com", dry_run=False, done_counts=(4, 2))
            ),
            encoding="utf-8",
        )
        page = folder / "report.html"
        build_report(db, page, decisions, generated=END)
        png = Chromium(binary, folder / "profile").screenshot(
            page, folder / "shot.png", (1280, 1540)
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, out)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
