"""``release restore`` runs as a job of :mod:`agent.jobs` (issue 12 item 4): the site's release
lock, the QRS client, the release journal's recovery, the restore, the delivery and the job's
result, with the CLI only parsing and printing. Against the simulator over mutual TLS."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.heartbeat import HEARTBEAT_FILE
from agent.jobs import JOB_RESTORE, run_restore_job
from agent.journal import JournalError, journal_path
from agent.lock import release_lock, site_identity
from agent.plugins import build_plugin_host, load_config
from agent.restore import RestoreJournal, Selection
from agent.runs import RunLog, RunRecord
from tests.cli.test_run_jobs import RECORDER

from .test_plan import Site
from .test_restore import applied_run, holdings, posts, restore

SITE = "127.0.0.1"


@pytest.fixture
def recording(site: Site, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The site's config with a drop-in plugin that writes every ``sla_job_result`` call to a
    JSON-lines file: (config, that file)."""
    folder = site.tmp_path / "plugins"
    folder.mkdir()
    (folder / "job_recorder.py").write_text(RECORDER, encoding="utf-8")
    results = site.tmp_path / "job-results.jsonl"
    monkeypatch.setenv("JOB_RESULTS", str(results))
    config = site.config()
    paths = f"  licenseAgent:\n    plugins:\n      paths: [{json.dumps(str(folder))}]\n"
    text = config.read_text(encoding="utf-8").replace("  licenseAgent:\n", paths, 1)
    config.write_text(text, encoding="utf-8")
    return config, results


def recorded(path: Path, job: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in lines if r["job"] == job]


def test_a_restore_reports_its_job_result_and_writes_no_heartbeat(
    site: Site, recording: tuple[Path, Path]
) -> None:
    config, results_file = recording
    run_id, released = applied_run(site, config)
    assert restore("--run", run_id, "--dry-run", "-c", str(config)) == 0
    assert restore("--run", run_id, "-c", str(config)) == 0
    dry, live = recorded(results_file, JOB_RESTORE)
    assert dry == {**dry, "ok": True, "error": None, "qrs_errors": 0}
    assert live == {**live, "ok": True, "error": None, "qrs_errors": 0}
    assert live["destinations"] == ["jsonl", "sqlite"]
    assert dry["destinations"] == []  # a dry restore opens no delivery: it sends nothing
    assert len(site.events("qlik_sense_license_restore")) == len(released)
    # A one-off command, not a job of `license-agent run`: the heartbeat is not touched.
    assert not (site.tmp_path / HEARTBEAT_FILE).exists()


def test_a_restore_that_qrs_refuses_is_a_failed_job(
    site: Site, recording: tuple[Path, Path]
) -> None:
    config, results_file = recording
    run_id, released = applied_run(site, config)
    site.sim.add_fault("POST /qrs/license/*", "error", status=400)
    assert restore("--run", run_id, "-c", str(config)) == 1
    (result,) = recorded(results_file, JOB_RESTORE)
    assert result["ok"] is False
    assert f"{len(released)} refused" in result["error"]


