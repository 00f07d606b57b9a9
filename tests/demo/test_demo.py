"""``license-agent demo``: the newcomer's first command, end to end on the real stack."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config
from agent.demo import MARKER


def _table_row(text: str, license_type: str) -> list[str]:
    """The first row of ``license_type`` in the printed output (the overview table)."""
    return next(line.split() for line in text.splitlines() if line.startswith(license_type + " "))


def _usage(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT time_ns, license_type, total, allocated, used, quarantined, available"
            " FROM license_usage WHERE license_type IN ('professional', 'analyzer')"
            " ORDER BY time_ns, license_type"
        ).fetchall()


def test_demo_runs_the_main_job_and_writes_every_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LICENSE_AGENT_CONFIG", raising=False)
    started = time.monotonic()
    assert main(["demo"]) == 0
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    demo = tmp_path / "demo"

    # What it says it wrote is there.
    for name in ("config.yaml", "license-agent.sqlite", "release-report.json", "report.html"):
        assert (demo / name).is_file(), name
        assert f"demo/{name}" in out.replace(os.sep, "/")
    assert {p.name for p in (demo / "sim-certs").iterdir()} >= {
        "root.pem",
        "client.pem",
        "client_key.pem",
    }
    # The overview it printed is what the SQLite history holds.
    rows = _usage(demo / "license-agent.sqlite")
    assert [r[1] for r in rows] == ["analyzer", "professional"]
    stored = {r[1]: [int(v) for v in r[2:]] for r in rows}
    for license_type in ("professional", "analyzer"):
        printed = [int(v) for v in _table_row(out, license_type)[1:]]
        assert printed == stored[license_type]
        assert stored[license_type][1] > 500  # a few thousand users hold many allocations
    # The dry run decided without deleting: candidates would be released, nothing happened.
    report = json.loads((demo / "release-report.json").read_text(encoding="utf-8"))
    run = report["run"]
    assert run["dry_run"] is True and run["events"] == 0 and run["aborted"] is None
    would = [d for d in report["decisions"] if d["decision"] == "would_release"]
    assert len(would) == sum(c["would_release"] for c in run["counts"].values()) > 100
    assert all(d["days_since_last_use"] >= 30 for d in would)
    assert not [d for d in would if d["user_directory"] in ("INTERNAL", "ADMIN")]
    kept = [d for d in report["decisions"] if d["decision"] == "kept"]
    assert {r["rule"] for d in kept for r in d["reasons"]} >= {"tag", "customProperty"}
    assert "WOULD RELEASE" in out and "KEPT BY" in out
    # The HTML report shows the run.
    page = (demo / "report.html").read_text(encoding="utf-8")
    assert f"it would release {len(would):,} allocation(s)" in page
    assert page.count('class="marker marker-allocated"') == 2
    # The config it wrote is valid and names the simulator's certificates relative to itself.
    config = load_config(demo / "config.yaml")
    assert config.license_release.dry_run and config.agent.destinations.sqlite.enable
    assert config.butler.cert.client_cert == (demo / "sim-certs" / "client.pem").resolve()
    assert config.license_release.max_releases_per_run is not None
    # "A few seconds" (measured: about 1.5 s here); generous for a busy CI machine.
    assert elapsed < 30, elapsed


def test_demo_again_in_the_same_folder(tmp_path, capsys):
    folder = tmp_path / "again"
    assert main(["demo", "--dir", str(folder), "--users", "300"]) == 0
    root = (folder / "sim-certs" / "root.pem").read_bytes()
    first = _usage(folder / "license-agent.sqlite")
    assert main(["demo", "--dir", str(folder), "--users", "300"]) == 0
    capsys.readouterr()
    assert (folder / "sim-certs" / "root.pem").read_bytes() == root  # certificates reused
    both = _usage(folder / "license-agent.sqlite")
    assert len(both) == 2 * len(first) == 4  # the history grew by one run
    # Nothing was deleted by the first (dry) run: the counts are the same.
    assert [r[1:] for r in both[:2]] == [r[1:] for r in both[2:]]
    assert "2 monitor runs" in (folder / "report.html").read_text(encoding="utf-8")


def test_demo_never_overwrites_a_config_it_did_not_write(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    mine = "Butler:\n  configQRS:\n    host: sense.example.com\n"
    (folder / "config.yaml").write_text(mine, encoding="utf-8")
    assert main(["demo", "--dir", str(folder), "--users", "50"]) == 2
    assert "was not written by the demo" in capsys.readouterr().err
    assert (folder / "config.yaml").read_text(encoding="utf-8") == mine
    assert not (folder / "license-agent.sqlite").exists()


def test_demo_config_marker_is_its_first_line(tmp_path):
    assert main(["demo", "--dir", str(tmp_path), "--users", "50"]) == 0
    text = (tmp_path / "config.yaml").read_text(encoding="utf-8")
    assert text.startswith(MARKER)


@pytest.mark.skipif(os.name == "nt", reason="sends SIGINT to a child process (POSIX)")
def test_keep_running_runs_the_schedule_until_ctrl_c(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LICENSE_AGENT_CONFIG", None)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "demo",
            "--dir",
            str(tmp_path),
            "--users",
            "200",
            "--keep-running",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if "Press Ctrl+C" in line:
                break
        else:
            pytest.fail(f"the demo ended early: {child.stderr.read() if child.stderr else ''}")
        first_report = (tmp_path / "report.html").stat().st_mtime_ns
        deadline = time.monotonic() + 20
        stderr_seen = ""
        # Wait until the run loop is up (it logs its jobs), then press Ctrl+C.
        assert child.stderr is not None
        while "monitor: every 1 minutes" not in stderr_seen and time.monotonic() < deadline:
            stderr_seen += child.stderr.readline()
        assert "monitor: every 1 minutes" in stderr_seen
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert "run loop stopped" in err
    assert "report written to" in out  # the report is made again after the schedule ends
    assert (tmp_path / "report.html").stat().st_mtime_ns >= first_report
