"""The release journal: every DELETE is recorded before it is sent and after it is answered.

A release run that is killed (SIGKILL, power loss, a crash) between sending a DELETE and
handing its release event to the outbox would otherwise leave no trace of a release that did
happen. :class:`SqliteJournal` implements :class:`agent.journal.ReleaseJournal` in a small
SQLite file per site in the agent's state folder (WAL mode; an intent is committed with
``synchronous=FULL`` before its DELETE leaves the machine). Each row goes through these states::

    intent --DELETE answered--> released | quarantined | already_gone | failed
    intent | failed --recover()--> released | quarantined | not_released
    intent | failed --a later run lists the allocation again--> superseded
    superseded --that later run's DELETE finds it gone (404)--> released

:meth:`SqliteJournal.recover` runs before every release run, under the site's release lock. It
asks QRS about every DELETE whose outcome is unknown (``intent``: the agent died while it was in
flight; ``failed``: QRS answered 5xx or the answer was lost, so it may have been applied):
gone means it was released, ``quarantined: true`` means it was quarantined, still there means
it was not released. When QRS cannot be reached the row stays pending for the next run. Then
it hands every release event not yet handed over (a verified one, or one whose run died before
delivering) to the delivery, with the intent's time as the event's time: a release event is
deterministic, so one sent twice overwrites itself instead of counting twice. The delivery
returned by :meth:`SqliteJournal.sink` marks events as handed over once the outbox holds them.

A later run that lists an allocation with a pending intent shows that DELETE had not been
applied (QRS still lists the allocation, not quarantined), so its new intent supersedes the old
one. Should the old DELETE still reach QRS after that listing (it was in flight when the agent
died), the new DELETE finds the allocation gone (404) and the old row is released again: one
release, one event, whichever run did it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from agent.lock import lock_path
from agent.models import (
    FEATURE_LICENSE_RELEASE,
    MEASUREMENT_RELEASE,
    Decision,
    Point,
    format_qrs_time,
    parse_qrs_time,
)
from agent.statedir import (
    describe_os_error,
    describe_sqlite_error,
    prepare_state_dir,
    sqlite_transaction,
)

if TYPE_CHECKING:
    from agent.config import AgentConfig, SiteConfig

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

SCHEMA_VERSION = 2
#: Finished rows are kept this long (for ``sqlite3`` inspection after an incident), then pruned.
DEFAULT_KEEP_DAYS = 30

# Row states.
INTENT = "intent"
RELEASED = "released"
QUARANTINED = "quarantined"
ALREADY_GONE = "already_gone"
FAILED = "failed"
NOT_RELEASED = "not_released"
SUPERSEDED = "superseded"
UNCONFIRMED = "unconfirmed"
#: States whose DELETE may or may not have been applied: recover() asks QRS.
UNRESOLVED = (INTENT, FAILED)
#: QRS still listed the allocation after the DELETE was sent (``unconfirmed``), or a later run
#: listed it and sent its own DELETE (``superseded``): a DELETE in flight when the agent died
#: may still land. recover() asks QRS again until the landing window has passed.
LINGERING = (UNCONFIRMED, SUPERSEDED)
#: States a new intent for the same allocation supersedes.
SUPERSEDABLE = (*UNRESOLVED, UNCONFIRMED)
#: Every state whose row is not settled yet.
OPEN = (*UNRESOLVED, *LINGERING)
#: States that produce a release event; at most one row per allocation is ever in one of them.
EVENT_STATES = (RELEASED, QUARANTINED)
#: How long after its DELETE was sent an allocation QRS still lists counts as "may still be
#: removed by it". A request in flight is applied within seconds (QRS's own timeouts are
#: minutes); past this, "still listed" means the DELETE was not applied.
DEFAULT_LANDING_WINDOW = timedelta(hours=1)

_OUTCOME_STATES = {
    Decision.RELEASED: RELEASED,
    Decision.QUARANTINED: QUARANTINED,
    Decision.ALREADY_GONE: ALREADY_GONE,
    Decision.FAILED: FAILED,
}


# --------------------------------------------------------------------------- what a run records


class EventSink(Protocol):
    """Where release events go (:class:`agent.delivery.Delivery`)."""

    def deliver(self, points: Sequence[Point]) -> Any: ...


@dataclass(frozen=True)
class JournalEntry:
    """One DELETE the run is about to send: enough to finish its event after a crash."""

    site: str
    license_type: str
    resource: str
    allocation_id: str
    user: str
    days_since_last_use: int
    last_used: datetime | None
    at: datetime
    #: The run that sent the DELETE, and the owner's QRS user id (a restore allocates to it).
    run_id: str = ""
    owner_id: str = ""


class ReleaseJournal(Protocol):
    """Records each DELETE before it is sent and its outcome after (crash safety).

    ``intent`` is called before the DELETE, from the delete worker threads (so it must be
    thread-safe); if it raises, the DELETE is not sent and the allocation is reported as
    failed. ``outcome`` is called after all DELETEs of the type, from the run's thread, with
    the final decision (``released``, ``quarantined``, ``already_gone`` or ``failed``); it
    returns ``False`` when the journal already holds a release event of this allocation, so
    the run must not write a second one (``None`` or ``True``: the event is due).
    """

    def intent(self, entry: JournalEntry) -> None: ...

    def outcome(self, entry: JournalEntry, decision: Decision, detail: str = "") -> bool | None: ...


class NullJournal:
    """The default journal: records nothing."""

    def intent(self, entry: JournalEntry) -> None:
        return None

    def outcome(self, entry: JournalEntry, decision: Decision, detail: str = "") -> bool:
        return True


def release_event(entry: JournalEntry, quarantined: bool, static_tags: Mapping[str, str]) -> Point:
    """The ``qlik_sense_license_release`` point for one removed allocation.

    Static tags come first; ``license_type`` and ``user`` win over a static tag of the same
    name, so dashboards always see the real values.
    """
    return Point(
        measurement=MEASUREMENT_RELEASE,
        tags={**static_tags, "license_type": entry.license_type, "user": entry.user},
        fields={
            "days_since_last_use": float(entry.days_since_last_use),
            "allocation_id": entry.allocation_id,
            "quarantined": quarantined,
            **({"run_id": entry.run_id} if entry.run_id else {}),
        },
        time=entry.at,
        feature=FEATURE_LICENSE_RELEASE,
    )


class JournalError(RuntimeError):
    """The journal file cannot be opened or used (permissions, disk full, newer schema)."""


def journal_path(state_dir: Path, site: str) -> Path:
    """The journal of ``site``, beside its release lock: ``release-<site>.journal.sqlite``."""
    return lock_path(state_dir, site).with_suffix(".journal.sqlite")


def _to_us(moment: datetime) -> int:
    # Integer microseconds: the event time must come back exactly, or a re-sent event would
    # not overwrite the first one.
    return (moment.astimezone(UTC) - _EPOCH) // _MICROSECOND


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True)
class JournalRecord:
    """One row of the journal: the DELETE's entry, what became of it, and its event."""

    row_id: int
    entry: JournalEntry
    state: str
    detail: str
    event_sent: bool

    @property
    def unresolved(self) -> bool:
        return self.state in UNRESOLVED


