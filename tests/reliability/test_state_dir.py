"""An unusable state folder: one clear message naming the folder and the cause, never a traceback.

``stateDir`` holds the outbox, the release journals and the locks. A regular file on its path, a
read-only file system or a full disk at start is a configuration problem (exit 2); a disk that
fills up while the agent writes is reported as "the disk is full", not as SQLite's
"cannot rollback - no transaction is active"; and no DELETE is ever sent without its journal
entry.

Read-only and full file systems are real ones: a small ``tmpfs`` mounted for the test (root on
Linux), or a folder without write permission (another account). Where neither is possible the
test is skipped; the SQLite-level tests below run everywhere.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.journal import JournalEntry, JournalError, SqliteJournal
from agent.models import Point
from agent.outbox import Outbox, OutboxError
from agent.plugins import build_plugin_host
from agent.qrs import QrsClient
from agent.release import run_release
from agent.restore import RestoreJournal
from agent.runs import RunLog, RunRecord, record_run
from agent.statedir import StateDirError, prepare_state_dir

from .helpers import (
    NOW,
    build_site,
    captured_logs,
    config_document,
    deletes,
    journal_entry,
    load,
    loud,
    present,
    real_now,
    release_section,
    run_agent,
    write_config,
)

POSIX_ROOT = os.name != "nt" and hasattr(os, "geteuid") and os.geteuid() == 0


def _mount_tmpfs(target: Path, options: str) -> bool:
    if not POSIX_ROOT or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
    )
    return done.returncode == 0


def _unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _fill(folder: Path) -> None:
    """Write a file until the file system has no space left."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    folder.mkdir()
    if _mount_tmpfs(folder, "ro,size=64k"):
        yield folder
        _unmount(folder)
    elif os.name != "nt" and not POSIX_ROOT:
        folder.chmod(0o555)  # root ignores this, so it is only the fallback for other accounts
        yield folder
        folder.chmod(0o755)
    else:
        pytest.skip("cannot make a read-only folder here")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB file system of its own (filled by the test with :func:`_fill`)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if not _mount_tmpfs(folder, "size=1m"):
        pytest.skip("mounting a small tmpfs needs root on Linux")
    yield folder
    _unmount(folder)


def _release_cli(sim_port: int, certs, workdir: Path, state_dir: Path, *args: str):
    config = write_config(workdir / "config.yaml", config_document(sim_port, certs, state_dir))
    return run_agent(*args, "-c", str(config), cwd=workdir)


def _assert_clear(done, folder: Path, cause: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert f"Butler.licenseAgent.stateDir: the folder {folder} cannot be used: " in done.stderr
    assert cause in done.stderr


@pytest.mark.parametrize(
    "command",
    [("release", "--once"), ("release", "--once", "--dry-run"), ("monitor", "--once"), ("run",)],
)
def test_a_state_dir_under_a_regular_file_is_a_config_error(
    command, simulator, certs, workdir
) -> None:
    sim = simulator()
    blocker = workdir / "not-a-folder"
    blocker.write_text("a file")
    state = blocker / "state"
    done = _release_cli(sim.port, certs, workdir, state, *command)
    _assert_clear(done, state, f"{blocker} is a regular file, not a folder")
    assert deletes(sim) == 0


def test_a_state_dir_on_a_read_only_file_system_is_a_config_error(
    simulator, certs, workdir, read_only_folder
) -> None:
    sim = simulator()
    state = read_only_folder / "state"
    done = _release_cli(sim.port, certs, workdir, state, "release", "--once")
    cause = "read-only file system" if POSIX_ROOT else "permission denied"
    _assert_clear(done, state, cause)
    # The folder itself, not a subfolder: the probe write is what fails.
    done = _release_cli(sim.port, certs, workdir, read_only_folder, "release", "--once")
    _assert_clear(done, read_only_folder, cause)
    assert deletes(sim) == 0


def test_a_state_dir_on_a_full_disk_is_a_config_error(
    simulator, certs, workdir, small_disk
) -> None:
    sim = simulator()
    state = small_disk / "state"
    state.mkdir()
    _fill(small_disk)
    done = _release_cli(sim.port, certs, workdir, state, "release", "--once")
    _assert_clear(done, state, "the disk is full")
    assert deletes(sim) == 0


def test_prepare_state_dir_creates_a_missing_folder(tmp_path) -> None:
    assert prepare_state_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateDirError, match="is a regular file, not a folder"):
        prepare_state_dir(blocker)


