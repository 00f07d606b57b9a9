"""Make ``docs/screenshots/report.png``, the README's picture of the HTML report.

Run from the checkout: ``python -m tests.htmlreport.screenshot [OUT.png]``. It runs
``license-agent demo`` in a temporary folder (its 60 simulated days of history and today's dry
run) and photographs the ``report.html`` the demo wrote, so the picture is what a newcomer's
demo produces.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from pathlib import Path

from agent.cli import main as license_agent
from agent.demo import run_demo

from .conftest import CHROMIUM_NAMES, Chromium

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "report.png"
#: The window photographed: wide enough for two charts side by side, tall enough for the page.
SIZE = (1280, 1560)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    binary = next(filter(None, (shutil.which(name) for name in CHROMIUM_NAMES)), None)
    if binary is None:
        print("headless Chromium is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        printed = io.StringIO()
        if run_demo(folder / "demo", out=printed, run_command=license_agent) != 0:
            print(printed.getvalue(), file=sys.stderr)
            return 1
        png = Chromium(binary, folder / "profile").screenshot(
            folder / "demo" / "report.html", folder / "shot.png", SIZE
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, out)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
