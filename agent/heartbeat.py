"""The heartbeat file: what a monitoring system checks to know the agent is doing its job.

``license-agent run`` writes a small JSON file (``Butler.licenseAgent.heartbeat.file``, by
default ``heartbeat.json`` in the state folder) when it starts, after every job run and when it
stops. For each job it holds the schedule, the last run, the last success and the last failure
with its error, per site too. ``license-agent health`` reads it and exits 0 when every job had
a success recently enough, 1 otherwise, so Nagios, Zabbix, a Windows scheduled task or a
systemd timer can alert without parsing logs. The document::

    {"agent": "sense-license-agent", "version": "0.1.0", "pid": 4242, "host": "sense1",
     "started": "2026-06-01T00:00:00.000Z", "updated": "...", "stopped": null,
     "jobs": {"monitor": {"frequency": "every 6 hours", "last_run": {"started", "finished",
              "ok", "error"}, "last_success": "...", "last_failure": null, "last_error": null,
              "consecutive_failures": 0, "sites": {"sense1": {"last_success", "last_failure",
              "last_error"}}}}}

A job run succeeds when it did its work on every site: the monitor read the license overview
(a destination that is down is not a failure: its points wait in the outbox), the release run
finished without being stopped (safety limit, failed listing, failed deletes). The file is
replaced atomically, so a reader never sees half of it; failing to write it is logged and never
stops a job.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from agent import __version__
from agent.models import UTC, QrsDataError, format_qrs_time, parse_qrs_time

if TYPE_CHECKING:
    from agent.config import AgentConfig

HEARTBEAT_FILE = "heartbeat.json"
#: Added to twice a job's period for the default ``--max-age``: a run's own duration.
GRACE = timedelta(minutes=10)


class HeartbeatError(Exception):
    """The heartbeat file is missing or unreadable; the message says which and why."""


def heartbeat_path(config: AgentConfig) -> Path:
    """``Butler.licenseAgent.heartbeat.file``, else ``heartbeat.json`` in the state folder."""
    settings = getattr(config.agent, "heartbeat", None)
    configured = getattr(settings, "file", None)
    return Path(configured) if configured else config.state_dir / HEARTBEAT_FILE


def heartbeat_enabled(config: AgentConfig) -> bool:
    settings = getattr(config.agent, "heartbeat", None)
    return bool(getattr(settings, "enable", True))


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class JobOutcome:
    """Whether a job run did its work, overall and per site (site -> error, ``None`` = ok)."""

    ok: bool
    error: str | None = None
    sites: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: str) -> JobOutcome:
        return cls(ok=False, error=error)


def _site_error(result: Any) -> str | None:
    """Why one site's run failed, or ``None``: a monitor result's ``error``, or for a release
    result what stopped it (safety limit, failed listing, failed deletes)."""
    if getattr(result, "ok", True):
        return None
    error = getattr(result, "error", None)
    if isinstance(error, str) and error:
        return error
    aborted = getattr(result, "aborted", None)
    parts = ([aborted] if aborted else []) + list(getattr(result, "errors", ()) or ())
    return "; ".join(parts) or "some deletes failed (see the log)"


def job_outcome(result: Any, sites: Sequence[str]) -> JobOutcome:
    """Judge what a job function returned: a list of per-site results (monitor, release and
    collector jobs), each with ``site`` and ``ok``.

    A site of the config with no result did not run (its QRS client could not be set up, its
    release lock was busy, a bug): that is a failure too. A job that returns something else
    succeeded when it returned without raising.
    """
    if not isinstance(result, list | tuple):
        return JobOutcome(ok=True)
    outcome = {str(getattr(item, "site", "")): _site_error(item) for item in result}
    for name in sites:
        outcome.setdefault(name, "the run did not complete on this site (see the log)")
    if not outcome:
        return JobOutcome(ok=False, error="no site to work on (Butler.configQRS or sites)")
    failed = {name: error for name, error in outcome.items() if error}
    error = "; ".join(f"{name}: {why}" for name, why in failed.items()) or None
    return JobOutcome(ok=not failed, error=error, sites=outcome)


# --------------------------------------------------------------------------- writing


def _now() -> datetime:
    return datetime.now(UTC)


class Heartbeat:
    """Keeps the heartbeat document of one running agent and writes it after each change.

    Thread-safe: jobs run in their own threads and report here as they finish.
    """

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _now) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._warned = False
        now = format_qrs_time(clock())
        self.document: dict[str, Any] = {
            "agent": "sense-license-agent",
            "version": __version__,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now,
            "updated": now,
            "stopped": None,
            "jobs": {},
        }

    def started(self, jobs: Mapping[str, str]) -> None:
        """The agent starts with these jobs (name -> schedule text)."""
        with self._lock:
            for name, frequency in jobs.items():
                self.document["jobs"][name] = {
                    "frequency": frequency,
                    "last_run": None,
                    "last_success": None,
                    "last_failure": None,
                    "last_error": None,
                    "consecutive_failures": 0,
                    "sites": {},
                }
            self._write()

    def record(self, job: str, outcome: JobOutcome, started: datetime) -> None:
        """A run of ``job`` that began at ``started`` has ended with ``outcome``."""
        with self._lock:
            finished = format_qrs_time(self._clock())
            entry = self.document["jobs"].setdefault(
                job,
                {"frequency": None, "last_success": None, "last_failure": None, "sites": {}},
            )
            entry["last_run"] = {
                "started": format_qrs_time(started),
                "finished": finished,
                "ok": outcome.ok,
                "error": outcome.error,
            }
            if outcome.ok:
                entry["last_success"] = finished
                entry["consecutive_failures"] = 0
            else:
                entry["last_failure"] = finished
                entry["last_error"] = outcome.error
                entry["consecutive_failures"] = entry.get("consecutive_failures", 0) + 1
            for site, error in outcome.sites.items():
                state = entry["sites"].setdefault(
                    site, {"last_success": None, "last_failure": None, "last_error": None}
                )
                if error is None:
                    state["last_success"] = finished
                else:
                    state["last_failure"] = finished
                    state["last_error"] = error
            self._write()

    def stopped(self) -> None:
        with self._lock:
            self.document["stopped"] = format_qrs_time(self._clock())
            self._write()

    def _write(self) -> None:
        self.document["updated"] = format_qrs_time(self._clock())
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.document, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            # Once: a read-only folder must not add a line to every run's log.
            if not self._warned:
                logger.warning("cannot write the heartbeat file {}: {}", self.path, exc)
                self._warned = True
        else:
            self._warned = False


# --------------------------------------------------------------------------- checking

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}


def parse_duration(text: str) -> timedelta:
    """``2h``, ``90 min``, ``1d 12h``, ``45s``: a positive duration. Raises ValueError."""
    cleaned = text.strip().lower()
    total = 0.0
    position = 0
    for match in _DURATION_RE.finditer(cleaned):
        if cleaned[position : match.start()].strip(" ,"):
            break
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise ValueError(f"{text!r}: unknown unit {match.group(2)!r}; use s, m, h, d or w")
        total += float(match.group(1)) * unit
        position = match.end()
    if not cleaned or position != len(cleaned) or total <= 0:
        raise ValueError(f"{text!r} is not a duration like 2h, 90m, 1d 12h or 45s")
    return timedelta(seconds=total)


def _describe(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def default_max_age(frequency: str | None, now: datetime) -> timedelta | None:
    """Twice the time between two runs of the schedule, plus :data:`GRACE`: one missed or
    failed run is tolerated, two are not. ``None`` when the schedule cannot be read."""
    from agent.schedule import ScheduleError, parse_frequency

    if not frequency:
        return None
    try:
        schedule = parse_frequency(frequency)
    except ScheduleError:
        return None
    first = schedule.next_run(now)
    period = schedule.next_run(first) - first
    return 2 * period + GRACE


def read_heartbeat(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HeartbeatError(
            f"no heartbeat file at {path}: is `license-agent run` running with this config?"
            " (it writes the file at start and after every job run)"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HeartbeatError(f"cannot read the heartbeat file {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), dict):
        raise HeartbeatError(f"{path} is not a license-agent heartbeat file")
    return document


def _time(value: Any) -> datetime | None:
    try:
        return parse_qrs_time(value)
    except QrsDataError:
        return None


@dataclass(frozen=True)
class JobHealth:
    job: str
    ok: bool
    message: str


@dataclass(frozen=True)
class Health:
    ok: bool
    jobs: list[JobHealth]
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "jobs": [{"job": j.job, "ok": j.ok, "message": j.message} for j in self.jobs],
        }


def check_health(
    document: Mapping[str, Any],
    now: datetime,
    max_age: timedelta | None = None,
) -> Health:
    """Judge a heartbeat document at ``now``: one status per job.

    A job is healthy when its latest run succeeded and that success is within ``max_age``
    (default per job: :func:`default_max_age` of its schedule). A job whose latest run failed is
    unhealthy, however recent its last success. A job that has not finished a run yet is
    healthy while the agent started less than ``max_age`` ago. The agent must not have stopped.
    """
    problems = []
    stopped = _time(document.get("stopped"))
    if stopped is not None:
        problems.append(f"the agent stopped at {format_qrs_time(stopped)}")
    started = _time(document.get("started"))
    jobs = document.get("jobs") or {}
    if not jobs:
        problems.append("the heartbeat names no job")
    results = [
        _job_health(name, entry if isinstance(entry, Mapping) else {}, now, started, max_age)
        for name, entry in sorted(jobs.items())
    ]
    return Health(ok=not problems and all(j.ok for j in results), jobs=results, problems=problems)


def _job_health(
    name: str,
    entry: Mapping[str, Any],
    now: datetime,
    started: datetime | None,
    max_age: timedelta | None,
) -> JobHealth:
    allowed = max_age or default_max_age(entry.get("frequency"), now) or timedelta(days=1)
    success = _time(entry.get("last_success"))
    last_run = entry.get("last_run") if isinstance(entry.get("last_run"), Mapping) else {}
    since_success = (
        f"last success {_describe(now - success)} ago" if success else "no successful run yet"
    )
    if last_run.get("ok") is False:
        finished = _time(last_run.get("finished"))
        when = f" {_describe(now - finished)} ago" if finished else ""
        error = last_run.get("error") or entry.get("last_error") or "see the agent's log"
        return JobHealth(name, False, f"the latest run failed{when}: {error}; {since_success}")
    if success is not None:
        age = now - success
        return JobHealth(name, age <= allowed, f"{since_success} (allowed {_describe(allowed)})")
    if last_run:  # a run finished without a verdict: an older agent's file
        return JobHealth(name, False, f"the latest run has no result; {since_success}")
    if started is not None and now - started <= allowed:
        return JobHealth(name, True, f"no run finished yet; started {_describe(now - started)} ago")
    since = f" since the start {_describe(now - started)} ago" if started else ""
    return JobHealth(name, False, f"no successful run{since} (allowed {_describe(allowed)})")


__all__ = [
    "HEARTBEAT_FILE",
    "Health",
    "Heartbeat",
    "HeartbeatError",
    "JobHealth",
    "JobOutcome",
    "check_health",
    "default_max_age",
    "heartbeat_path",
    "job_outcome",
    "parse_duration",
    "read_heartbeat",
]
