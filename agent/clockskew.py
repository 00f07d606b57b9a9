"""Does this machine's clock agree with QRS's? Read from the ``Date`` header of QRS's answers.

The release counts days since last use with the agent's clock, against ``lastUsed`` dates
that QRS wrote with the server's clock. A host whose clock runs days ahead (a VM restored from
a snapshot, a broken time service) would release allocations that are still in use. The
transport (:mod:`agent.qrs_transport`) notes the ``Date`` header of every answer with the local
time it arrived (:class:`ServerClock`); :func:`check_clock` compares them, and the release run
refuses a live run when they differ by more than ``configQRS.maxClockSkewMinutes`` or when the
header is missing or not a date (the clock cannot be checked, so the run is not trusted).

The header has a resolution of one second and is written while QRS answers, so the comparison
is good to a few seconds: far below any sensible bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

#: The longest ``Date`` header text quoted in a message (it comes from the network).
_SHOWN_CHARS = 40


@dataclass(frozen=True)
class ServerClock:
    """One reading of QRS's clock.

    :param header: the ``Date`` header as QRS sent it, ``None`` when there was none.
    :param server: the moment it names (UTC), ``None`` when absent or not an HTTP date.
    :param local: this machine's UTC time when the answer arrived.
    """

    header: str | None
    server: datetime | None
    local: datetime


def read_date_header(value: str | None, local: datetime) -> ServerClock:
    """A :class:`ServerClock` from a ``Date`` header's text (any form HTTP allows)."""
    server = None
    if value:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None:
            server = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(
                timezone.utc
            )
    return ServerClock(value, server, local)


@dataclass(frozen=True)
class ClockCheck:
    """The verdict: ``problem`` is ``None`` when the clocks agree within the bound."""

    skew: timedelta | None
    problem: str | None


def describe(delta: timedelta) -> str:
    """``3 days 2 h 5 min``, ``2 h 0 min``, ``12 min 5 s``, ``40 s`` (of the absolute value)."""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''} {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def check_clock(
    reading: ServerClock | None, max_skew: timedelta, *, offset: timedelta = timedelta(0)
) -> ClockCheck:
    """Compare the agent's clock with QRS's.

    :param reading: the latest :class:`ServerClock` (``None``: QRS never answered).
    :param max_skew: the bound (``configQRS.maxClockSkewMinutes``).
    :param offset: how far the moment the run measures from is from this machine's clock
        (``--now`` in a dry run); zero for a normal run.
    """
    bound = f"configQRS.maxClockSkewMinutes is {max_skew.total_seconds() / 60:g}"
    if reading is None:
        return ClockCheck(
            None, "QRS sent no answer whose Date header could be compared with this clock"
        )
    if reading.server is None:
        if reading.header is None:
            what = "QRS's answer carried no Date header"
        else:
            shown = reading.header[:_SHOWN_CHARS].encode("ascii", "backslashreplace").decode()
            what = f"QRS's Date header {shown!r} is not a date"
        return ClockCheck(
            None,
            f"{what}, so this machine's clock cannot be checked against the server's (a proxy"
            " between the agent and QRS may drop or rewrite it)",
        )
    agent_time = reading.local + offset
    skew = agent_time - reading.server
    if abs(skew) <= max_skew:
        return ClockCheck(skew, None)
    ahead = "ahead of" if skew > timedelta(0) else "behind"
    return ClockCheck(
        skew,
        f"this machine's clock is {describe(skew)} {ahead} QRS's ({_utc(agent_time)} here,"
        f" {_utc(reading.server)} in QRS's Date header; {bound}): days since last use would be"
        " counted wrong. Fix the clock (time service) of this machine or of the Sense server",
    )


__all__ = ["ClockCheck", "ServerClock", "check_clock", "describe", "read_date_header"]