def test_a_restore_on_a_locked_site_sends_nothing(
    site: Site, recording: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Another agent holds the site's release lock: no POST, exit 1, the lock named."""
    config, results_file = recording
    run_id, _ = applied_run(site, config)
    held = holdings(site)
    capsys.readouterr()
    with release_lock(site.tmp_path, SITE, site_identity(SITE, site.sim.port)):
        assert restore("--run", run_id, "-c", str(config)) == 1
    err = capsys.readouterr().err
    assert "another license agent is releasing licenses on site" in err
    assert "Traceback" not in err
    assert posts(site) == 0 and holdings(site) == held
    (result,) = recorded(results_file, JOB_RESTORE)
    assert result["ok"] is False and "another license agent" in result["error"]
    # Once the lock is free the same restore gives everything back.
    assert restore("--run", run_id, "-c", str(config)) == 0
    assert posts(site) == len(site.candidates)


def test_the_restore_job_returns_results_per_site_and_never_raises(site: Site) -> None:
    config_path = site.config()
    run_id, released = applied_run(site, config_path)
    config = load_config(config_path)
    host = build_plugin_host(config)
    try:
        unknown = run_restore_job(config, host, Selection("20990101T000000Z-000000"))
        assert unknown.results == [] and not unknown.ok
        assert "no run 20990101T000000Z-000000" in unknown.nothing_selected[SITE]

        def broken(_site: Any) -> Any:
            raise RuntimeError("no client today")

        failed = run_restore_job(config, host, Selection(run_id), qrs_factory=broken)
        assert failed.results == [] and not failed.ok
        assert "no client today" in failed.failures[SITE]

        job = run_restore_job(config, host, Selection(run_id))
    finally:
        host.shutdown(config)
    assert job.job == JOB_RESTORE and job.ok and len(job) == 1
    assert job[0].counts()["restored"] == len(released)


# --------------------------------------------------------------------------- a full disk


def limit_pages(db: sqlite3.Connection) -> None:
    """SQLite refuses to grow the file past its current size: SQLITE_FULL at the next page
    (as in tests/reliability/test_state_dir.py), on any platform and account."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_restore_journal_that_fills_up_sends_no_post_it_cannot_record(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13 item 6: the disk fills up during a restore. Every POST sent has its journal
    row; the others are not sent; the cause is said once, naming the file; exit 1, no
    traceback. The next restore gives the rest back, each allocation exactly once."""
    config = site.config()
    held_before = holdings(site)
    run_id, released = applied_run(site, config)
    opened = RestoreJournal.for_site

    def full(state_dir: Path, name: str) -> RestoreJournal:
        journal = opened(state_dir, name)
        limit_pages(journal._db)
        return journal

    monkeypatch.setattr(RestoreJournal, "for_site", staticmethod(full))
    capsys.readouterr()
    assert restore("--run", run_id, "-c", str(config)) == 1
    out, err = capsys.readouterr()
    path = journal_path(site.tmp_path, SITE)
    cause = f"cannot write the restore journal {path}: the disk is full"
    assert out.count(f"! {cause}") == 1, out
    assert "no POST is sent for an allocation it cannot record" in out
    assert "Traceback" not in out + err and "no transaction is active" not in out + err
    monkeypatch.undo()
    with RestoreJournal.for_site(site.tmp_path, SITE) as journal:
        recorded_posts = len(journal.records())
    assert 0 < posts(site) == recorded_posts < len(released)  # no POST without its row

    assert restore("--run", run_id, "-c", str(config)) == 0
    assert holdings(site) == held_before
    events = site.events("qlik_sense_license_restore")
    assert Counter(e["fields"]["released_allocation_id"] for e in events) == Counter(released)


@pytest.mark.parametrize("command", [("restore", "--run", "{run}"), ("--once", "--dry-run")])
def test_a_run_log_that_fills_up_is_one_warning_and_the_run_stands(
    command: tuple[str, ...],
    site: Site,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The run log cannot take the run's row: the run's own exit code stands (its journal rows
    carry its id, so a restore still finds it), and one warning names the file and the
    cause."""
    config = site.config()
    run_id, released = applied_run(site, config)
    opened = RunLog.for_site

    def full(state_dir: Path, name: str) -> RunLog:
        log = opened(state_dir, name)
        limit_pages(log._db)
        with contextlib.suppress(JournalError):  # fill the last page with small rows
            for n in range(5000):
                log.record(RunRecord(f"f{n}", name, "x", log._clock(), None, {}, ""))
        return log

    monkeypatch.setattr(RunLog, "for_site", staticmethod(full))
    capsys.readouterr()
    args = [part.format(run=run_id) for part in command]
    assert main(["release", *args, "-c", str(config)]) == 0
    out, err = capsys.readouterr()
    path = journal_path(site.tmp_path, SITE)
    warning = f"is missing from `release runs`: cannot write the run log {path}: the disk is full"
    assert err.count(warning) == 1, err
    assert "Traceback" not in out + err and "no transaction is active" not in err
    if command[0] == "restore":
        assert posts(site) == len(released)
