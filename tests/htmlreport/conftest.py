"""Fixtures for the HTML report tests: histories in SQLite, and headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from .builders import decision_document, write_history

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
#: Flags that keep a headless Chromium off the network and away from the user's profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


@pytest.fixture
def history_db(tmp_path: Path) -> Path:
    path = tmp_path / "license-agent.sqlite"
    write_history(path)
    return path


@pytest.fixture
def decisions_file(tmp_path: Path) -> Path:
    path = tmp_path / "release-report.json"
    path.write_text(json.dumps(decision_document()), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Chromium:
    binary: str
    profile: Path

    def run(self, url: str, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def dump_dom(self, page: Path, size: tuple[int, int] = (1280, 2000)) -> str:
        # The same window as the screenshots, so the measured layout is the one photographed.
        done = self.run(page.resolve().as_uri(), "--dump-dom", f"--window-size={size[0]},{size[1]}")
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def screenshot(self, page: Path, png: Path, size: tuple[int, int] = (1280, 2000)) -> Path:
        done = self.run(
            page.resolve().as_uri(), f"--screenshot={png}", f"--window-size={size[0]},{size[1]}"
        )
        assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]
        return png


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    binary = next(filter(None, (shutil.which(name) for name in CHROMIUM_NAMES)), None)
    if binary is None:
        message = "headless Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))


#: A script the tests append to a copy of the page: it measures what the browser laid out
#: and leaves the numbers in the DOM, where --dump-dom shows them. The report itself has none.
MEASURE_SCRIPT = """
<script>
const out = {charts: [], page: document.body.getBoundingClientRect().height};
for (const svg of document.querySelectorAll("svg.chart")) {
  const box = svg.getBoundingClientRect();
  const lines = [...svg.querySelectorAll("polyline")].map(p => {
    const b = p.getBBox();
    return {cls: p.getAttribute("class"), width: b.width, height: b.height,
            length: p.getTotalLength(), stroke: getComputedStyle(p).stroke};
  });
  const bars = [...svg.querySelectorAll("rect.bar")].map(r => {
    const b = r.getBoundingClientRect();
    return {width: b.width, height: b.height, fill: getComputedStyle(r).fill};
  });
  const markers = svg.querySelectorAll("circle.marker").length;
  const texts = [...svg.querySelectorAll("text")].map(t => t.getBBox().width).filter(w => w > 0);
  out.charts.push({cls: svg.getAttribute("class"), top: box.top + window.scrollY,
                   width: box.width, height: box.height, lines, bars, markers,
                   texts: texts.length});
}
const pre = document.createElement("pre");
pre.id = "measure";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>
"""


@pytest.fixture
def measure(chromium: Chromium, tmp_path: Path) -> Callable[[Path], dict]:
    """Render a report in Chromium and return what the browser drew (see MEASURE_SCRIPT)."""

    def run(page: Path) -> dict:
        probe = tmp_path / f"probe-{page.stem}.html"
        probe.write_text(
            page.read_text(encoding="utf-8").replace("</body>", MEASURE_SCRIPT + "</body>"),
            encoding="utf-8",
        )
        dom = chromium.dump_dom(probe)
        start = dom.index('<pre id="measure">') + len('<pre id="measure">')
        return json.loads(dom[start : dom.index("</pre>", start)].replace("&amp;", "&"))

    return run
