"""The ``sqlite`` destination: license history in one local file, for sites without InfluxDB.

Enabled by ``Butler.licenseAgent.destinations.sqlite.enable``; the file is
``destinations.sqlite.path``, by default ``license-agent.sqlite`` in the agent's state folder
(next to the config unless ``stateDir`` says otherwise). Three tables:

* ``license_snapshot``: one row per license type, field and run, a long table that any
  report can filter (``WHERE license_type = 'professional' AND field = 'allocated'``). The view
  ``license_usage`` pivots it to one row per run and type with ``total, allocated, used,
  quarantined, available, excess``.
* ``release_event``: one row per released allocation (time, license type, user, allocation
  id, days since last use, whether QRS quarantined it, the other tags as JSON).
* ``point``: every other measurement (the site license, third-party plugins), fields as JSON.

Every table has a primary key on what identifies a point (measurement, tags, time), and rows
are written with ``INSERT OR REPLACE``, so a point delivered twice overwrites itself. The file
uses WAL mode, so readers (a report, ``sqlite3`` in a shell) never block the agent or see half
a write. The schema version is kept in ``PRAGMA user_version`` and upgraded step by step by
:data:`MIGRATIONS` when the agent opens an older file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.config import AGENT_FEATURES, AgentConfig, Features, OptionalPath, SettingsModel
from agent.hookspecs import Settings, hookimpl
from agent.models import (
    MEASUREMENT_LICENSE,
    MEASUREMENT_RELEASE,
    Destination,
    DestinationError,
    Point,
    SettingsSection,
    format_qrs_time,
)
from agent.outbox import time_to_ns

NAME = "sqlite"
DEFAULT_FILE = "license-agent.sqlite"


def _script(db: sqlite3.Connection, script: str) -> None:
    # Statement by statement: executescript() would commit the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE license_snapshot (
            time TEXT NOT NULL,              -- ISO 8601 UTC, e.g. 2026-01-23T04:56:07.000Z
            time_ns INTEGER NOT NULL,        -- the same instant, nanoseconds since 1970 (UTC)
            license_type TEXT NOT NULL,
            field TEXT NOT NULL,
            value REAL,
            tags TEXT NOT NULL DEFAULT '{}', -- the other tags, JSON with sorted keys
            PRIMARY KEY (license_type, tags, time_ns, field)
        ) WITHOUT ROWID;
        CREATE TABLE release_event (
            time TEXT NOT NULL,
            time_ns INTEGER NOT NULL,
            license_type TEXT NOT NULL,
            user TEXT NOT NULL,
            allocation_id TEXT NOT NULL DEFAULT '',
            days_since_last_use REAL,
            quarantined INTEGER,             -- 1 when QRS quarantined instead of freeing it
            tags TEXT NOT NULL DEFAULT '{}',
            fields TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (license_type, user, allocation_id, time_ns)
        );
        CREATE TABLE point (
            measurement TEXT NOT NULL,
            time TEXT NOT NULL,
            time_ns INTEGER NOT NULL,
            tags TEXT NOT NULL DEFAULT '{}',
            fields TEXT NOT NULL DEFAULT '{}',
            feature TEXT NOT NULL,
            PRIMARY KEY (measurement, tags, time_ns)
        );
        """,
    )


def _v2(db: sqlite3.Connection) -> None:
    # Reports read usage over time per type: an index on time and a ready-made pivot.
    _script(
        db,
        """
        CREATE INDEX license_snapshot_by_time ON license_snapshot (time_ns);
        CREATE INDEX release_event_by_time ON release_event (time_ns);
        CREATE VIEW license_usage AS
            SELECT time, time_ns, license_type, tags,
                   MAX(CASE WHEN field = 'total' THEN value END) AS total,
                   MAX(CASE WHEN field = 'allocated' THEN value END) AS allocated,
                   MAX(CASE WHEN field = 'used' THEN value END) AS used,
                   MAX(CASE WHEN field = 'quarantined' THEN value END) AS quarantined,
                   MAX(CASE WHEN field = 'available' THEN value END) AS available,
                   MAX(CASE WHEN field = 'excess' THEN value END) AS excess
            FROM license_snapshot
            GROUP BY time_ns, license_type, tags;
        """,
    )


