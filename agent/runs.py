"""The run log: every release, dry run, applied plan and restore, by id, with its counts.

``license-agent release runs`` lists it, so an admin finds the id to give to ``release restore
--run``. It is a table (``release_runs``) in the site's release journal file (see
:func:`agent.journal.journal_path`); each run writes one row when it ends. Entries older than
:data:`KEEP_DAYS` are dropped, like the journal's finished rows: a release can be restored only
while the journal still has it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from agent.journal import DEFAULT_KEEP_DAYS, JournalError, journal_path
from agent.models import UTC, Decision, format_qrs_time, parse_qrs_time
from agent.statedir import sqlite_errors, sqlite_transaction

KEEP_DAYS = DEFAULT_KEEP_DAYS

# Kinds of run.
RELEASE = "release"
DRY_RUN = "dry_run"
APPLY = "apply"
RESTORE = "restore"
RESTORE_DRY_RUN = "restore_dry_run"


@dataclass(frozen=True)
class RunRecord:
    """One run as the log keeps it."""

    run_id: str
    site: str
    kind: str
    started: datetime
    finished: datetime | None
    counts: Mapping[str, int] = field(default_factory=dict)
    #: ``ok``, or what needs attention (the safety limit, failures, why it stopped).
    outcome: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "site": self.site,
            "kind": self.kind,
            "started": format_qrs_time(self.started),
            "finished": format_qrs_time(self.finished) if self.finished else None,
            "counts": dict(self.counts),
            "outcome": self.outcome,
        }


def release_run_record(result: Any) -> RunRecord:
    """The log entry of a release run (an :class:`agent.release.ReleaseResult`, which imports
    this module): its kind and the decisions it made, summed over types."""
    kind = DRY_RUN if result.dry_run else APPLY if result.plan_applied else RELEASE
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
        cutoff = format_qrs_time(self._clock() - timedelta(days=KEEP_DAYS))
        with (
            sqlite_errors("write the run log", self.path, JournalError),
            sqlite_transaction(self._db),
        ):
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
    try:
        with RunLog.for_site(state_dir, run.site) as log:
            log.record(run)
    except (JournalError, OSError, sqlite3.Error, ValueError) as exc:
        logger.warning("run {} is missing from `release runs`: {}", run.run_id, exc)


__all__ = [
    "APPLY",
    "DRY_RUN",
    "RELEASE",
    "RESTORE",
    "RESTORE_DRY_RUN",
    "RunLog",
    "RunRecord",
    "record_run",
    "release_run_record",
]
