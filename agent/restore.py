"""Undo a release: give released allocations back to the same users (``release restore``).

What a run released is in the site's release journal (:mod:`agent.journal`): each row has the
run id, the license type, the owner's name and QRS user id. A restore selects rows by run id,
user and/or time, checks with QRS that each user still exists and holds no allocation of that
type, and allocates it again with ``POST /qrs/license/<type>`` (:meth:`agent.qrs.QrsClient.
create_allocation`). Within the 7-day quarantine QRS reinstates the same allocation without
using a license; after that a new allocation needs an available license, and QRS refuses when
none is left: that user's restore is ``refused`` with QRS's answer.

Restores are journaled like releases, in a ``restore_journal`` table of the same file. Each
POST is recorded (durably) before it is sent and its outcome after::

    intent --POST answered--> restored | reinstated | refused | failed
    intent | failed --the next restore asks QRS--> restored | reinstated | not_restored

A POST is never repeated blindly: after a crash or a lost answer the next restore first lists
the user's allocations of that type; one that is not in quarantine means the POST was applied.
A release row whose restore is ``restored`` or ``reinstated`` is never restored again. Each
restore sends one ``qlik_sense_license_restore`` event per allocation given back, with the
POST's moment as its time, so an event sent again after a crash overwrites itself.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from agent.journal import (
    EVENT_STATES,
    EventSink,
    JournalEntry,
    JournalError,
    SqliteJournal,
    journal_path,
)
from agent.models import (
    FEATURE_LICENSE_RELEASE,
    MEASUREMENT_RESTORE,
    UTC,
    Allocation,
    Decoded,
    Point,
    QrsDataError,
    format_qrs_time,
)
from agent.release import new_run_id
from agent.runs import DRY_RUN, RESTORE, RESTORE_DRY_RUN, RunRecord
from agent.statedir import sqlite_errors, sqlite_transaction

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Restore journal states.
INTENT = "intent"
RESTORED = "restored"
REINSTATED = "reinstated"
REFUSED = "refused"
FAILED = "failed"
NOT_RESTORED = "not_restored"
#: POSTs whose outcome is unknown: the next restore asks QRS before anything else.
UNRESOLVED = (INTENT, FAILED)
#: Allocations given back: their release rows are never restored again.
DONE = (RESTORED, REINSTATED)

# Decisions in the report, beyond the journal states.
WOULD_RESTORE = "would_restore"
WOULD_REINSTATE = "would_reinstate"
SKIPPED = "skipped"
ALREADY_RESTORED = "already_restored"
DECISIONS = (
    RESTORED,
    REINSTATED,
    WOULD_RESTORE,
    WOULD_REINSTATE,
    REFUSED,
    FAILED,
    SKIPPED,
    ALREADY_RESTORED,
)

#: The overview block of each license type, for the available count.
_OVERVIEW_KEYS = {"professional": "professionalAccess", "analyzer": "analyzerAccess"}


class RestoreQrs(Protocol):
    """What a restore needs from :class:`agent.qrs.QrsClient`."""

    def list_allocations(
        self, resource: str, filter: str | None = None, *, license_type: str
    ) -> Decoded[Allocation]: ...

    def get_users(self, ids: Iterable[str]) -> Any: ...

    def create_allocation(self, resource: str, user_id: str) -> Mapping[str, Any]: ...

    def access_type_overview(self) -> Mapping[str, Any]: ...


class RestoreUsageError(ValueError):
    """Nothing can be selected as asked (no selector, an unknown run): exit code 2."""


@dataclass(frozen=True)
class Selection:
    """Which releases to give back; the conditions all apply (and)."""

    run_id: str | None = None
    user: str | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if not (self.run_id or self.user or self.since):
            raise RestoreUsageError(
                "name what to restore: --run ID (see `license-agent release runs`), --user"
                " 'DIR\\id' and/or --since DATE"
            )
        if self.user and "\\" not in self.user:
            # Most likely `--user CORP\jdoe` without quotes: the shell ate the backslash, and
            # the restore would select nothing without saying why.
            raise RestoreUsageError(
                f"--user {self.user!r} names no user directory: write the user as"
                " 'DIRECTORY\\id' in single quotes (a shell drops an unquoted backslash)"
            )

    def matches(self, entry: JournalEntry) -> bool:
        return (
            (not self.run_id or entry.run_id == self.run_id)
            and (not self.user or entry.user.casefold() == self.user.casefold())
            and (self.since is None or entry.at >= self.since)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "user": self.user,
            "since": format_qrs_time(self.since) if self.since else None,
        }


@dataclass
class RestoreDecision:
    """What became of one released allocation."""

    release: JournalEntry
    decision: str
    reason: str = ""
    #: The allocation the user holds now (new, or the reinstated one).
    allocation_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        directory, _, user_id = self.release.user.partition("\\")
        return {
            "license_type": self.release.license_type,
            "released_allocation_id": self.release.allocation_id,
            "user_directory": directory,
            "user_id": user_id,
            "owner_id": self.release.owner_id,
            "release_run_id": self.release.run_id,
            "released": format_qrs_time(self.release.at),
            "decision": self.decision,
            "reason": self.reason,
            "allocation_id": self.allocation_id or None,
        }


@dataclass
class RestoreResult:
    """The outcome of one restore on one site; its report and console table come from it."""

    run_id: str
    site: str
    started: datetime
    dry_run: bool
    selection: Selection
    finished: datetime | None = None
    decisions: list[RestoreDecision] = field(default_factory=list)
    events: list[Point] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: What settling an earlier, interrupted restore found: state -> count.
    recovered: dict[str, int] = field(default_factory=dict)
    #: The journal rows of :attr:`events`, marked once the delivery holds them.
    event_rows: list[int] = field(default_factory=list)
    #: Why the selection names nothing to give back, when the reason is known (``--run`` of
    #: a dry run or of a restore), else ``None``.
    note: str | None = None

    def counts(self) -> dict[str, int]:
        found = {name: 0 for name in DECISIONS}
        for decision in self.decisions:
            found[decision.decision] = found.get(decision.decision, 0) + 1
        return found

    @property
    def exit_code(self) -> int:
        """0 when every selected allocation is back (or skipped with a reason); 1 when some
        were refused or failed, or the restore could not see everything."""
        counts = self.counts()
        return 1 if (counts[REFUSED] or counts[FAILED] or self.errors) else 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def note_error(self, text: str) -> None:
        """Add ``text`` to :attr:`errors` once: a cause many allocations share (a full disk)
        is said once, not once per allocation."""
        if text not in self.errors:
            self.errors.append(text)
            logger.error("{}", text)

    @property
    def error(self) -> str | None:
        """What needs attention (the job's result and log say it), or ``None``."""
        counts = self.counts()
        parts = [f"{counts[state]} {state}" for state in (REFUSED, FAILED) if counts[state]]
        return "; ".join([*self.errors, *parts]) or None

    def run_record(self) -> RunRecord:
        counts = {k: v for k, v in self.counts().items() if v}
        outcome = "ok" if self.exit_code == 0 else "needs attention"
        return RunRecord(
            self.run_id,
            self.site,
            RESTORE_DRY_RUN if self.dry_run else RESTORE,
            self.started,
            self.finished,
            counts,
            outcome,
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "restore": {
                "id": self.run_id,
                "site": self.site,
                "started": format_qrs_time(self.started),
                "finished": format_qrs_time(self.finished) if self.finished else None,
                "dry_run": self.dry_run,
                "selection": self.selection.to_dict(),
                "counts": self.counts(),
                "recovered": dict(self.recovered),
                "errors": list(self.errors),
                "note": self.note,
                "events": len(self.events),
            },
            "decisions": [d.to_dict() for d in self.decisions],
        }


# --------------------------------------------------------------------------- the journal


@dataclass(frozen=True)
class RestoreRecord:
    row_id: int
    restore_run_id: str
    release: JournalEntry
    state: str
    allocation_id: str
    detail: str
    at: datetime
    event_sent: bool


class RestoreJournal:
    """The ``restore_journal`` table, in the site's release journal file. Thread-safe.

    Raises :class:`~agent.journal.JournalError` naming the file and the cause (a full disk, a
    read-only folder) when it cannot be opened or written.
    """

    def __init__(self, path: Path | str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite_errors("open the restore journal", self.path, JournalError):
            self._open()

    def _open(self) -> None:
        self._db = sqlite3.connect(
            str(self.path), timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS restore_journal (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                restore_run_id TEXT NOT NULL,
                release_run_id TEXT NOT NULL,
                site TEXT NOT NULL,
                license_type TEXT NOT NULL,
                resource TEXT NOT NULL,
                released_allocation_id TEXT NOT NULL,
                released_at_us INTEGER NOT NULL,  -- identifies the release row it undoes
                user TEXT NOT NULL,
                owner_id TEXT NOT NULL,
                days_since_last_use INTEGER NOT NULL,
                at_us INTEGER NOT NULL,           -- the POST's time = the event's time
                at TEXT NOT NULL,
                state TEXT NOT NULL,
                allocation_id TEXT NOT NULL DEFAULT '',
                detail TEXT NOT NULL DEFAULT '',
                event_sent INTEGER NOT NULL DEFAULT 0,
                updated TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS restore_journal_by_release
                ON restore_journal (released_allocation_id COLLATE NOCASE, license_type);
            """
        )

    @classmethod
    def for_site(cls, state_dir: Path, site: str) -> RestoreJournal:
        return cls(journal_path(state_dir, site))

    def intent(self, restore_run_id: str, release: JournalEntry, at: datetime) -> int:
        """Record a POST about to be sent; durable (fsync) before this returns. Its row id."""
        with self._lock, self._writing():
            self._db.execute("PRAGMA synchronous=FULL")
            with sqlite_transaction(self._db):
                cursor = self._db.execute(
                    "INSERT INTO restore_journal (restore_run_id, release_run_id, site,"
                    " license_type, resource, released_allocation_id, released_at_us, user,"
                    " owner_id, days_since_last_use, at_us, at, state, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        restore_run_id,
                        release.run_id,
                        release.site,
                        release.license_type,
                        release.resource,
                        release.allocation_id,
                        _to_us(release.at),
                        release.user,
                        release.owner_id,
                        int(release.days_since_last_use),
                        _to_us(at),
                        at.astimezone(UTC).isoformat(),
                        INTENT,
                        self._now(),
                    ),
                )
            return int(cursor.lastrowid or 0)

    def outcome(self, row_id: int, state: str, allocation_id: str = "", detail: str = "") -> None:
        """Record what the POST did (or what QRS showed it did)."""
        with self._lock, self._writing():
            # Not fsynced: losing it on power loss only means the next restore asks QRS again.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "UPDATE restore_journal SET state = ?, allocation_id = ?, detail = ?, updated = ?"
                " WHERE id = ?",
                (state, allocation_id, detail[:500], self._now(), row_id),
            )

    def mark_events(self, row_ids: Sequence[int]) -> None:
        with self._lock, self._writing():
            self._db.executemany(
                "UPDATE restore_journal SET event_sent = 1 WHERE id = ?", [(i,) for i in row_ids]
            )

    def records(
        self, states: Sequence[str] | None = None, *, unsent_only: bool = False
    ) -> list[RestoreRecord]:
        query = (
            "SELECT id, restore_run_id, release_run_id, site, license_type, resource,"
            " released_allocation_id, released_at_us, user, owner_id, days_since_last_use,"
            " at_us, state, allocation_id, detail, event_sent FROM restore_journal WHERE 1"
        )
        params: tuple[Any, ...] = ()
        if states is not None:
            query += f" AND state IN ({','.join('?' * len(states))})"
            params = tuple(states)
        if unsent_only:
            query += " AND event_sent = 0"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [_restore_record(row) for row in rows]

    def done(self) -> set[tuple[str, str, int]]:
        """The release rows already given back: (type, lower-case allocation id, released at)."""
        return {
            (r.release.license_type, r.release.allocation_id.lower(), _to_us(r.release.at))
            for r in self.records(DONE)
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RestoreJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat()

    def _writing(self) -> AbstractContextManager[None]:
        return sqlite_errors("write the restore journal", self.path, JournalError)


def _to_us(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // _MICROSECOND


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _restore_record(row: Sequence[Any]) -> RestoreRecord:
    (row_id, restore_run_id, release_run_id, site, license_type, resource, released_id,
     released_at_us, user, owner_id, days, at_us, state, allocation_id, detail,
     event_sent) = row  # fmt: skip
    release = JournalEntry(
        site=site,
        license_type=license_type,
        resource=resource,
        allocation_id=released_id,
        user=user,
        days_since_last_use=int(days),
        last_used=None,
        at=_from_us(int(released_at_us)),
        run_id=release_run_id,
        owner_id=owner_id,
    )
    return RestoreRecord(
        int(row_id),
        restore_run_id,
        release,
        state,
        allocation_id,
        detail,
        _from_us(int(at_us)),
        bool(event_sent),
    )


# --------------------------------------------------------------------------- events


def restore_event(
    release: JournalEntry,
    allocation_id: str,
    reinstated: bool,
    restore_run_id: str,
    at: datetime,
    static_tags: Mapping[str, str],
) -> Point:
    """The ``qlik_sense_license_restore`` point for one allocation given back.

    Tags as the release event's (static tags first; ``license_type`` and ``user`` win).
    """
    return Point(
        measurement=MEASUREMENT_RESTORE,
        tags={**static_tags, "license_type": release.license_type, "user": release.user},
        fields={
            "allocation_id": allocation_id,
            "released_allocation_id": release.allocation_id,
            "reinstated": reinstated,
            "run_id": restore_run_id,
            "release_run_id": release.run_id,
        },
        time=at,
        feature=FEATURE_LICENSE_RELEASE,
    )


# --------------------------------------------------------------------------- the restore


def run_restore(
    site: Any,
    qrs: RestoreQrs,
    release_journal: SqliteJournal,
    journal: RestoreJournal,
    selection: Selection,
    *,
    dry_run: bool = False,
    delivery: EventSink | None = None,
    clock: Callable[[], datetime] | None = None,
    run_id: str | None = None,
    known_run: Callable[[str], RunRecord | None] | None = None,
) -> RestoreResult:
    """Give the selected releases of ``site`` back. Call it under the site's release lock
    (:func:`agent.jobs.run_restore_job` does).

    :param site: the :class:`agent.config.SiteConfig` (its name and static tags).
    :param release_journal: the site's release journal: what was released, by whom, when.
    :param journal: where each POST is recorded before and after it is sent.
    :param known_run: the run log's record of a run id, or ``None`` (for a clear message when
        the selected run released nothing: a dry run, a restore).
    :raises RestoreUsageError: when ``selection.run_id`` names no run this site knows.
    """
    clock = clock or (lambda: datetime.now(UTC))
    result = RestoreResult(run_id or new_run_id(), site.name, clock(), dry_run, selection)
    static_tags = site.static_tags(FEATURE_LICENSE_RELEASE)
    logger.info(
        "restore run {} on {}{}: {}",
        result.run_id,
        site.name,
        " (dry run)" if dry_run else "",
        selection.to_dict(),
    )
    pending = _settle_earlier_restores(qrs, journal, delivery, static_tags, result)
    chosen = _selected_releases(release_journal, selection, site.name, known_run, result)
    latest = _one_per_user(chosen, journal.done(), pending, result)
    candidates = _check_users(latest, qrs, result)
    _give_back(candidates, qrs, journal, result, clock, static_tags)
    _deliver_events(journal, delivery, result)
    result.finished = clock()
    counts = {k: v for k, v in result.counts().items() if v}
    logger.info("restore run {} on {}: {}", result.run_id, site.name, counts or "nothing selected")
    return result


def _settle_earlier_restores(
    qrs: RestoreQrs,
    journal: RestoreJournal,
    delivery: EventSink | None,
    static_tags: Mapping[str, str],
    result: RestoreResult,
) -> set[tuple[str, str]]:
    """Settle what an interrupted restore left (see :func:`_settle`) and send the restore
    events it did not hand over. Returns the releases whose earlier POST is still unknown."""
    pending = _settle(qrs, journal, result)
    if delivery is not None:
        _send_pending_events(journal, delivery, static_tags, result)
    return pending


def _selected_releases(
    release_journal: SqliteJournal,
    selection: Selection,
    site: str,
    known_run: Callable[[str], RunRecord | None] | None,
    result: RestoreResult,
) -> list[JournalEntry]:
    """The released (or quarantined) allocations of the journal that ``selection`` matches.

    :raises RestoreUsageError: ``--run`` names a run neither the journal nor the run log knows.
    """
    released = [r.entry for r in release_journal.records(EVENT_STATES)]
    chosen = [entry for entry in released if selection.matches(entry)]
    unknown_run = bool(selection.run_id) and not any(e.run_id == selection.run_id for e in released)
    record = known_run(str(selection.run_id)) if unknown_run and known_run else None
    if record is not None:
        # Known, yet nothing of it is in the journal: say why instead of "nothing selected".
        result.note = f"run {selection.run_id} released nothing: " + (
            "it was a dry run, so there is nothing to give back"
            if record.kind == DRY_RUN
            else "it is a restore, not a release run; name the release run it gave back"
            if record.kind in (RESTORE, RESTORE_DRY_RUN)
            else "there is nothing to give back"
        )
    elif unknown_run:
        raise RestoreUsageError(
            f"no run {selection.run_id} on {site} in the release journal (see"
            " `license-agent release runs`; the journal keeps released allocations"
            " 30 days)"
        )
    return chosen


def _one_per_user(
    chosen: list[JournalEntry],
    done: set[tuple[str, str, int]],
    pending: set[tuple[str, str]],
    result: RestoreResult,
) -> list[JournalEntry]:
    """The releases to give back: not restored already, no earlier POST still unknown, and
    per user and type only the latest release. The others are decided (skipped) here."""
    latest: dict[tuple[str, str], JournalEntry] = {}
    for entry in chosen:
        key = (entry.license_type, entry.allocation_id.lower(), _to_us(entry.at))
        if key in done:
            result.decisions.append(
                RestoreDecision(entry, ALREADY_RESTORED, "an earlier restore gave it back")
            )
            continue
        if (entry.license_type, entry.allocation_id.lower()) in pending:
            result.decisions.append(
                RestoreDecision(
                    entry,
                    SKIPPED,
                    "an earlier restore of it was interrupted and QRS could not be asked"
                    " whether it was applied; run the restore again when QRS answers",
                )
            )
            continue
        owner = (entry.license_type, entry.owner_id.lower() or entry.user.casefold())
        earlier = latest.get(owner)
        if earlier is not None:
            older, newer = sorted((earlier, entry), key=lambda e: e.at)
            result.decisions.append(
                RestoreDecision(
                    older,
                    SKIPPED,
                    "the same user's allocation was released again later; that one is restored",
                )
            )
            latest[owner] = newer
        else:
            latest[owner] = entry
    return list(latest.values())


def _give_back(
    candidates: list[JournalEntry],
    qrs: RestoreQrs,
    journal: RestoreJournal,
    result: RestoreResult,
    clock: Callable[[], datetime],
    static_tags: Mapping[str, str],
) -> None:
    """Decide each candidate by what its user holds now: skipped (holds one already), what a
    dry run would do, or restored with one journaled POST."""
    holdings = _current_allocations(candidates, qrs, result)
    available = _available(qrs) if candidates else {}
    for entry in candidates:
        held = holdings.get((entry.license_type, entry.owner_id.lower()))
        if held is None:  # the listing failed: decided in _current_allocations
            continue
        active = [a for a in held if not a.quarantined]
        quarantined = [a for a in held if a.quarantined]
        if active:
            result.decisions.append(
                RestoreDecision(
                    entry,
                    SKIPPED,
                    f"the user already holds a {entry.license_type} allocation ({active[0].id})",
                    active[0].id,
                )
            )
        elif result.dry_run:
            result.decisions.append(_would(entry, quarantined, available))
        else:
            result.decisions.append(
                _restore_one(
                    entry, quarantined, available, qrs, journal, result, clock, static_tags
                )
            )


def _deliver_events(
    journal: RestoreJournal, delivery: EventSink | None, result: RestoreResult
) -> None:
    """Hand this restore's events to the delivery; the journal notes it once it holds them
    (else they are sent before the next restore)."""
    if not result.events or delivery is None:
        return
    try:
        delivery.deliver(result.events)
    except Exception as exc:
        result.errors.append(
            f"restore events could not be handed to delivery: {type(exc).__name__}: {exc};"
            " they are sent before the next restore"
        )
        logger.error("{}", result.errors[-1])
    else:
        _mark_events(journal, result, result.event_rows)


def _mark_events(journal: RestoreJournal, result: RestoreResult, row_ids: list[int]) -> None:
    try:
        journal.mark_events(row_ids)
    except JournalError as exc:
        # Delivered but not noted: sent once more later, where each overwrites itself.
        result.note_error(f"{exc}; the restore events it could not note are sent again")


def _settle(
    qrs: RestoreQrs, journal: RestoreJournal, result: RestoreResult
) -> set[tuple[str, str]]:
    """Ask QRS what became of POSTs whose outcome is unknown. Returns the (type, released id)
    of those it could not settle: they are not tried again this time."""
    from agent.qrs import is_guid

    pending: set[tuple[str, str]] = set()
    for record in journal.records(UNRESOLVED):
        release = record.release
        try:
            if not is_guid(release.owner_id):  # goes into a filter: a GUID or nothing
                raise ValueError(f"the journal's user id {release.owner_id[:60]!r} is not a GUID")
            held = qrs.list_allocations(
                release.resource,
                f"user.id eq {release.owner_id}",
                license_type=release.license_type,
            )
            if held.unreadable:
                raise QrsDataError(
                    f"QRS returned allocation data that cannot be read: {held.unreadable[0].reason}"
                )
        except Exception as exc:
            pending.add((release.license_type, release.allocation_id.lower()))
            result.errors.append(
                f"cannot verify an interrupted restore of {release.user} ({release.license_type}):"
                f" {type(exc).__name__}: {exc}"
            )
            continue
        active = [a for a in held.valid if not a.quarantined]
        if active:
            new_id = active[0].id
            state = REINSTATED if new_id.lower() == release.allocation_id.lower() else RESTORED
            why = "verified later: QRS lists it for the user"
        else:
            new_id, state, why = "", NOT_RESTORED, "verified later: the POST was not applied"
        try:
            journal.outcome(record.row_id, state, new_id, why)
        except JournalError as exc:  # still open: not tried again before it is recorded
            pending.add((release.license_type, release.allocation_id.lower()))
            result.note_error(str(exc))
            continue
        result.recovered[state] = result.recovered.get(state, 0) + 1
    if result.recovered:
        logger.warning(
            "restore journal: an earlier restore was interrupted; QRS shows {}",
            result.recovered,
        )
    return pending


def _send_pending_events(
    journal: RestoreJournal,
    delivery: EventSink,
    static_tags: Mapping[str, str],
    result: RestoreResult,
) -> None:
    records = journal.records(DONE, unsent_only=True)
    if not records:
        return
    events = [
        restore_event(
            r.release, r.allocation_id, r.state == REINSTATED, r.restore_run_id, r.at, static_tags
        )
        for r in records
    ]
    try:
        delivery.deliver(events)
    except Exception as exc:
        result.errors.append(
            f"{len(events)} restore event(s) of an earlier restore could not be handed to"
            f" delivery: {type(exc).__name__}: {exc}"
        )
        return
    _mark_events(journal, result, [r.row_id for r in records])
    result.recovered["events"] = len(events)


def _check_users(
    entries: list[JournalEntry], qrs: RestoreQrs, result: RestoreResult
) -> list[JournalEntry]:
    """The entries whose user still exists; the others are skipped with the reason."""
    known = [e for e in entries if e.owner_id]
    for entry in entries:
        if not entry.owner_id:
            result.decisions.append(
                RestoreDecision(
                    entry,
                    SKIPPED,
                    "the journal does not hold the user's QRS id (the allocation of a deleted"
                    " user, or released by an older agent); allocate it in the QMC",
                )
            )
    if not known:
        return []
    try:
        fetched = qrs.get_users(sorted({e.owner_id.lower() for e in known}))
        failed = {k.lower(): v for k, v in fetched.failed.items()}
        missing = {k.lower() for k in fetched.missing}
    except Exception as exc:
        failed = {e.owner_id.lower(): f"{type(exc).__name__}: {exc}" for e in known}
        missing = set()
    ready = []
    for entry in known:
        key = entry.owner_id.lower()
        if key in missing:
            result.decisions.append(
                RestoreDecision(entry, SKIPPED, "the user was deleted since (QRS has no such user)")
            )
        elif key in failed:
            result.decisions.append(
                RestoreDecision(entry, SKIPPED, f"the user could not be looked up: {failed[key]}")
            )
        else:
            ready.append(entry)
    return ready


def _current_allocations(
    entries: list[JournalEntry], qrs: RestoreQrs, result: RestoreResult
) -> dict[tuple[str, str], list[Allocation]]:
    """Each user's allocations of the type now, by (type, lower-case user id), in one request
    per 50 users and type. A failed listing, or one holding an allocation QRS answered in a
    shape that cannot be read, skips those users: what they hold is unknown."""
    found: dict[tuple[str, str], list[Allocation]] = {}
    by_type: dict[tuple[str, str], list[JournalEntry]] = {}
    for entry in entries:
        by_type.setdefault((entry.license_type, entry.resource), []).append(entry)
    for (license_type, resource), group in by_type.items():
        ids = sorted({e.owner_id.lower() for e in group})
        try:
            listed: list[Allocation] = []
            for start in range(0, len(ids), 50):
                clause = " or ".join(f"user.id eq {i}" for i in ids[start : start + 50])
                listing = qrs.list_allocations(resource, clause, license_type=license_type)
                if listing.unreadable:
                    raise QrsDataError(
                        "QRS returned allocation data that cannot be read:"
                        f" {listing.unreadable[0].reason}"
                    )
                listed.extend(listing.valid)
        except Exception as exc:
            why = f"could not list the user's current {license_type} allocations: {exc}"
            result.errors.append(why)
            for entry in group:
                result.decisions.append(RestoreDecision(entry, SKIPPED, why))
            continue
        for user_id in ids:
            found[(license_type, user_id)] = []
        for item in listed:
            if item.user is not None and (license_type, item.user.id.lower()) in found:
                found[(license_type, item.user.id.lower())].append(item)
    return found


def _available(qrs: RestoreQrs) -> dict[str, int]:
    """Available licenses per type from the overview; empty when it cannot be read."""
    try:
        overview = qrs.access_type_overview()
    except Exception:
        return {}
    counts = {}
    for license_type, key in _OVERVIEW_KEYS.items():
        block = overview.get(key) if isinstance(overview, Mapping) else None
        value = block.get("available") if isinstance(block, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool):
            counts[license_type] = value
    return counts


def _would(
    entry: JournalEntry, quarantined: list[Allocation], available: dict[str, int]
) -> RestoreDecision:
    if quarantined:
        return RestoreDecision(
            entry,
            WOULD_REINSTATE,
            "in quarantine: QRS reinstates it to the same user without using a license",
            quarantined[0].id,
        )
    left = available.get(entry.license_type)
    if left is None:
        why = f"needs an available {entry.license_type} license (the overview could not be read)"
    elif left > 0:
        available[entry.license_type] = left - 1
        why = f"takes one of the {left} available {entry.license_type} licenses"
    else:
        why = f"needs an available {entry.license_type} license, and none is left: QRS will refuse"
    return RestoreDecision(entry, WOULD_RESTORE, why)


def _restore_one(
    entry: JournalEntry,
    quarantined: list[Allocation],
    available: dict[str, int],
    qrs: RestoreQrs,
    journal: RestoreJournal,
    result: RestoreResult,
    clock: Callable[[], datetime],
    static_tags: Mapping[str, str],
) -> RestoreDecision:
    from agent.qrs import QrsError

    at = clock()
    try:
        row_id = journal.intent(result.run_id, entry, at)
    except (JournalError, OSError) as exc:
        result.note_error(f"{exc}; no POST is sent for an allocation it cannot record")
        return RestoreDecision(entry, FAILED, f"not restored, no POST sent: {exc}")
    try:
        answer = qrs.create_allocation(entry.resource, entry.owner_id)
    except QrsError as exc:
        status = getattr(exc, "status", None)
        if status is not None and 400 <= status < 500:
            left = available.get(entry.license_type)
            short = (
                f"no {entry.license_type} license is available (the overview shows {left}); "
                if left == 0 and not quarantined
                else ""
            )
            why = f"{short}QRS refused the allocation: {exc}"
            _record_outcome(journal, result, row_id, REFUSED, "", why)
            logger.error("restore of {} ({}) refused: {}", entry.user, entry.license_type, why)
            return RestoreDecision(entry, REFUSED, why)
        why = (
            f"the POST's outcome is unknown ({type(exc).__name__}: {exc}); the next restore asks"
            " QRS whether it was applied before trying again"
        )
        _record_outcome(journal, result, row_id, FAILED, "", why)
        logger.error("restore of {} ({}) failed: {}", entry.user, entry.license_type, why)
        return RestoreDecision(entry, FAILED, why)
    new_id = str(answer.get("id", ""))
    reinstated = new_id.lower() in {
        entry.allocation_id.lower(),
        *(a.id.lower() for a in quarantined),
    }
    state = REINSTATED if reinstated else RESTORED
    why = (
        "QRS reinstated the quarantined allocation (no license used)"
        if reinstated
        else f"QRS allocated a new {entry.license_type} license"
    )
    if not reinstated and entry.license_type in available:
        available[entry.license_type] -= 1
    _record_outcome(journal, result, row_id, state, new_id, why)
    result.events.append(restore_event(entry, new_id, reinstated, result.run_id, at, static_tags))
    result.event_rows.append(row_id)
    return RestoreDecision(entry, state, why, new_id)


def _record_outcome(
    journal: RestoreJournal,
    result: RestoreResult,
    row_id: int,
    state: str,
    allocation_id: str,
    detail: str,
) -> None:
    """Record what a POST did. When the journal cannot (the disk is full), its row stays an
    intent: the next restore asks QRS what became of the POST instead of sending it again."""
    try:
        journal.outcome(row_id, state, allocation_id, detail)
    except JournalError as exc:
        result.note_error(
            f"{exc}; the next restore asks QRS what became of the POSTs it could not record"
        )


__all__ = [
    "ALREADY_RESTORED",
    "REFUSED",
    "REINSTATED",
    "RESTORED",
    "RestoreDecision",
    "RestoreJournal",
    "RestoreResult",
    "RestoreUsageError",
    "Selection",
    "restore_event",
    "run_restore",
]