#: Schema steps: ``MIGRATIONS[n]`` takes a file from version ``n`` to ``n + 1``. Append only.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the file to schema ``target``, one step per transaction. Returns the old version.

    Raises :class:`DestinationError` for a file written by a newer agent.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DestinationError(
            f"this SQLite file has schema version {version}, newer than this agent's"
            f" {SCHEMA_VERSION}: upgrade the agent or point destinations.sqlite.path elsewhere"
        )
    for step in range(version, target):
        db.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            if db.execute("PRAGMA user_version").fetchone()[0] != step:
                db.execute("ROLLBACK")
                continue
            MIGRATIONS[step](db)
            db.execute(f"PRAGMA user_version = {step + 1}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return version


def _json(mapping: Any) -> str:
    return json.dumps(dict(mapping), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class SqliteDestination:
    """Writes points to one SQLite file."""

    name = NAME

    def __init__(self, path: Path, features: frozenset[str]) -> None:
        self.path = path
        self.features = features
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def describe(self) -> str:
        return f"SQLite file {self.path}"

    def _connect(self) -> sqlite3.Connection:
        # Opened on first write, so a problem with the file is a write failure the outbox
        # absorbs (and reports) rather than a crash at start.
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    str(self.path), timeout=30, isolation_level=None, check_same_thread=False
                )
                db.execute("PRAGMA journal_mode=WAL")
                migrate(db)
            except (OSError, sqlite3.Error) as exc:
                raise DestinationError(f"cannot open SQLite file {self.path}: {exc}") from None
            self._db = db
        return self._db

    def write(self, points: Sequence[Point]) -> None:
        snapshots, releases, others = [], [], []
        for p in points:
            time, time_ns = format_qrs_time(p.time), time_to_ns(p.time)
            if p.measurement == MEASUREMENT_LICENSE and "license_type" in p.tags:
                tags = _json({k: v for k, v in p.tags.items() if k != "license_type"})
                snapshots.extend(
                    (time, time_ns, p.tags["license_type"], name, _number(value), tags)
                    for name, value in p.fields.items()
                )
            elif p.measurement == MEASUREMENT_RELEASE and "license_type" in p.tags:
                other = {k: v for k, v in p.tags.items() if k not in ("license_type", "user")}
                quarantined = p.fields.get("quarantined", p.tags.get("quarantined"))
                releases.append(
                    (
                        time,
                        time_ns,
                        p.tags["license_type"],
                        p.tags.get("user", ""),
                        str(p.fields.get("allocation_id", p.tags.get("allocation_id", ""))),
                        _number(p.fields.get("days_since_last_use")),
                        None if quarantined is None else int(str(quarantined).lower() == "true"),
                        _json(other),
                        _json(p.fields),
                    )
                )
            else:
                others.append(
                    (p.measurement, time, time_ns, _json(p.tags), _json(p.fields), p.feature)
                )
        with self._lock:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR REPLACE INTO license_snapshot"
                    " (time, time_ns, license_type, field, value, tags) VALUES (?, ?, ?, ?, ?, ?)",
                    snapshots,
                )
                db.executemany(
                    "INSERT OR REPLACE INTO release_event (time, time_ns, license_type, user,"
                    " allocation_id, days_since_last_use, quarantined, tags, fields)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    releases,
                )
                db.executemany(
                    "INSERT OR REPLACE INTO point (measurement, time, time_ns, tags, fields,"
                    " feature) VALUES (?, ?, ?, ?, ?, ?)",
                    others,
                )
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                # One transaction: nothing of this batch was written.
                raise DestinationError(f"cannot write to SQLite file {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


#: The key this plugin owns.
PATH = "licenseAgent.destinations.sqlite"


class SqliteSettings(SettingsModel):
    """``Butler.licenseAgent.destinations.sqlite``: the local history file."""

    enable: bool = False
    #: Default: ``license-agent.sqlite`` in the state folder (next to the config file).
    path: OptionalPath = None
    features: Features = list(AGENT_FEATURES)


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, SqliteSettings, per_site=False)]


@hookimpl
def sla_destinations(config: AgentConfig, settings: Settings) -> list[Destination] | None:
    sqlite = settings[PATH]
    if sqlite is None or not sqlite.enable:
        return None
    path = sqlite.path or config.state_dir / DEFAULT_FILE
    return [SqliteDestination(path, frozenset(sqlite.features))]