# --------------------------------------------------------------------------- disk full in use


def _points(n: int) -> list[tuple[str, Point]]:
    return [
        (
            "sqlite",
            Point(
                measurement="qlik_sense_license_release",
                tags={"user": f"ACME\\user{i}", "license_type": "professional"},
                fields={"allocation_id": "x" * 200, "days_since_last_use": 40.0},
                time=NOW + timedelta(seconds=i),
                feature="license_release",
            ),
        )
        for i in range(n)
    ]


def _entry(n: int) -> JournalEntry:
    allocation_id = f"{n:08d}-0000-0000-0000-000000000000"
    user = "ACME\\someone " + "x" * 300  # rows that fill pages quickly
    return journal_entry(allocation_id, NOW + timedelta(seconds=n), user=user)


def test_a_disk_that_fills_up_is_named_not_hidden_by_the_rollback(small_disk) -> None:
    """A real full disk: the COMMIT fails with SQLITE_FULL (SQLite rolls back by itself); the
    error says the disk is full, for the outbox and for the journal."""
    outbox = Outbox(small_disk / "outbox.sqlite")
    journal = SqliteJournal(small_disk / "journal.sqlite")
    outbox.add(_points(1))
    journal.intent(_entry(0))
    _fill(small_disk)
    with pytest.raises(OutboxError) as outbox_error:
        for _ in range(50):
            outbox.add(_points(200))
    with pytest.raises(JournalError) as journal_error:
        for n in range(1, 2000):
            journal.intent(_entry(n))
    for error, path in ((outbox_error, outbox.path), (journal_error, journal.path)):
        message = str(error.value)
        assert "the disk is full" in message and str(path) in message
        assert "no transaction is active" not in message
    # Both files still work once there is space again.
    (small_disk / "filler").unlink()
    outbox.add(_points(1))
    journal.intent(_entry(5000))
    outbox.close()
    journal.close()


def _full(db: sqlite3.Connection) -> None:
    """SQLite refuses to grow the file past its current size: SQLITE_FULL at the next page."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def test_sqlite_full_is_reported_as_a_full_disk_everywhere(tmp_path) -> None:
    """The same through SQLite's page limit, on any platform and account."""
    outbox = Outbox(tmp_path / "outbox.sqlite")
    _full(outbox._db)
    with pytest.raises(OutboxError, match="cannot store points in the outbox .*the disk is full"):
        for _ in range(50):
            outbox.add(_points(100))
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    _full(journal._db)
    with pytest.raises(JournalError, match="cannot write the release journal .*the disk is full"):
        for n in range(2000):
            journal.intent(_entry(n))
    outbox.close()
    journal.close()


def test_no_delete_is_sent_when_the_journal_cannot_record_it(simulator, certs, workdir) -> None:
    """The journal's disk is full before the run: every candidate is reported failed with the
    reason, and QRS receives no DELETE."""
    site = build_site(5)
    sim = simulator(site)
    config = load(
        write_config(
            workdir / "c.yaml",
            config_document(sim.port, certs, workdir, release=release_section()),
        )
    )
    journal = SqliteJournal(workdir / "journal.sqlite")
    for n in range(40):  # fill the first pages, then forbid new ones
        journal.intent(_entry(n))
    _full(journal._db)
    with QrsClient(config.sites()[0]) as qrs:
        result = run_release(
            config, config.sites()[0], build_plugin_host(config), qrs, journal=journal, now=NOW
        )
    journal.close()
    assert deletes(sim) == 0
    assert set(site.candidates) <= set(present(sim))
    failed = [d for d in result.decisions if d.decision.value == "failed"]
    assert {d.allocation.id for d in failed} == set(site.candidates)
    assert all("the disk is full" in d.reasons[0].reason for d in failed)
    assert not result.ok


