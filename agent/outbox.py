"""The durable outbox: points waiting to reach a destination, in a local SQLite file.

Every point is stored here, one row per (destination, point), *before* any destination is
tried, and each row is deleted only after its destination wrote it. So a destination that is
down, or an agent stopped at any moment, loses nothing: the next delivery re-sends the pending
rows oldest first (the autoincrement ``id`` is the order). Re-sending a point that was in fact
written is harmless because every destination write is idempotent (same measurement, tags and
time overwrite).

The file is bounded by ``Butler.licenseAgent.outbox.maxRows``. When it is full the oldest
monitor points (``license_monitor`` and ``server_license``: snapshots whose newer values are
still queued) are dropped first, with a warning. Release events (``license_release``) are
never dropped: there is one per released allocation, so they are few, and losing one would
lose the only record of a release.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from agent.models import FEATURE_LICENSE_RELEASE, Point
from agent.statedir import (
    describe_os_error,
    describe_sqlite_error,
    prepare_state_dir,
    sqlite_transaction,
)

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

SCHEMA_VERSION = 1
DEFAULT_MAX_ROWS = 100_000


def time_to_ns(value: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch, exactly (no float rounding)."""
    return ((value - _EPOCH) // _MICROSECOND) * 1000


def ns_to_time(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value // 1000)


def point_to_json(point: Point) -> str:
    """Serialize a point losslessly (``Point.to_dict`` keeps only milliseconds)."""
    return json.dumps(
        {
            "measurement": point.measurement,
            "tags": dict(point.tags),
            "fields": dict(point.fields),
            "time_ns": time_to_ns(point.time),
            "feature": point.feature,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def point_from_json(text: str) -> Point:
    data: dict[str, Any] = json.loads(text)
    return Point(
        measurement=data["measurement"],
        tags=data["tags"],
        fields=data["fields"],
        time=ns_to_time(data["time_ns"]),
        feature=data["feature"],
    )


@dataclass(frozen=True)
class Dropped:
    """What :meth:`Outbox.add` had to drop (or keep beyond the limit) to stay bounded."""

    dropped: int = 0
    #: Rows above ``max_rows`` that are release events, kept anyway.
    over_limit: int = 0


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or used (permissions, disk full, newer schema)."""


class Outbox:
    """Pending points per destination, in one SQLite file (WAL mode, safe across processes)."""

    def __init__(self, path: Path | str, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        self.max_rows = max_rows
        self._lock = threading.Lock()
        if self.path is not None:
            # A folder that cannot be used is a configuration problem (StateDirError, exit 2).
            prepare_state_dir(self.path.parent)
        try:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) below.
            self._db = sqlite3.connect(
                str(path), timeout=30, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL (SQLite's default, made explicit): every commit is fsynced, so a point
            # the outbox accepted survives a power cut, and so does a release event the
            # journal then marks as handed over (docs/reliability.md, "Power loss").
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except OSError as exc:
            raise OutboxError(
                f"cannot open the outbox {path}: {describe_os_error(exc)} (check"
                " Butler.licenseAgent.stateDir)"
            ) from None
        except sqlite3.Error as exc:
            raise OutboxError(
                f"cannot open the outbox {path}: {describe_sqlite_error(exc, self.path)} (check"
                " Butler.licenseAgent.stateDir)"
            ) from None

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"the outbox {self.path} was written by a newer version of the agent"
                f" (schema {version}, this one knows {SCHEMA_VERSION}); upgrade the agent"
            )
        if version < 1:
            self._db.executescript(
                """
                BEGIN;
                CREATE TABLE IF NOT EXISTS outbox (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    destination TEXT NOT NULL,
                    feature TEXT NOT NULL,
                    point TEXT NOT NULL,
                    queued_at TEXT NOT NULL
                );
                CREATE INDEX IF NOT EXISTS outbox_by_destination ON outbox (destination, id);
                PRAGMA user_version = 1;
                COMMIT;
                """
            )

    # ----------------------------------------------------------------- writing

    def add(self, items: Iterable[tuple[str, Point]]) -> Dropped:
        """Store ``(destination name, point)`` pairs durably; keep the file within bounds."""
        now = datetime.now(UTC).isoformat()
        rows = [(name, point.feature, point_to_json(point), now) for name, point in items]
        if not rows:
            return Dropped()
        with self._lock, self._transaction("store points in"):
            self._db.executemany(
                "INSERT INTO outbox (destination, feature, point, queued_at) VALUES (?, ?, ?, ?)",
                rows,
            )
            result = self._bound()
        return result

    def _bound(self) -> Dropped:
        excess = self._count() - self.max_rows
        if excess <= 0:
            return Dropped()
        cursor = self._db.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE feature != ?"
            " ORDER BY id LIMIT ?)",
            (FEATURE_LICENSE_RELEASE, excess),
        )
        dropped = cursor.rowcount
        return Dropped(dropped=dropped, over_limit=max(0, excess - dropped))

    def remove(self, ids: Sequence[int]) -> None:
        """Forget rows that their destination has written."""
        if not ids:
            return
        with self._lock, self._transaction("remove delivered points from"):
            # Chunks stay below SQLite's limit on bound parameters.
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[None]:
        """One write transaction; an SQLite failure becomes an :class:`OutboxError` naming the
        file and the cause. The caller holds the lock."""
        try:
            with sqlite_transaction(self._db):
                yield
        except sqlite3.Error as exc:
            raise OutboxError(
                f"cannot {doing} the outbox {self.path}: {describe_sqlite_error(exc)}"
                " (Butler.licenseAgent.stateDir)"
            ) from exc

    # ----------------------------------------------------------------- reading

    def pending(self, destination: str, limit: int, after_id: int = 0) -> list[tuple[int, Point]]:
        """The oldest pending rows of one destination with ``id > after_id``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, point FROM outbox WHERE destination = ? AND id > ? ORDER BY id LIMIT ?",
                (destination, after_id, limit),
            ).fetchall()
        return [(row_id, point_from_json(text)) for row_id, text in rows]

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def count(self, destination: str | None = None) -> int:
        with self._lock:
            if destination is None:
                return self._count()
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE destination = ?", (destination,)
                ).fetchone()[0]
            )

    def counts(self) -> dict[str, int]:
        """Pending rows per destination name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT destination, COUNT(*) FROM outbox GROUP BY destination"
            ).fetchall()
        return {name: int(n) for name, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
