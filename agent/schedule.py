"""Schedule text (the later.js subset Butler users write) -> jobs; the run loop.

Butler reads ``frequency`` with later.js (``later.parse.text``) in UTC. :func:`parse_frequency`
understands the subset of that language people actually write and gives it later.js's
meaning: schedules are *clock-aligned*, not "N units after the last run". ``every N <unit>``
means "every value of that unit divisible by N within the next larger unit": ``every 6 hours``
fires at 00:00, 06:00, 12:00 and 18:00 UTC, ``every 7 hours`` at 00, 07, 14 and 21 (the last
gap is 3 hours), ``every 5 mins`` at :00, :05, ... :55, ``every 90 minutes`` only at :00 of
every hour (no minute of an hour but 0 is divisible by 90) and ``every 2 days`` at 00:00 UTC on
days 1, 3, ..., 31 of each month. Such surprises are reported by :attr:`Frequency.note`.

:class:`RunLoop` runs jobs on those times: each job is re-armed to the exact next UTC fire time its
:class:`Frequency` computes. (It used the ``schedule`` package once, but that package counts
intervals from the last run on the local clock and cannot express these clock-aligned UTC times
or take an injected clock through its public API; what was left of it was a loop over due jobs.)
Each run happens in its own worker thread, so a long release run does not delay the monitor;
a job whose previous run is still going when it is due again is skipped with a warning, never
overlapped. The clock (``now``) and the waiting (``sleep``) are injectable, so tests drive a
loop through days of schedule with a fake clock and without sleeping.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from operator import attrgetter
from time import monotonic
from typing import Any

from loguru import logger

UTC = timezone.utc

SUPPORTED_FORMS = (
    "every N seconds|minutes|hours|days (also sec, secs, min, mins, hour, day),"
    " at HH:MM (24-hour, or 12-hour with am/pm), every day at HH:MM,"
    " every weekday at HH:MM (Monday to Friday), on <weekday> at HH:MM (monday..sunday or"
    " mon..sun; several with commas or 'and'); all times are UTC."
    " Examples: 'every 6 hours', 'every 15 minutes', 'at 02:30', 'every weekday at 7:00 pm',"
    " 'on sunday at 03:00'"
)


class ScheduleError(ValueError):
    """A ``frequency`` text the agent does not understand; the message lists the supported forms."""

    def __init__(self, text: object, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(
            f"{text!r} is not a supported schedule: {reason}. Supported: {SUPPORTED_FORMS}"
        )


# --------------------------------------------------------------------------- parsing

_UNITS = {
    # later.js's own spellings (second: s|sec(ond)?(s)?, minute: m|min(ute)?(s)?, hour: h|hour(s)?)
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "second"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "minute"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hour"),
    **dict.fromkeys(("day", "days"), "day"),
}

#: later.js's day-name spellings, mapped to Python's weekday numbers (Monday = 0).
_DAY_RE = r"(?:sun|mon|tue(?:s)?|wed(?:nes)?|thu(?:r(?:s)?)?|fri|sat(?:ur)?)(?:day)?"
_DAY_NUMBERS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_CLAUSES = (
    ("every_n", re.compile(r"every\s+(\d+)\s+([a-z]+)\b")),
    ("every_day", re.compile(r"every\s+day\b")),
    ("every_weekday", re.compile(r"every\s+weekday\b")),
    ("on", re.compile(rf"on\s+({_DAY_RE}(?:\s*(?:,|\band\b)\s*{_DAY_RE})*)\b")),
    ("at", re.compile(r"at\s+(\d{1,2})(?::(\d{2}))?(?:\s*(am|pm))?(?![\w:])")),
)


@dataclass(frozen=True)
class Frequency:
    """A parsed schedule: the UTC seconds, minutes and hours it fires at, on which days.

    ``days_of_month`` and ``weekdays`` (Monday = 0) are ``None`` when any day will do.
    """

    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[int, ...] | None = None
    weekdays: tuple[int, ...] | None = None
    #: A sentence for the user when later.js's alignment differs from what the text suggests.
    note: str | None = None

    def next_run(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (aware UTC; a naive ``after`` is UTC)."""
        return self.next_runs(after, 1)[0]

    def next_runs(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after``, as aware UTC datetimes."""
        moment = _as_utc(after).replace(microsecond=0) + timedelta(seconds=1)
        runs: list[datetime] = []
        while len(runs) < count:
            moment = self._first_at_or_after(moment)
            runs.append(moment)
            moment += timedelta(seconds=1)
        return runs

    def describe(self) -> str:
        """When it fires, in words, e.g. ``every day at 00:00, 06:00, 12:00, 18:00 UTC``."""
        if self.seconds != (0,):
            return f"at seconds {_list(self.seconds, '{:02d}')} of every minute"
        if len(self.minutes) == 60:
            return "every minute, at second 00"
        if len(self.hours) == 24:
            noun = "minutes" if len(self.minutes) > 1 else "minute"
            return f"at {noun} {_list(self.minutes, ':{:02d}')} of every hour"
        times = _list([f"{h:02d}:{self.minutes[0]:02d}" for h in self.hours])
        if self.weekdays == (0, 1, 2, 3, 4):
            days = "Monday to Friday"
        elif self.weekdays is not None:
            days = "on " + ", ".join(_DAY_NAMES[d] for d in self.weekdays)
        elif self.days_of_month is not None:
            noun = "days" if len(self.days_of_month) > 1 else "day"
            days = f"on {noun} {_list(self.days_of_month)} of each month"
        else:
            days = "every day"
        return f"{days} at {times} UTC"

    # ----------------------------------------------------------------- search

    def _day_matches(self, day: date) -> bool:
        if self.weekdays is not None and day.weekday() not in self.weekdays:
            return False
        return self.days_of_month is None or day.day in self.days_of_month

    def _time_at_or_after(self, h: int, m: int, s: int) -> tuple[int, int, int] | None:
        for hh in self.hours:
            if hh < h:
                continue
            m0, s0 = (m, s) if hh == h else (0, 0)
            for mm in self.minutes:
                if mm < m0:
                    continue
                s1 = s0 if mm == m0 else 0
                for ss in self.seconds:
                    if ss >= s1:
                        return hh, mm, ss
        return None

    def _first_at_or_after(self, moment: datetime) -> datetime:
        day = moment.date()
        h, m, s = moment.hour, moment.minute, moment.second
        # The longest gap any supported form can have is one month (``every 31 days``).
        for _ in range(370):
            if self._day_matches(day):
                found = self._time_at_or_after(h, m, s)
                if found is not None:
                    return datetime.combine(day, time(*found), tzinfo=UTC)
            day += timedelta(days=1)
            h = m = s = 0
        raise AssertionError(f"no fire time within a year for {self.text!r}")  # a bug


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _list(values: Sequence[Any], fmt: str = "{}") -> str:
    shown = [fmt.format(v) for v in values]
    if len(shown) > 8:
        shown = [*shown[:3], "...", shown[-1]]
    return ", ".join(shown)


def _every(step: int, low: int, high: int) -> tuple[int, ...]:
    # later.js recur().every(N): low, low+N, ... up to high, within the unit's range.
    return tuple(range(low, high + 1, step))


def _every_note(text: str, unit: str, n: int, values: tuple[int, ...]) -> str | None:
    if unit == "day":
        return (
            f"'{text}' fires at 00:00 UTC on day{'s' if len(values) > 1 else ''} {_list(values)}"
            " of each month (later.js counts"
            " days within the month), so the gap across a month end can be shorter"
        )
    span = {"second": 60, "minute": 60, "hour": 24}[unit]
    bigger = {"second": "minute", "minute": "hour", "hour": "day"}[unit]
    if n == span:
        return None  # e.g. ``every 24 hours``: once a day at 00:00 UTC, as Butler users expect
    if n > span:
        times = n // span
        if n % span == 0:
            hint = f"for every {times} {bigger}s write 'every {times} {bigger}s'"
        else:
            hint = f"later.js has no {n}-{unit} interval: use 'every {times} {bigger}s' or a divisor of {span} {unit}s"
        return (
            f"'{text}' fires once every {bigger}, at {unit} 0, not every {n} {unit}s (later.js"
            f" counts {unit}s within the {bigger}, and only 0 is divisible by {n}); {hint}"
        )
    if span % n:
        return (
            f"'{text}' fires at {unit}s {_list(values)} of every {bigger} (later.js counts"
            f" {unit}s within the {bigger}), so the last gap is {span - values[-1]} {unit}s;"
            f" choose a divisor of {span} for even gaps"
        )
    return None


def parse_frequency(text: str) -> Frequency:
    """Parse a later.js text schedule; raise :class:`ScheduleError` for anything unsupported."""
    if not isinstance(text, str):
        raise ScheduleError(text, "a schedule is text, e.g. 'every 6 hours'")
    source = " ".join(text.strip().lower().split())
    if not source:
        raise ScheduleError(text, "it is empty")
    found: dict[str, re.Match[str]] = {}
    pos = 0
    while pos < len(source):
        clause = _match_clause(source, pos)
        if clause is None:
            raise ScheduleError(text, _explain(source[pos:], source))
        name, match = clause
        if name in found or (
            name.startswith("every") and any(k.startswith("every") for k in found)
        ):
            raise ScheduleError(text, f"'{match.group(0)}' repeats a part already given")
        found[name] = match
        pos = match.end()
        while pos < len(source) and source[pos] in " ,":
            pos += 1
    return _build(text, found)


def _match_clause(source: str, pos: int) -> tuple[str, re.Match[str]] | None:
    for name, pattern in _CLAUSES:
        match = pattern.match(source, pos)
        if match:
            return name, match
    return None


def _explain(rest: str, source: str) -> str:
    every = re.match(r"every\s+(\S+)(?:\s+(\S+))?", rest)
    if every:
        number, unit = every.group(1), every.group(2)
        if not number.isdigit():
            return f"after 'every' comes a number, 'day' or 'weekday', not '{number}'"
        if unit is None:
            return f"'every {number}' needs a unit: seconds, minutes, hours or days"
        return f"'{unit}' is not a unit the agent knows: use seconds, minutes, hours or days"
    at = re.match(r"at\s+(\S+(?:\s*[ap]m)?)", rest)
    if at:
        return f"'{at.group(1)}' is not a time: write HH:MM (24-hour) or H:MM am/pm"
    on = re.match(r"on\s+(\S+)", rest)
    if on:
        return f"'{on.group(1)}' is not a weekday: use monday..sunday or mon..sun"
    if re.match(r"^[\d*/,\-]+(\s+[\d*/,\-?lw#a-z]+){4,5}$", source):
        return "cron expressions are not supported"
    return f"cannot read '{rest}'"


def _build(text: str, found: dict[str, re.Match[str]]) -> Frequency:
    at = found.get("at")
    if "every_n" in found:
        if at is not None or "on" in found:
            raise ScheduleError(
                text, "'every N <unit>' cannot be combined with 'at' or 'on'; use one form"
            )
        match = found["every_n"]
        n = int(match.group(1))
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise ScheduleError(
                text,
                f"'{match.group(2)}' is not a unit the agent knows: use seconds, minutes, hours"
                " or days",
            )
        if n < 1:
            raise ScheduleError(text, f"the number in 'every {n} ...' must be at least 1")
        second, minute, hour = (0,), (0,), (0,)
        days = None
        if unit == "second":
            second, minute, hour = _every(n, 0, 59), _every(1, 0, 59), _every(1, 0, 23)
            values = second
        elif unit == "minute":
            minute, hour = _every(n, 0, 59), _every(1, 0, 23)
            values = minute
        elif unit == "hour":
            hour = _every(n, 0, 23)
            values = hour
        else:
            values = _every(n, 1, 31)
            days = values if n > 1 else None  # every day of the month is every day
        return Frequency(
            text=text,
            seconds=second,
            minutes=minute,
            hours=hour,
            days_of_month=days,
            note=_every_note(text.strip(), unit, n, values) if unit != "day" or n > 1 else None,
        )
    if "every_day" in found and "on" in found:
        raise ScheduleError(text, "'every day' and 'on <weekday>' contradict each other")
    if "every_weekday" in found and "on" in found:
        raise ScheduleError(text, "'every weekday' and 'on <weekday>' contradict each other")
    hour, minute = _parse_time(text, at) if at is not None else (0, 0)
    weekdays: tuple[int, ...] | None = None
    if "every_weekday" in found:
        weekdays = (0, 1, 2, 3, 4)
    elif "on" in found:
        names = re.findall(_DAY_RE, found["on"].group(1))
        weekdays = tuple(sorted({_DAY_NUMBERS[name[:3]] for name in names}))
    return Frequency(text=text, seconds=(0,), minutes=(minute,), hours=(hour,), weekdays=weekdays)


def _parse_time(text: str, match: re.Match[str]) -> tuple[int, int]:
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    written = match.group(0)[3:].strip()
    if match.group(2) is None and half is None:
        raise ScheduleError(text, f"'{written}' is not a time: write HH:MM (24-hour) or H:MM am/pm")
    if minute > 59:
        raise ScheduleError(text, f"'{written}': minutes go from 00 to 59")
    if half is None:
        if hour > 23:
            raise ScheduleError(text, f"'{written}': hours go from 00 to 23 (24-hour clock)")
        return hour, minute
    if not 1 <= hour <= 12:
        raise ScheduleError(text, f"'{written}': with am/pm the hour goes from 1 to 12")
    # 12 am is midnight and 12 pm is noon (later.js itself reads '12:xx am' as noon; a bug).
    return (hour % 12) + (12 if half == "pm" else 0), minute


# --------------------------------------------------------------------------- jobs from config


def scheduled_jobs(frequencies: Mapping[str, str | None]) -> list[tuple[str, Frequency]]:
    """The jobs to schedule, in the given order: ``{"monitor": "every 5 minutes", ...}`` in,
    ``[("monitor", Frequency), ...]`` out. A job whose frequency is ``None`` is not scheduled.

    The caller reads the frequencies from the config (:func:`agent.jobs.jobs_from_config`): the
    config validates its frequencies with this module, so this module must not import it.
    """
    return [(name, parse_frequency(text)) for name, text in frequencies.items() if text is not None]


# --------------------------------------------------------------------------- the run loop


def _utc_now() -> datetime:
    return datetime.now(UTC)


#: Real waits are cut into slices this long so a changed wall clock (NTP, suspend) is noticed
#: and, on Windows, so Ctrl+C is seen promptly (a blocked wait there ignores signals).
DEFAULT_MAX_SLEEP = 1.0 if os.name == "nt" else 30.0
#: How often the real wait checks for a stop a signal asked for (see RunLoop._wait).
SIGNAL_CHECK = 1.0


class _ClockJob:
    """A job armed to the next fire time of its :class:`Frequency` on the loop's clock.

    later.js schedules are aligned to the UTC clock, so ``next_run`` (an aware UTC datetime) is
    always computed by the :class:`Frequency` and compared with the loop's injected ``now``.
    """

    def __init__(
        self, loop: RunLoop, name: str, frequency: Frequency, func: Callable[[], Any]
    ) -> None:
        self.loop = loop
        self.name = name
        self.frequency = frequency
        self.job_func = func
        self.next_run: datetime | None = None
        self.last_run: datetime | None = None

    def arm(self) -> None:
        """Set the next fire time from now."""
        self.next_run = self.frequency.next_run(self.loop.now())

    @property
    def should_run(self) -> bool:
        return self.next_run is not None and self.loop.now() >= self.next_run

    def run(self) -> None:
        due = self.next_run
        assert due is not None
        self.loop._launch(self, due)
        now = self.loop.now()
        self.last_run = now
        # Re-arm after both the due time and now: fire times missed while the machine slept
        # are not made up for.
        self.next_run = self.frequency.next_run(max(now, due))

    def __repr__(self) -> str:
        return f"<job {self.name} {self.frequency.text!r} next {self.next_run}>"

    __str__ = __repr__


class RunLoop:
    """Run named jobs on their :class:`Frequency`, each run in a worker thread, until stopped.

    :param now: the clock, returning an aware UTC datetime (tests pass a fake clock).
    :param sleep: waits the given seconds; the default waits on the stop event, so
        :meth:`stop` wakes it at once. A fake ``sleep`` advances the fake clock instead.
    :param run_at_start: run every job once when :meth:`run` starts
        (``Butler.licenseAgent.runAtStart``).
    :param max_sleep: the longest single wait, in seconds.
    :param name: used in thread names and log lines, to tell several loops apart.
    """

    def __init__(
        self,
        *,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Any] | None = None,
        run_at_start: bool = True,
        max_sleep: float = DEFAULT_MAX_SLEEP,
        name: str = "agent",
    ) -> None:
        self._job_list: list[_ClockJob] = []
        self._stop = threading.Event()
        #: The signal that asked the loop to stop (see :meth:`stop_from_signal`).
        self._stop_signal = ""
        self._now = now
        self._sleep = sleep if sleep is not None else self._wait
        self.run_at_start = run_at_start
        self.max_sleep = max_sleep
        self.name = name
        self._lock = threading.Lock()
        self._workers: dict[str, threading.Thread] = {}
        self._started_at: dict[str, datetime] = {}
        #: Runs skipped because the previous run of the same job was still going, by job name.
        self.skipped: dict[str, int] = {}
        #: Runs started, by job name.
        self.started: dict[str, int] = {}

    # ----------------------------------------------------------------- setup

    def now(self) -> datetime:
        return _as_utc(self._now())

    def add_job(self, name: str, frequency: Frequency, func: Callable[[], Any]) -> None:
        """Register ``func`` (called without arguments) to run on ``frequency``."""
        if any(job.name == name for job in self._jobs()):
            raise ValueError(f"a job named {name!r} is already registered")
        job = _ClockJob(self, name, frequency, func)
        job.arm()  # next_runs() answers before run(); run() arms again from its own start
        self._job_list.append(job)
        self.skipped[name] = 0
        self.started[name] = 0

    def next_runs(self) -> dict[str, datetime]:
        """Each job's next fire time (aware UTC)."""
        return {job.name: job.next_run for job in self._jobs() if job.next_run is not None}

    def _jobs(self) -> list[_ClockJob]:
        return list(self._job_list)

    # ----------------------------------------------------------------- running

    def run(self) -> None:
        """Run until :meth:`stop`; return once the runs in progress have finished."""
        jobs = self._jobs()
        if not jobs:
            raise ValueError("the run loop has no jobs")
        for job in jobs:
            # Armed from now, not from add_job: a fire time passed in between is not run
            # right after the run at start.
            job.arm()
            logger.info(
                "{}: {} ({}); next run {}",
                job.name,
                job.frequency.text,
                job.frequency.describe(),
                _fmt(job.next_run),
            )
        try:
            if self.run_at_start and not self.stopping:
                for job in jobs:
                    self._launch(job, self.now(), at_start=True)
            while not self.stopping:
                for job in sorted((j for j in jobs if j.should_run), key=attrgetter("next_run")):
                    job.run()
                if self.stopping:
                    break
                self._sleep(self._seconds_to_next())
        finally:
            if self._stop_signal:
                self._stop.set()  # in the loop's own thread now: wakes whatever waits on it
                logger.info(
                    "{} received: stopping after the running jobs finish (send it again to abort)",
                    self._stop_signal,
                )
            self.wait_for_jobs()
            logger.info("{}: run loop stopped", self.name)

    def _seconds_to_next(self) -> float:
        upcoming = [job.next_run for job in self._jobs() if job.next_run is not None]
        wait = (min(upcoming) - self.now()).total_seconds()
        return max(0.0, min(wait, self.max_sleep))

    def stop(self) -> None:
        """Ask the loop to stop: no new run starts; :meth:`run` returns after running ones end."""
        if not self._stop.is_set():
            logger.info("{}: stop requested; waiting for running jobs to finish", self.name)
        self._stop.set()

    def stop_from_signal(self, signal_name: str) -> None:
        """:meth:`stop` for a signal handler: it only notes the signal; the loop, which checks
        at least every :data:`SIGNAL_CHECK` seconds, stops and logs why.

        A signal handler runs in the main thread between two bytecodes, possibly while that
        thread holds a lock the handler would need (the stop event's own lock while it starts
        waiting on it, or the logger's in the middle of a line): taking it from the handler
        would wait for itself forever. Setting an attribute takes no lock.
        """
        self._stop_signal = signal_name

    def _wait(self, seconds: float) -> None:
        """The real wait: on the stop event, in slices of :data:`SIGNAL_CHECK` seconds.

        Slices, because a signal sent to the process may be delivered to another thread (a
        job's HTTP worker): the main thread, blocked in a long wait, would then run the
        Python handler only when that wait ends, and a Ctrl+C or a service stop would go
        unanswered for up to ``max_sleep`` seconds.
        """
        deadline = monotonic() + seconds
        while not self.stopping:
            left = deadline - monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, SIGNAL_CHECK))

    @property
    def stopping(self) -> bool:
        return bool(self._stop_signal) or self._stop.is_set()

    def running(self) -> list[str]:
        """Names of the jobs with a run in progress."""
        with self._lock:
            return [name for name, thread in self._workers.items() if thread.is_alive()]

    def wait_for_jobs(
        self, timeout: float | None = None, names: Sequence[str] | None = None
    ) -> bool:
        """Wait for the runs in progress (of the jobs ``names``, default all) to end;
        ``False`` if ``timeout`` passed first."""
        with self._lock:
            threads = [t for n, t in self._workers.items() if names is None or n in names]
        for thread in threads:
            if timeout is None:
                # In slices, so a second Ctrl+C reaches its handler even when the signal is
                # delivered to another thread (see _wait).
                while thread.is_alive():
                    thread.join(SIGNAL_CHECK)
            else:
                thread.join(timeout)
        return not any(thread.is_alive() for thread in threads)

    def _launch(self, job: _ClockJob, due: datetime, *, at_start: bool = False) -> None:
        with self._lock:
            previous = self._workers.get(job.name)
            if previous is not None and previous.is_alive():
                self.skipped[job.name] += 1
                logger.warning(
                    "{}: run due at {} skipped: the previous run (started {}) is still going;"
                    " runs of one job never overlap",
                    job.name,
                    _fmt(due),
                    _fmt(self._started_at[job.name]),
                )
                return
            if self.stopping:
                return
            self.started[job.name] += 1
            self._started_at[job.name] = self.now()
            worker = threading.Thread(
                target=self._work,
                args=(job, due, at_start),
                name=f"{self.name}-{job.name}",
                daemon=True,  # a forced exit (second Ctrl+C) must not hang on a stuck run
            )
            self._workers[job.name] = worker
            worker.start()

    def _work(self, job: _ClockJob, due: datetime, at_start: bool) -> None:
        started = self.now()
        late = (started - due).total_seconds()
        reason = "at start" if at_start else f"due {_fmt(due)}"
        if late > 60 and not at_start:
            logger.warning("{}: run starts {:.0f} s late ({})", job.name, late, reason)
        logger.info("{}: run started ({})", job.name, reason)
        try:
            assert job.job_func is not None
            job.job_func()
        except Exception as exc:  # one failed run must not end the loop; the next run retries
            logger.error("{}: run failed: {}: {}", job.name, type(exc).__name__, exc)
            logger.opt(exception=exc).debug("{}: traceback of the failed run", job.name)
        else:
            elapsed = (self.now() - started).total_seconds()
            logger.info("{}: run finished in {:.1f} s", job.name, elapsed)


def _fmt(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


__all__ = [
    "Frequency",
    "RunLoop",
    "ScheduleError",
    "SUPPORTED_FORMS",
    "scheduled_jobs",
    "parse_frequency",
]
