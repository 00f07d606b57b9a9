"""``license-agent demo``: the newcomer's first command, end to end on the real stack."""

from __future__ import annotations

import contextlib
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
from agent.demo import MARKER
from agent.plugins import load_config


def _table_row(text: str, license_type: str) -> list[str]:
    """The first row of ``license_type`` in the printed output (the overview table)."""
    return next(line.split() for line in text.splitlines() if line.startswith(license_type + " "))


def _usage(db: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as conn:  # closed: it must leave no -wal file
        return conn.execute(
            "SELECT time_ns, license_type, total, allocated, used, quarantined, available"
            " FROM license_usage WHERE license_type IN ('professional', 'analyzer')"
            " ORDER BY time_ns, license_type"
        ).fetchall()


def _listed(out: str) -> dict[str, str]:
    """The files of the demo's closing list: {name in the folder: what it is}."""
    block = out.split("Files:\n", 1)[1].split("\n\n", 1)[0]
    return {
        Path(line.split()[0]).name: line.split(None, 1)[1] for line in block.splitlines() if line
    }


def test_demo_builds_a_history_runs_the_main_job_and_lists_every_file(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LICENSE_AGENT_CONFIG", raising=False)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    demo = tmp_path / "demo"

    # The closing list names exactly what is in the folder: no outbox, lock or -wal/-shm
    # file lies around unlisted (the agent's own files are in state/, which is listed).
    listed = _listed(out)
    assert set(listed) == {p.name for p in demo.iterdir()}, out
    assert {p.name for p in (demo / "state").iterdir()} <= {
        "outbox.sqlite",
        "release-127.0.0.1.lock",
        "release-127.0.0.1.running.lock",
        "release-127.0.0.1.journal.sqlite",
    }
    assert {p.name for p in (demo / "sim-certs").iterdir()} >= {
        "root.pem",
        "client.pem",
        "client_key.pem",
    }

    # 60 days of history: a monitor run every 6 hours, a release run every day.
    rows = _usage(demo / "license-agent.sqlite")
    times = sorted({r[0] for r in rows})
    assert len(times) == 60 * 4 + 1  # and today's run
    span = (times[-1] - times[0]) / 86_400e9
    assert 60 <= span < 61
    allocated = {r[3] for r in rows if r[1] == "professional"}
    assert len(allocated) > 20  # the site changes: lines, not a flat row of dots
    with contextlib.closing(sqlite3.connect(demo / "license-agent.sqlite")) as conn:
        days = conn.execute(
            "SELECT COUNT(DISTINCT substr(time, 1, 10)), COUNT(*) FROM release_event"
        ).fetchone()
    assert days[0] >= 40 and days[1] > 100  # releases on most days
    assert "240 monitor runs and 60 release runs" in out

    # The overview printed today is the latest snapshot of the history.
    latest = {r[1]: [int(v) for v in r[2:]] for r in rows if r[0] == times[-1]}
    for license_type in ("professional", "analyzer"):
        printed = [int(v) for v in _table_row(out, license_type)[1:]]
        assert printed == latest[license_type]
    # Today's dry run decided without deleting: only what is past 30 days and unprotected.
    report = json.loads((demo / "release-report.json").read_text(encoding="utf-8"))
    run = report["run"]
    assert run["dry_run"] is True and run["events"] == 0 and run["aborted"] is None
    would = [d for d in report["decisions"] if d["decision"] == "would_release"]
    assert len(would) == sum(c["would_release"] for c in run["counts"].values())
    assert all(d["days_since_last_use"] >= 30 for d in would)
    assert not [d for d in would if d["user_directory"] in ("INTERNAL", "ADMIN")]
    kept = [d for d in report["decisions"] if d["decision"] == "kept"]
    assert {r["rule"] for d in kept for r in d["reasons"]} >= {"tag", "customProperty"}
    assert "WOULD RELEASE" in out and "KEPT BY" in out
    # The HTML report draws lines and release bars, and today's decisions.
    page = (demo / "report.html").read_text(encoding="utf-8")
    assert page.count('class="series series-allocated"') == 2
    assert 'class="marker marker-allocated"' not in page  # 241 points: lines, not dots
    assert page.count('<rect class="bar"') >= 40
    assert "Released per day and license type" in page
    assert "Would release (dry run)" in page or not would
    # The config it wrote is valid and names the simulator's certificates relative to itself.
    config = load_config(demo / "config.yaml")
    assert config.license_release.dry_run and config.agent.destinations.sqlite.enable
    assert config.butler.cert.client_cert == (demo / "sim-certs" / "client.pem").resolve()
    assert config.license_release.max_releases_per_run is not None
    assert config.state_dir == (demo / "state").resolve()


def test_demo_again_in_the_same_folder_replaces_the_history(tmp_path, capsys):
    folder = tmp_path / "again"
    argv = ["demo", "--dir", str(folder), "--users", "300"]
    assert main(argv) == 0
    root = (folder / "sim-certs" / "root.pem").read_bytes()
    first = _usage(folder / "license-agent.sqlite")
    # What an earlier demo version left in the folder itself goes too.
    (folder / "outbox.sqlite").write_bytes(b"")
    (folder / "release-127.0.0.1.lock").write_bytes(b"")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (folder / "sim-certs" / "root.pem").read_bytes() == root  # certificates reused
    again = _usage(folder / "license-agent.sqlite")
    assert len(again) == len(first)  # replaced, not grown
    assert not (folder / "outbox.sqlite").exists()
    assert not (folder / "release-127.0.0.1.lock").exists()
    assert "241 monitor runs" in (folder / "report.html").read_text(encoding="utf-8")
    assert set(_listed(out.rsplit("license-agent demo:", 1)[1])) == {
        p.name for p in folder.iterdir()
    }


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