@dataclass
class RecoveryReport:
    """What :meth:`SqliteJournal.recover` found and did."""

    #: DELETEs whose outcome was unknown and that QRS shows were applied (freed / quarantined).
    released: int = 0
    quarantined: int = 0
    #: DELETEs whose outcome was unknown and that QRS shows were not applied.
    not_released: int = 0
    #: DELETEs sent within the landing window whose allocation QRS still lists: they may still
    #: land; asked again at the next run.
    unconfirmed: int = 0
    #: Still unknown: QRS could not be asked; tried again before the next run.
    pending: int = 0
    #: Release events handed to the delivery (verified ones and ones a dead run left behind).
    events: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.released
            or self.quarantined
            or self.not_released
            or self.unconfirmed
            or self.events
        )


class SqliteJournal:
    """A :class:`~agent.journal.ReleaseJournal` in one SQLite file. Thread-safe.

    :param path: the file (created with its folder if missing), or ``":memory:"``.
    :param keep_days: finished rows older than this are deleted by :meth:`prune`.
    :param clock: the time source for the rows' ``updated`` column, pruning and the landing
        window.
    :param landing_window: see :data:`DEFAULT_LANDING_WINDOW`.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        keep_days: int = DEFAULT_KEEP_DAYS,
        clock: Callable[[], datetime] | None = None,
        landing_window: timedelta = DEFAULT_LANDING_WINDOW,
    ) -> None:
        self.path = None if str(path) == ":memory:" else Path(path)
        self.keep_days = keep_days
        self.landing_window = landing_window
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        if self.path is not None:
            # A folder that cannot be used is a configuration problem (StateDirError, exit 2).
            prepare_state_dir(self.path.parent)
        try:
            self._db = sqlite3.connect(
                str(path), timeout=30, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            cause = (
                describe_os_error(exc)
                if isinstance(exc, OSError)
                else describe_sqlite_error(exc, self.path)
            )
            raise JournalError(
                f"cannot open the release journal {path}: {cause} (check"
                " Butler.licenseAgent.stateDir: the folder must be writable)"
            ) from None

    @classmethod
    def for_site(cls, state_dir: Path, site: str, **options: Any) -> SqliteJournal:
        """The journal of one site in the agent's state folder."""
        return cls(journal_path(state_dir, site), **options)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"the release journal {self.path} was written by a newer version of the agent"
                f" (schema {version}, this one knows {SCHEMA_VERSION}); upgrade the agent"
            )
        if version < 1:
            self._db.executescript(
                """
                BEGIN;
                CREATE TABLE IF NOT EXISTS release_journal (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    site TEXT NOT NULL,
                    license_type TEXT NOT NULL,
                    resource TEXT NOT NULL,
                    allocation_id TEXT NOT NULL,
                    user TEXT NOT NULL,
                    days_since_last_use INTEGER NOT NULL,
                    last_used TEXT,
                    at_us INTEGER NOT NULL,       -- the intent's time = the event's time
                    at TEXT NOT NULL,             -- the same, readable
                    state TEXT NOT NULL,
                    detail TEXT NOT NULL DEFAULT '',
                    event_sent INTEGER NOT NULL DEFAULT 0,
                    updated TEXT NOT NULL
                );
                CREATE INDEX IF NOT EXISTS release_journal_by_state
                    ON release_journal (state, event_sent);
                CREATE INDEX IF NOT EXISTS release_journal_by_allocation
                    ON release_journal (allocation_id COLLATE NOCASE, license_type);
                PRAGMA user_version = 1;
                COMMIT;
                """
            )
        if version < 2:
            # The run that sent each DELETE and the owner's QRS user id: a restore gives a
            # run's releases back to the same users. Rows of version 1 have neither ('').
            self._db.executescript(
                """
                BEGIN;
                ALTER TABLE release_journal ADD COLUMN run_id TEXT NOT NULL DEFAULT '';
                ALTER TABLE release_journal ADD COLUMN owner_id TEXT NOT NULL DEFAULT '';
                CREATE INDEX IF NOT EXISTS release_journal_by_run ON release_journal (run_id);
                PRAGMA user_version = 2;
                COMMIT;
                """
            )

    # ----------------------------------------------------------------- ReleaseJournal

    def intent(self, entry: JournalEntry) -> None:
        """Record a DELETE about to be sent; durable (fsync) before this returns.

        An older unresolved or unconfirmed DELETE of the same allocation is superseded: the
        run that calls this has just seen QRS list the allocation, unquarantined, so that
        DELETE was not applied yet (it may still land: see :meth:`outcome`).
        """
        now = self._now_text()
        with self._lock:
            self._write(
                [
                    (
                        "UPDATE release_journal SET state = ?, detail = ?, updated = ?"
                        " WHERE allocation_id = ? COLLATE NOCASE AND license_type = ?"
                        f" AND state IN ({_marks(SUPERSEDABLE)})",
                        (
                            SUPERSEDED,
                            "QRS listed the allocation again: this DELETE was not applied (yet)",
                            now,
                            entry.allocation_id,
                            entry.license_type,
                            *SUPERSEDABLE,
                        ),
                    ),
                    (
                        "INSERT INTO release_journal (site, license_type, resource,"
                        " allocation_id, user, days_since_last_use, last_used, at_us, at,"
                        " state, updated, run_id, owner_id)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            entry.site,
                            entry.license_type,
                            entry.resource,
                            entry.allocation_id,
                            entry.user,
                            int(entry.days_since_last_use),
                            format_qrs_time(entry.last_used) if entry.last_used else None,
                            _to_us(entry.at),
                            entry.at.astimezone(UTC).isoformat(),
                            INTENT,
                            now,
                            entry.run_id,
                            entry.owner_id,
                        ),
                    ),
                ],
                durable=True,
            )

    def outcome(self, entry: JournalEntry, decision: Decision, detail: str = "") -> bool:
        """Record what the DELETE did; returns whether its release event is due.

        A ``failed`` DELETE stays to be verified by recover(). One allocation gets at most one
        release event, whichever of this agent's DELETEs removed it:

        * ``released`` / ``quarantined``: this DELETE removed the allocation, so earlier ones
          still lingering were not applied (``not_released``). If the journal already holds
          a release of the allocation (QRS confirmed a removal twice), this row is recorded
          ``already_gone`` and ``False`` is returned: no second event.
        * ``already_gone`` (404 at the first attempt) for an allocation with a lingering
          earlier DELETE means that DELETE, sent by a run that died, reached QRS after the
          allocation was listed again: the newest such row becomes ``released`` and its event
          is handed over at the end of this run (:func:`journaled`).
        """
        state = _OUTCOME_STATES.get(decision)
        if state is None:
            raise ValueError(f"not a DELETE outcome: {decision!r}")
        now = self._now_text()
        at_us = _to_us(entry.at)
        due = True
        with self._lock:
            rows = self._rows_of(entry.allocation_id, entry.license_type)
            others = [r for r in rows if not (r.state == INTENT and _to_us(r.entry.at) == at_us)]
            recorded = next((r for r in others if r.state in EVENT_STATES), None)
            lingering = [r for r in others if r.state in LINGERING]
            statements: list[tuple[str, Sequence[Any]]] = []
            if state in EVENT_STATES:
                if recorded is not None:
                    state, due = ALREADY_GONE, False
                    detail = (
                        "the journal already holds this allocation's release (row"
                        f" {recorded.row_id}): no second event"
                    )
                why = "a later DELETE of this agent removed the allocation"
                statements += [_set_state(r, NOT_RELEASED, why, now) for r in lingering]
            elif state == ALREADY_GONE:
                earlier = [r for r in lingering if _to_us(r.entry.at) < at_us]
                if earlier and recorded is None:
                    statements.append(
                        _set_state(
                            earlier.pop(),
                            RELEASED,
                            "the DELETE of an interrupted run reached QRS late (a later run"
                            " found the allocation gone)",
                            now,
                            reset_event=True,
                        )
                    )
                why = "another DELETE removed the allocation"
                statements += [_set_state(r, NOT_RELEASED, why, now) for r in earlier]
            statements.insert(
                0,
                (
                    "UPDATE release_journal SET state = ?, detail = ?, updated = ?"
                    " WHERE allocation_id = ? AND license_type = ? AND at_us = ? AND state = ?",
                    (
                        state,
                        detail[:500],
                        now,
                        entry.allocation_id,
                        entry.license_type,
                        at_us,
                        INTENT,
                    ),
                ),
            )
            # Not fsynced: losing this on power loss only means recover() asks QRS again.
            self._write(statements, durable=False)
        return due

    # ----------------------------------------------------------------- events

    def sink(self, delivery: EventSink) -> JournaledSink:
        """``delivery`` wrapped so that the journal learns which release events it accepted."""
        return JournaledSink(delivery, self)

    def mark_events(self, points: Sequence[Point]) -> int:
        """Note that these release events are in the outbox; returns the rows marked."""
        keys = [
            (
                str(p.fields.get("allocation_id", "")),
                str(p.tags.get("license_type", "")),
                _to_us(p.time),
            )
            for p in points
            if p.measurement == MEASUREMENT_RELEASE
        ]
        if not keys:
            return 0
        with self._lock:
            return self._write(
                [
                    (
                        "UPDATE release_journal SET event_sent = 1 WHERE allocation_id = ?"
                        " COLLATE NOCASE AND license_type = ? AND at_us = ?",
                        key,
                    )
                    for key in keys
                ],
                durable=False,
            )

    # ----------------------------------------------------------------- recovery

    def needs_recovery(self) -> bool:
        """Whether some DELETE's outcome is unknown or some release event was not handed over."""
        with self._lock:
            row = self._db.execute(
                f"SELECT COUNT(*) FROM release_journal WHERE state IN ({_marks(OPEN)})"
                f" OR (state IN ({_marks(EVENT_STATES)}) AND event_sent = 0)",
                (*OPEN, *EVENT_STATES),
            ).fetchone()
        return bool(row[0])

    def recover(
        self,
        qrs: Any,
        delivery: EventSink | None,
        static_tags: Mapping[str, str] | None = None,
    ) -> RecoveryReport:
        """Settle what an interrupted or failed run left behind. Never raises.

        :param qrs: a client with ``get_allocation(resource, id)`` (``None`` on 404).
        :param delivery: where the release events go; ``None`` (a dry run) keeps them for later.
        :param static_tags: the site's static tags for release events (as the run adds them).
        """
        report = RecoveryReport()
        try:
            self._verify(qrs, report)
            if delivery is not None:
                self._send_events(delivery, static_tags or {}, report)
            self.prune()
        except Exception as exc:  # the journal file broke: the run itself will report it too
            report.errors.append(f"release journal recovery failed: {type(exc).__name__}: {exc}")
            logger.error("{}", report.errors[-1])
        if report.changed:
            logger.warning(
                "release journal: an earlier run was interrupted or could not confirm its"
                " deletes; QRS shows {} of them released, {} quarantined, {} not released,"
                " {} still listed but sent too recently to rule out (asked again next run);"
                " {} release event(s) handed to delivery",
                report.released,
                report.quarantined,
                report.not_released,
                report.unconfirmed,
                report.events,
            )
        return report

    def _verify(self, qrs: Any, report: RecoveryReport) -> None:
        from agent.qrs import QrsAuthError, QrsConnectionError, QrsTimeout, QrsTlsError

        unreachable = (QrsConnectionError, QrsTimeout, QrsTlsError, QrsAuthError)
        groups: dict[tuple[str, str], list[JournalRecord]] = {}
        for record in self.records(OPEN):
            key = (record.entry.allocation_id.lower(), record.entry.license_type)
            groups.setdefault(key, []).append(record)
        remaining = sum(len(rows) for rows in groups.values())
        for rows in groups.values():
            entry = rows[-1].entry
            try:
                # One question per allocation, however many of this agent's DELETEs it had.
                found = qrs.get_allocation(entry.resource, entry.allocation_id)
            except unreachable as exc:
                # QRS is down: asking about the others would only fail the same way.
                report.pending += remaining
                logger.info(
                    "release journal: {} delete(s) of an earlier run still to verify; QRS"
                    " cannot be asked now ({}); trying again before the next run",
                    remaining,
                    exc,
                )
                return
            except Exception as exc:  # a malformed answer about this one: ask again next time
                report.pending += len(rows)
                remaining -= len(rows)
                report.errors.append(
                    f"cannot verify the DELETE of {entry.license_type} allocation"
                    f" {entry.allocation_id} ({entry.user}): {type(exc).__name__}: {exc}"
                )
                logger.warning("release journal: {}", report.errors[-1])
                continue
            remaining -= len(rows)
            with self._lock:
                self._write(self._settle(rows, found, report), durable=True)

    def _settle(
        self, rows: list[JournalRecord], found: Any, report: RecoveryReport
    ) -> list[tuple[str, Sequence[Any]]]:
        """The updates for one allocation's open rows, given what QRS answered about it.

        Gone (or quarantined): the newest of these DELETEs gets the allocation's one event,
        unless the journal already holds one. Still listed: a DELETE sent within the landing
        window may still land (``unconfirmed``, asked again next run); an older one was not
        applied.
        """
        now = self._clock()
        now_text = now.astimezone(UTC).isoformat()
        gone = found is None
        quarantined = isinstance(found, Mapping) and found.get("quarantined") is True
        if gone or quarantined:
            newest = rows[-1]
            recorded = [
                r
                for r in self._rows_of(newest.entry.allocation_id, newest.entry.license_type)
                if r.state in EVENT_STATES
            ]
            if recorded:
                why = f"the journal already holds this allocation's release (row {recorded[0].row_id})"
                return [_set_state(r, NOT_RELEASED, why, now_text) for r in rows]
            if gone:
                report.released += 1
                state, why = RELEASED, "verified later: QRS no longer lists the allocation"
            else:
                report.quarantined += 1
                state, why = QUARANTINED, "verified later: QRS quarantined the allocation"
            other = "another DELETE of this agent removed the allocation"
            return [
                _set_state(newest, state, why, now_text, reset_event=True),
                *(_set_state(r, NOT_RELEASED, other, now_text) for r in rows[:-1]),
            ]
        updates = []
        for r in rows:
            if now - r.entry.at > self.landing_window:
                report.not_released += 1
                why = "verified later: QRS still lists the allocation"
                updates.append(_set_state(r, NOT_RELEASED, why, now_text))
                continue
            report.unconfirmed += 1
            if r.state in UNRESOLVED:
                why = (
                    "QRS still lists the allocation, but the DELETE may still land: asked"
                    " again at the next run"
                )
                updates.append(_set_state(r, UNCONFIRMED, why, now_text))
        return updates

    def send_events(self, delivery: EventSink, static_tags: Mapping[str, str]) -> int:
        """Hand every release event not handed over yet to ``delivery``; never raises.

        Returns how many were handed over (a failure is logged; they wait for the next run).
        """
        report = RecoveryReport()
        try:
            self._send_events(delivery, static_tags, report)
        except Exception as exc:
            logger.error("release journal: cannot send pending release events: {}", exc)
        return report.events

    def _send_events(
        self, delivery: EventSink, static_tags: Mapping[str, str], report: RecoveryReport
    ) -> None:
        records = self.records(EVENT_STATES, unsent_only=True)
        if not records:
            return
        events = [release_event(r.entry, r.state == QUARANTINED, static_tags) for r in records]
        try:
            delivery.deliver(events)
        except Exception as exc:
            report.errors.append(
                f"{len(events)} release event(s) of an earlier run could not be handed to"
                f" delivery: {type(exc).__name__}: {exc}; trying again before the next run"
            )
            logger.error("release journal: {}", report.errors[-1])
            return
        if not isinstance(delivery, JournaledSink):
            self.mark_events(events)
        report.events += len(events)

    # ----------------------------------------------------------------- reading

    def records(
        self, states: Sequence[str] | None = None, *, unsent_only: bool = False
    ) -> list[JournalRecord]:
        """Rows in the order they were written, optionally only those in ``states`` (and,
        with ``unsent_only``, only those whose event was not handed over yet)."""
        query = f"SELECT {_COLUMNS} FROM release_journal WHERE 1"
        params: tuple[Any, ...] = ()
        if states is not None:
            query += f" AND state IN ({_marks(states)})"
            params = tuple(states)
        if unsent_only:
            query += " AND event_sent = 0"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [_record(row) for row in rows]

    def _rows_of(self, allocation_id: str, license_type: str) -> list[JournalRecord]:
        """Every row of one allocation, oldest first; the caller holds the lock."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM release_journal WHERE allocation_id = ? COLLATE NOCASE"
            " AND license_type = ? ORDER BY id",
            (allocation_id, license_type),
        ).fetchall()
        return [_record(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Rows per state."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM release_journal GROUP BY state"
            ).fetchall()
        return {state: int(n) for state, n in rows}

    # ----------------------------------------------------------------- housekeeping

    def prune(self) -> int:
        """Delete finished rows older than ``keep_days``; unresolved ones are never deleted."""
        cutoff = (self._clock() - timedelta(days=self.keep_days)).astimezone(UTC).isoformat()
        with self._lock:
            return self._write(
                [
                    (
                        "DELETE FROM release_journal WHERE updated < ?"
                        f" AND state NOT IN ({_marks(OPEN)})"
                        f" AND NOT (state IN ({_marks(EVENT_STATES)}) AND event_sent = 0)",
                        (cutoff, *OPEN, *EVENT_STATES),
                    )
                ],
                durable=False,
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- plumbing

    def _now_text(self) -> str:
        return self._clock().astimezone(UTC).isoformat()

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]], *, durable: bool) -> int:
        """Run ``statements`` in one transaction; the caller holds the lock."""
        # FULL fsyncs the WAL at every commit (an intent must survive a power cut); NORMAL
        # survives a killed process, which is all an outcome or a mark needs.
        changed = 0
        try:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            with sqlite_transaction(self._db):
                for sql, params in statements:
                    changed += self._db.execute(sql, tuple(params)).rowcount
        except sqlite3.Error as exc:
            raise JournalError(
                f"cannot write the release journal {self.path or ':memory:'}:"
                f" {describe_sqlite_error(exc)} (Butler.licenseAgent.stateDir)"
            ) from exc
        return changed


class JournaledSink:
    """A delivery that tells the journal which release events the outbox now holds."""

    def __init__(self, delivery: EventSink, journal: SqliteJournal) -> None:
        self.delivery = delivery
        self.journal = journal

    def deliver(self, points: Sequence[Point]) -> Any:
        result = self.delivery.deliver(points)
        # Only after deliver() returned: the outbox stores points before it tries any
        # destination, so from here on the event cannot be lost.
        self.journal.mark_events(points)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.delivery, name)


@contextmanager
def journaled(
    config: AgentConfig,
    site: SiteConfig,
    qrs: Any,
    delivery: EventSink | None,
    journal: ReleaseJournal | None = None,
) -> Iterator[tuple[ReleaseJournal, EventSink | None]]:
    """The journal and the delivery a release run on ``site`` must use, after recovery.

    Opens the site's :class:`SqliteJournal` in ``config.state_dir`` (unless ``journal`` is
    given), settles what an earlier run left (:meth:`SqliteJournal.recover`) and wraps
    ``delivery`` so that the journal learns which events the outbox holds. Call it under the
    site's release lock. Raises :class:`JournalError` when the journal cannot be opened: a
    release run without its journal must not start.
    """
    own = journal is None
    active = SqliteJournal.for_site(config.state_dir, site.name) if journal is None else journal
    try:
        sink = delivery
        if isinstance(active, SqliteJournal):
            sink = active.sink(delivery) if delivery is not None else None
            active.recover(qrs, sink, site.static_tags(FEATURE_LICENSE_RELEASE))
        yield active, sink
        if isinstance(active, SqliteJournal) and sink is not None:
            # A DELETE of a dead run that this run found had landed late (its own DELETE got
            # a 404) is released now: hand its event over now, not one run later.
            active.send_events(sink, site.static_tags(FEATURE_LICENSE_RELEASE))
    finally:
        if own and isinstance(active, SqliteJournal):
            active.close()


def run_counts(db: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Release journal rows per state of each of these runs, read through ``db`` (a connection
    to the journal file; it only reads): a run that sent no DELETE, or a file without the
    journal yet, gives nothing."""
    if (
        not run_ids
        or not db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'release_journal'"
        ).fetchone()
    ):
        return {}
    rows = db.execute(
        "SELECT run_id, state, COUNT(*) FROM release_journal"
        f" WHERE run_id IN ({_marks(run_ids)}) GROUP BY run_id, state",
        tuple(run_ids),
    ).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for run_id, state, n in rows:
        counts.setdefault(run_id, {})[state] = int(n)
    return counts