# --------------------------------------------------------------------------- restore journal, run log


def _run(n: int) -> RunRecord:
    outcome = "needs attention: " + "x" * 300  # rows that fill pages quickly
    started = real_now()  # the log drops runs older than 30 days by the real clock
    return RunRecord(f"run-{n:06x}", "127.0.0.1", "release", started, started, {}, outcome)


def _until_full(write, what: str) -> JournalError:
    """Call ``write(n)`` until it raises; the error it raised."""
    with pytest.raises(JournalError) as error:
        for n in range(1, 5000):
            write(n)
    message = str(error.value)
    assert message.startswith(f"cannot write the {what} ")
    assert "no transaction is active" not in message
    return error.value


def _assert_names(error: JournalError, path: Path) -> None:
    message = str(error)
    assert str(path) in message and "the disk is full" in message
    assert "Butler.licenseAgent.stateDir" in message


def test_a_disk_that_fills_up_under_the_restore_journal_and_the_run_log_is_named(
    small_disk,
) -> None:
    """Issue 13 item 6 for the restore journal and the run log: a real full disk makes the
    COMMIT fail with SQLITE_FULL; the error names the file and says the disk is full."""
    path = small_disk / "release-127.0.0.1.journal.sqlite"
    journal = RestoreJournal(path)
    log = RunLog(path)
    journal.intent("restore-1", _entry(0), NOW)
    log.record(_run(0))
    _fill(small_disk)
    _assert_names(
        _until_full(lambda n: journal.intent("restore-1", _entry(n), NOW), "restore journal"), path
    )
    _assert_names(_until_full(lambda n: log.record(_run(n)), "run log"), path)
    # Both tables still work once there is space again.
    (small_disk / "filler").unlink()
    row = journal.intent("restore-2", _entry(9000), NOW)
    journal.outcome(row, "restored", "new-id", "QRS allocated a new professional license")
    log.record(_run(9000))
    assert log.get(_run(9000).run_id) is not None
    journal.close()
    log.close()


def test_sqlite_full_in_the_restore_journal_and_the_run_log_is_a_full_disk(tmp_path) -> None:
    """The same through SQLite's page limit, on any platform and account."""
    path = tmp_path / "release-127.0.0.1.journal.sqlite"
    journal = RestoreJournal(path)
    _full(journal._db)
    _assert_names(
        _until_full(lambda n: journal.intent("r", _entry(n), NOW), "restore journal"), path
    )
    log = RunLog(path)
    _full(log._db)
    _assert_names(_until_full(lambda n: log.record(_run(n)), "run log"), path)
    journal.close()
    log.close()


def test_a_run_that_cannot_be_logged_is_one_warning_not_an_error(small_disk) -> None:
    """record_run never raises: the run happened (its journal rows carry its id, so a restore
    still finds it); one warning names the file and the cause."""
    state = small_disk / "state"
    state.mkdir()
    record_run(state, _run(0))
    _fill(small_disk)
    with captured_logs("WARNING") as lines:
        for n in range(1, 200):
            record_run(state, _run(n))
    problems = loud(lines)
    assert problems, "the run log never filled up"
    first = problems[0].message
    # A new connection on a full disk fails to open (SQLite cannot create its WAL index):
    # that is said as the full disk it is, too.
    assert "is missing from `release runs`: cannot " in first and " the run log " in first
    assert "the disk is full" in first and str(state) in first
    assert "no transaction is active" not in " ".join(line.message for line in problems)
