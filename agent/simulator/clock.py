"""Dates the way QRS writes them, and the simulator's clock.

QRS formats every date as ``YYYY-MM-DDTHH:MM:SS.fffZ`` (UTC, milliseconds) and uses
``1753-01-01T00:00:00.000Z`` for "unset". The simulator stores dates as such strings: in that
fixed format, string order is time order, so filters compare dates without parsing them. The
:class:`Clock` is "now" for quarantine rules and state generation; tests freeze it.
"""

from __future__ import annotations

import datetime as dt
import threading

NEVER = "1753-01-01T00:00:00.000Z"
"""The sentinel QRS uses for an unset date."""

UTC = dt.timezone.utc


def format_date(moment: dt.datetime) -> str:
    """Format an aware or naive (taken as UTC) datetime as ``YYYY-MM-DDTHH:MM:SS.fffZ``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def parse_date(text: str) -> dt.datetime:
    """Parse an ISO 8601 date or date-time; a missing offset means UTC. Returns an aware UTC datetime.

    :raises ValueError: when ``text`` is not an ISO date.
    """
    value = text.strip()
    if value.endswith(("z", "Z")):
        value = value[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def normalize_date(text: str) -> str:
    """Any ISO date string in, the canonical QRS form out. :raises ValueError: on a non-date."""
    return format_date(parse_date(text))


class Clock:
    """The simulator's "now": the real UTC time, or a fixed moment that tests set and move."""

    def __init__(self, fixed: dt.datetime | str | None = None) -> None:
        self._lock = threading.Lock()
        self._fixed: dt.datetime | None = None
        self.set(fixed)

    def set(self, fixed: dt.datetime | str | None) -> None:
        """Freeze the clock at ``fixed`` (datetime or ISO string); ``None`` follows real time."""
        if isinstance(fixed, str):
            fixed = parse_date(fixed)
        elif isinstance(fixed, dt.datetime) and fixed.tzinfo is None:
            fixed = fixed.replace(tzinfo=UTC)
        with self._lock:
            self._fixed = fixed

    def advance(self, delta: dt.timedelta) -> None:
        """Move a frozen clock forward; freezes a real-time clock at now + ``delta``."""
        with self._lock:
            base = self._fixed if self._fixed is not None else dt.datetime.now(UTC)
            self._fixed = base + delta

    @property
    def fixed(self) -> dt.datetime | None:
        """The frozen moment, or ``None`` when the clock follows real time."""
        return self._fixed

    def now(self) -> dt.datetime:
        fixed = self._fixed
        return fixed if fixed is not None else dt.datetime.now(UTC)
