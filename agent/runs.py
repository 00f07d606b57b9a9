"""The run log: every release, dry run, applied plan and restore, by id, with its counts.

``license-agent release runs`` lists it, so an admin finds the id to give to ``release restore
--run``. It is a table (``release_runs``) in the site's release journal file (see
:func:`agent.journal.journal_path`). A release run (live, applied or dry) writes its row when it
starts, under the site's release lock, with the outcome ``running``, and rewrites it when it
ends; a restore writes its row when it ends. A run killed in between (SIGKILL, power loss)
leaves its ``running`` row: :func:`recent_runs` shows it as ``interrupted`` once no process
holds the site's release lock (:func:`agent.lock.release_in_progress`), with what the release
journal knows of its DELETEs, so the admin finds its id for ``release restore --run`` too.
The next run on the site marks such rows ``interrupted`` when it starts. Entries older than
:data:`KEEP_DAYS` are dropped, like the journal's finished rows: a release can be restored only
while the journal still has it.

The table is the one of the first run-log version: a ``running`` or ``interrupted`` row is an
ordinary row with no ``finished`` time, so older state folders need no migration.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from agent.journal import (
    ALREADY_GONE,
    DEFAULT_KEEP_DAYS,
    EVENT_STATES,
    NOT_RELEASED,
    OPEN,
    JournalError,
    journal_path,
)
from agent.journal import run_counts as journal_run_counts
from agent.lock import release_in_progress
from agent.models import UTC, Decision, format_qrs_time, parse_qrs_time
from agent.statedir import describe_sqlite_error, sqlite_errors, sqlite_transaction

KEEP_DAYS = DEFAULT_KEEP_DAYS

# Kinds of run.
RELEASE = "release"
DRY_RUN = "dry_run"
APPLY = "apply"
RESTORE = "restore"
RESTORE_DRY_RUN = "restore_dry_run"

# What became of a run (``status`` in ``release runs --json``).
FINISHED = "finished"
#: Its row was written at start and its process still holds the site's release lock.
RUNNING = "running"
#: Its row was written at start and its process is gone without rewriting it (killed).
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunRecord:
    """One run as the log keeps it."""

    run_id: str
    site: str
    kind: str
    started: datetime
    finished: datetime | None
    counts: Mapping[str, int] = field(default_factory=dict)
    #: ``ok``, or what needs attention (the safety limit, failures, why it stopped);
    #: ``running`` / ``interrupted`` (and what the journal knows) for a run that did not end.
    outcome: str = "ok"

    @property
    def status(self) -> str:
        """:data:`FINISHED`, :data:`RUNNING` or :data:`INTERRUPTED`."""
        if self.finished is not None:
            return FINISHED
        if self.outcome == RUNNING:
            return RUNNING
        return INTERRUPTED if self.outcome.startswith(INTERRUPTED) else FINISHED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "site": self.site,
            "kind": self.kind,
            "status": self.status,
            "started": format_qrs_time(self.started),
            "finished": format_qrs_time(self.finished) if self.finished else None,
            "counts": dict(self.counts),
            "outcome": self.outcome,
        }


def release_kind(dry_run: bool, plan_applied: bool) -> str:
    """The kind of a release run: a dry run, an applied plan, or a live run."""
    return DRY_RUN if dry_run else APPLY if plan_applied else RELEASE


def started_run(run_id: str, site: str, kind: str, started: datetime) -> RunRecord:
    """The row a release run writes when it starts (see :class:`LoggedRun`)."""
    return RunRecord(run_id, site, kind, started, None, {}, RUNNING)


def release_run_record(result: Any) -> RunRecord:
    """The log entry of a release run (an :class:`agent.release.ReleaseResult`, which imports
    this module): its kind and the decisions it made, summed over types."""
    kind = release_kind(result.dry_run, result.plan_applied)
    counts: dict[str, int] = {}
    for type_counts in result.counts().values():
        for decision in Decision:
            value = type_counts.get(decision.value, 0)
            if value:
                counts[decision.value] = counts.get(decision.value, 0) + value
    if result.limit_tripped:
        outcome = "stopped by the safety limit"
    elif result.aborted:
        outcome = f"stopped: {result.aborted}"
    elif not result.ok:
        outcome = "needs attention: " + ("; ".join(result.errors) or "some deletes failed")
    else:
        outcome = "ok"
    return RunRecord(
        result.run_id, result.site, kind, result.started, result.finished, counts, outcome[:300]
    )


class RunLog:
    """The ``release_runs`` table of one journal file.

    Raises :class:`~agent.journal.JournalError` naming the file and the cause (a full disk, a
    read-only folder) when it cannot be opened or written.
    """

    def __init__(self, path: Path | str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite_errors("open the run log", self.path, JournalError):
            self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS release_runs (run_id TEXT PRIMARY KEY,"
                " site TEXT NOT NULL, kind TEXT NOT NULL, started TEXT NOT NULL, finished TEXT,"
                " counts TEXT NOT NULL DEFAULT '{}', outcome TEXT NOT NULL DEFAULT '')"
            )

    @classmethod
    def for_site(cls, state_dir: Path, site: str) -> RunLog:
        return cls(journal_path(state_dir, site))

    def record(self, run: RunRecord) -> None:
        """Write ``run``'s row (a new one, or over the one it wrote when it started)."""
        self._write(run)

    def start(self, run: RunRecord) -> None:
        """Write the row of a run that starts now, under the site's release lock: a row still
        ``running`` is of a run that died (no two runs hold the lock), so it is marked
        ``interrupted`` in the same transaction."""
        self._write(run, settle=run.site)

    def settle(self, site: str) -> None:
        """Mark ``site``'s ``running`` rows ``interrupted``; call it under the release lock."""
        with (
            sqlite_errors("write the run log", self.path, JournalError),
            sqlite_transaction(self._db),
        ):
            self._settle(site)

    def _settle(self, site: str) -> None:
        self._db.execute(
            "UPDATE release_runs SET outcome = ? WHERE site = ? AND outcome = ?"
            " AND finished IS NULL",
            (INTERRUPTED, site, RUNNING),
        )

    def _write(self, run: RunRecord, *, settle: str | None = None) -> None:
        cutoff = format_qrs_time(self._clock() - timedelta(days=KEEP_DAYS))
        with (
            sqlite_errors("write the run log", self.path, JournalError),
            sqlite_transaction(self._db),
        ):
            if settle is not None:
                self._settle(settle)
            self._db.execute(
                "INSERT OR REPLACE INTO release_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.site,
                    run.kind,
                    format_qrs_time(run.started),
                    format_qrs_time(run.finished) if run.finished else None,
                    json.dumps(dict(run.counts), sort_keys=True),
                    run.outcome,
                ),
            )
            self._db.execute("DELETE FROM release_runs WHERE started < ?", (cutoff,))

    def recent(self, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first."""
        rows = self._db.execute(
            "SELECT * FROM release_runs ORDER BY started DESC, run_id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_record(row) for row in rows]

    def journal_counts(self, run_ids: list[str]) -> dict[str, dict[str, int]] | str:
        """The release journal's rows per state of these runs (the journal is in this file),
        or why they cannot be read."""
        try:
            return journal_run_counts(self._db, run_ids)
        except sqlite3.Error as exc:
            return describe_sqlite_error(exc, self.path)

    def get(self, run_id: str) -> RunRecord | None:
        row = self._db.execute("SELECT * FROM release_runs WHERE run_id = ?", (run_id,)).fetchone()
        return _record(row) if row else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _record(row: tuple[Any, ...]) -> RunRecord:
    run_id, site, kind, started, finished, counts, outcome = row
    return RunRecord(
        run_id,
        site,
        kind,
        parse_qrs_time(started) or datetime.fromtimestamp(0, UTC),
        parse_qrs_time(finished) if finished else None,
        json.loads(counts or "{}"),
        outcome,
    )


def record_run(state_dir: Path, run: RunRecord) -> None:
    """Add ``run`` to its site's log. Never raises: a run that cannot be logged still happened
    (its journal rows and report are complete); the failure is logged."""
    LoggedRun(state_dir, run).finish(run)


class LoggedRun:
    """A release run's row from its start to its end. Never raises.

    A run the log cannot take (a full disk) still happened, and its journal rows carry its
    id, so a restore finds it: the failure is one warning for the run, however many of its
    writes fail, and the run keeps its exit code.
    """

    def __init__(self, state_dir: Path, run: RunRecord) -> None:
        self.state_dir = state_dir
        self.run = run
        self._warned = False

    def start(self) -> None:
        """Write the ``running`` row; call it under the site's release lock."""
        self._write(lambda log: log.start(self.run))

    def finish(self, run: RunRecord) -> None:
        """Write the finished row over the ``running`` one."""
        self.run = run
        self._write(lambda log: log.record(run))

    def _write(self, write: Callable[[RunLog], None]) -> None:
        try:
            with RunLog.for_site(self.state_dir, self.run.site) as log:
                write(log)
        except (JournalError, OSError, sqlite3.Error, ValueError) as exc:
            if not self._warned:
                self._warned = True
                logger.warning("run {} is missing from `release runs`: {}", self.run.run_id, exc)


def recent_runs(state_dir: Path, site: str, limit: int = 20) -> list[RunRecord]:
    """``site``'s latest runs, newest first, as ``release runs`` shows them.

    A ``running`` row whose process is gone (no process holds the site's release lock) is
    shown ``interrupted``; an interrupted live run's counts and outcome say what the release
    journal knows of its DELETEs (``deletes_sent``: recorded as about to be sent; then what
    QRS showed when a later run or restore asked it, or ``unverified`` until one has).
    """
    with RunLog.for_site(state_dir, site) as log:
        records = log.recent(limit)
        if not any(r.finished is None and r.outcome in (RUNNING, INTERRUPTED) for r in records):
            return records
        alive = release_in_progress(state_dir, site)
        dead = [
            r
            for r in records
            if r.finished is None
            and (r.outcome == INTERRUPTED or (r.outcome == RUNNING and alive is False))
        ]
        if not dead:
            return records
        journal = log.journal_counts([r.run_id for r in dead if r.kind != DRY_RUN])
        shown = {r.run_id: _interrupted(r, journal) for r in dead}
        return [shown.get(r.run_id, r) for r in records]


def _interrupted(run: RunRecord, journal: Mapping[str, Mapping[str, int]] | str) -> RunRecord:
    if run.kind == DRY_RUN:
        return replace(run, outcome=f"{INTERRUPTED} (a dry run: nothing was deleted)")
    if isinstance(journal, str):
        return replace(run, outcome=f"{INTERRUPTED}; the release journal cannot be read: {journal}")
    states = journal.get(run.run_id, {})
    sent = sum(states.values())
    if not sent:
        return replace(run, outcome=f"{INTERRUPTED} before it sent any DELETE")
    settled = (*EVENT_STATES, ALREADY_GONE, NOT_RELEASED)
    counts = {"deletes_sent": sent, **{s: states[s] for s in settled if states.get(s)}}
    unverified = sum(states.get(state, 0) for state in OPEN)
    if unverified:
        counts["unverified"] = unverified
    shown = [
        f"{n} {state.replace('_', ' ')}" for state, n in counts.items() if state != "deletes_sent"
    ]
    outcome = f"{INTERRUPTED} after {sent} DELETE(s) sent: " + ", ".join(shown)
    if unverified:
        outcome += " (the next release run or restore asks QRS)"
    return replace(run, counts=counts, outcome=outcome)


__all__ = [
    "APPLY",
    "DRY_RUN",
    "FINISHED",
    "INTERRUPTED",
    "RELEASE",
    "RESTORE",
    "RESTORE_DRY_RUN",
    "RUNNING",
    "LoggedRun",
    "RunLog",
    "RunRecord",
    "recent_runs",
    "record_run",
    "release_kind",
    "release_run_record",
    "started_run",
]