_COLUMNS = (
    "id, site, license_type, resource, allocation_id, user, days_since_last_use, last_used,"
    " at_us, state, detail, event_sent, run_id, owner_id"
)


def _set_state(
    record: JournalRecord, state: str, detail: str, now: str, *, reset_event: bool = False
) -> tuple[str, Sequence[Any]]:
    """Move one row on, only from the state it was read in (a concurrent change wins)."""
    event = ", event_sent = 0" if reset_event else ""
    return (
        f"UPDATE release_journal SET state = ?, detail = ?, updated = ?{event}"
        " WHERE id = ? AND state = ?",
        (state, detail[:500], now, record.row_id, record.state),
    )


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _record(row: Sequence[Any]) -> JournalRecord:
    (row_id, site, license_type, resource, allocation_id, user, days, last_used, at_us,
     state, detail, event_sent, run_id, owner_id) = row  # fmt: skip
    entry = JournalEntry(
        site=site,
        license_type=license_type,
        resource=resource,
        allocation_id=allocation_id,
        user=user,
        days_since_last_use=int(days),
        last_used=parse_qrs_time(last_used) if last_used else None,
        at=_from_us(int(at_us)),
        run_id=run_id,
        owner_id=owner_id,
    )
    return JournalRecord(int(row_id), entry, state, detail, bool(event_sent))


__all__ = [
    "JournalError",
    "JournalRecord",
    "JournaledSink",
    "RecoveryReport",
    "SqliteJournal",
    "journal_path",
    "journaled",
    "run_counts",
]
