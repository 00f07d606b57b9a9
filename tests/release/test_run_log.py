"""The run log (``license-agent release runs``): in a state folder written by the agent before
release runs were logged at start (the table is unchanged, so the old rows are listed as they
were and new runs are added beside them; against the simulator over mutual TLS), and a run
that died before its journal existed. Kills through the real stack are in
test_restore_kill.py."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from agent.cli import main
from agent.journal import SqliteJournal, journal_path
from agent.lock import release_lock
from agent.models import format_qrs_time
from agent.runs import LoggedRun, recent_runs, started_run

from .test_plan import Site, cli, real_now

#: The run log's table as the first version of the agent created it (agent/runs.py before run
#: rows were written at start), with a row of a finished apply.
OLD_TABLE = (
    "CREATE TABLE IF NOT EXISTS release_runs (run_id TEXT PRIMARY KEY,"
    " site TEXT NOT NULL, kind TEXT NOT NULL, started TEXT NOT NULL, finished TEXT,"
    " counts TEXT NOT NULL DEFAULT '{}', outcome TEXT NOT NULL DEFAULT '')"
)
OLD_RUN = "20261201T120000Z-0a1b2c"


def old_state_folder(site: Site) -> Path:
    """The site's journal file with the release journal (schema 2) and an old run log."""
    path = journal_path(site.tmp_path, "127.0.0.1")
    SqliteJournal(path).close()
    started = real_now() - timedelta(days=1)
    db = sqlite3.connect(str(path))
    try:
        db.execute(OLD_TABLE)
        db.execute(
            "INSERT INTO release_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                OLD_RUN,
                "127.0.0.1",
                "apply",
                format_qrs_time(started),
                format_qrs_time(started + timedelta(minutes=2)),
                json.dumps({"released": 3}),
                "ok",
            ),
        )
        db.commit()
    finally:
        db.close()
    return path


def runs(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert main(["release", "runs", "--json", "-c", str(config)]) == 0
    return {r["id"]: r for r in json.loads(capsys.readouterr().out)}


def test_a_run_log_of_the_previous_version_keeps_working(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    old_state_folder(site)
    config = site.config()
    listed = runs(config, capsys)
    assert listed[OLD_RUN] == {**listed[OLD_RUN], "status": "finished", "outcome": "ok"}
    assert listed[OLD_RUN]["counts"] == {"released": 3}

    plan = site.tmp_path / "plan.json"
    assert cli("--dry-run", "--report", str(plan), "-c", str(config)) == 0
    assert cli("--apply", str(plan), "-c", str(config)) == 0
    listed = runs(config, capsys)
    assert len(listed) == 3 and listed[OLD_RUN]["counts"] == {"released": 3}
    new = [r for run_id, r in listed.items() if run_id != OLD_RUN]
    assert sorted(str(r["kind"]) for r in new) == ["apply", "dry_run"]
    assert all(r["status"] == "finished" and r["outcome"] == "ok" for r in new)
    assert main(["release", "runs", "-c", str(config)]) == 0
    table = capsys.readouterr().out
    assert OLD_RUN in table and "released 3" in table


def test_a_run_killed_before_it_sent_a_delete_is_interrupted_with_nothing_sent(
    tmp_path: Path,
) -> None:
    """A run dies after writing its row, before its journal file had a release journal (the
    journal is opened after the row is written): listed as interrupted before any DELETE,
    running only while a process holds the site's release lock."""
    run = started_run("20261205T000000Z-abcdef", "sense", "release", real_now())
    LoggedRun(tmp_path, run).start()
    with release_lock(tmp_path, "sense"):
        (shown,) = recent_runs(tmp_path, "sense")
        assert shown.status == "running" and shown.outcome == "running"
    (shown,) = recent_runs(tmp_path, "sense")
    assert shown.status == "interrupted" and shown.counts == {}
    assert shown.outcome == "interrupted before it sent any DELETE"
    assert shown.to_dict()["status"] == "interrupted" and shown.to_dict()["finished"] is None
