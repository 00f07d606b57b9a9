"""Delivery of points to every destination, through the durable outbox.

:meth:`Delivery.deliver` first stores each point in the outbox once per destination enabled for
the point's feature, then tries each destination in its own error handling: a destination that
fails (or raises anything at all) never stops the others, is logged once per delivery with its
name, and keeps its points in the outbox. Every delivery, and :meth:`Delivery.flush`, sends a
destination's pending rows oldest first and stops at the first batch it fails, so points reach
each destination in the order they were produced. Rows are deleted once written; since writes
are idempotent, a row re-sent after a crash overwrites itself instead of duplicating.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from agent.logging import mask_secrets
from agent.models import Destination, DestinationError, Point
from agent.outbox import DEFAULT_MAX_ROWS, Dropped, Outbox

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.plugins import PluginHost

OUTBOX_FILE = "outbox.sqlite"
#: Points per ``write`` call; large enough for a run, small enough for any server's body limit.
BATCH_SIZE = 5000


@dataclass
class DestinationReport:
    """What one delivery did for one destination."""

    name: str
    description: str
    #: Points written by this delivery (including older pending ones).
    written: int = 0
    #: Points this delivery tried and failed to write; they stay pending.
    failed: int = 0
    #: Points the destination refused for good (bad data): dropped, never re-sent.
    rejected: int = 0
    #: Rows still waiting in the outbox for this destination afterwards.
    pending: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "written": self.written,
            "failed": self.failed,
            "rejected": self.rejected,
            "pending": self.pending,
            "error": self.error,
        }


@dataclass
class DeliveryReport:
    destinations: list[DestinationReport] = field(default_factory=list)
    #: Monitor points dropped from the outbox to keep it within ``maxRows``.
    dropped: int = 0

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.destinations)

    def to_dict(self) -> dict[str, Any]:
        return {"destinations": [d.to_dict() for d in self.destinations], "dropped": self.dropped}


def _key(point: Point) -> tuple[Any, ...]:
    return (point.measurement, tuple(sorted(point.tags.items())), point.time, point.feature)


class Delivery:
    """Destinations plus the outbox. Thread-safe: one delivery or flush at a time."""

    def __init__(
        self, destinations: Sequence[Destination], outbox: Outbox, batch_size: int = BATCH_SIZE
    ) -> None:
        self.destinations = list(destinations)
        self.outbox = outbox
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._warn_orphans()

    @classmethod
    def from_config(cls, config: AgentConfig, host: PluginHost) -> Delivery:
        """The destinations the plugins enable, with the outbox in ``config.state_dir``."""
        outbox_settings = getattr(config.agent, "outbox", None)
        max_rows = getattr(outbox_settings, "max_rows", DEFAULT_MAX_ROWS)
        outbox = Outbox(config.state_dir / OUTBOX_FILE, max_rows=max_rows)
        return cls(host.destinations(config), outbox)

    def _warn_orphans(self) -> None:
        names = {d.name for d in self.destinations}
        for name, count in self.outbox.counts().items():
            if name not in names:
                logger.warning(
                    "the outbox holds {} points for destination {}, which is not enabled;"
                    " they are delivered when it is enabled again",
                    count,
                    name,
                )

    # ----------------------------------------------------------------- delivering

    def deliver(self, points: Sequence[Point]) -> DeliveryReport:
        """Store ``points`` for every destination enabled for their feature, then send all
        pending rows. Never raises for a destination's failure: see the report."""
        with self._lock:
            items = [
                (dest.name, point)
                for dest in self.destinations
                for point in points
                if point.feature in dest.features
            ]
            dropped = self.outbox.add(items)
            self._warn_dropped(dropped)
            report = self._flush()
            report.dropped = dropped.dropped
            return report

    def flush(self) -> DeliveryReport:
        """Re-send every pending row, oldest first, per destination."""
        with self._lock:
            return self._flush()

    def flush_pending(self, when: str) -> DeliveryReport | None:
        """Send what the outbox holds (``when``: "at start", "before stopping" for the log).

        Never raises: a destination that is down keeps its rows, a broken outbox is logged;
        ``None`` then. An empty outbox touches no destination.
        """
        try:
            if not self.outbox.count():
                return DeliveryReport()
            report = self.flush()
        except Exception as exc:
            logger.error("could not flush the outbox {}: {}", when, exc)
            return None
        logger.info(
            "outbox {}: {}",
            when,
            ", ".join(
                f"{d.name}: {d.written} sent, {d.pending} pending" for d in report.destinations
            )
            or "nothing to send",
        )
        return report

    def pending(self) -> dict[str, int]:
        """Rows waiting per destination name."""
        return self.outbox.counts()

    def _warn_dropped(self, dropped: Dropped) -> None:
        if dropped.dropped:
            logger.warning(
                "the outbox is full (Butler.licenseAgent.outbox.maxRows = {}): dropped the {}"
                " oldest monitor points; bring the failing destination back or raise maxRows",
                self.outbox.max_rows,
                dropped.dropped,
            )
        if dropped.over_limit:
            logger.warning(
                "the outbox holds {} release events beyond maxRows = {}; they are kept"
                " (release events are never dropped): bring the failing destination back",
                dropped.over_limit,
                self.outbox.max_rows,
            )

    def _flush(self) -> DeliveryReport:
        report = DeliveryReport()
        for dest in self.destinations:
            report.destinations.append(self._flush_one(dest))
        return report

    def _flush_one(self, dest: Destination) -> DestinationReport:
        try:
            description = dest.describe()
        except Exception as exc:  # a broken describe() must not stop delivery
            description = f"{dest.name} (describe failed: {type(exc).__name__})"
        result = DestinationReport(name=dest.name, description=description)
        after = 0
        while True:
            rows = self.outbox.pending(dest.name, self.batch_size, after_id=after)
            if not rows:
                break
            after = rows[-1][0]
            points = [point for _, point in rows]
            try:
                dest.write(points)
            except DestinationError as exc:
                failed = {_key(p) for p in exc.failed}
                rejected = {_key(p) for p in exc.rejected}
                if not failed and not rejected:
                    failed = {_key(p) for p in points}  # nothing can be assumed written
                dropped = [i for i, p in rows if _key(p) in rejected and _key(p) not in failed]
                written = [i for i, p in rows if _key(p) not in failed and _key(p) not in rejected]
                self.outbox.remove(dropped + written)
                result.written += len(written)
                result.rejected += len(dropped)
                result.failed += len(rows) - len(written) - len(dropped)
                # A destination's error may quote what its server echoed: masked once, here,
                # for the run summary, the report and the heartbeat alike.
                result.error = mask_secrets(str(exc)) or type(exc).__name__
                if len(written) + len(dropped) < len(rows):
                    break  # keep the order: later points wait behind the failed ones
                continue
            except Exception as exc:  # a bug in a plugin: same isolation, louder message
                result.failed += len(rows)
                result.error = mask_secrets(f"unexpected {type(exc).__name__}: {exc}")
                break
            self.outbox.remove([i for i, _ in rows])
            result.written += len(rows)
        result.pending = self.outbox.count(dest.name)
        if result.rejected:
            logger.error(
                "destination {} refused {} points for good; they are dropped: {}",
                dest.name,
                result.rejected,
                result.error,
            )
        if result.failed:
            logger.error(
                "destination {} failed: {} ({} points kept in the outbox for the next delivery)",
                dest.name,
                result.error,
                result.pending,
            )
        return result

    def close(self) -> None:
        for dest in self.destinations:
            try:
                dest.close()
            except Exception as exc:
                logger.warning("destination {} failed to close: {}", dest.name, exc)
        self.outbox.close()


def flush_outbox(config: AgentConfig, host: PluginHost) -> DeliveryReport | None:
    """Re-send what the outbox holds with a delivery of its own. Never raises.

    Returns ``None`` when the outbox cannot be opened (logged once).
    """
    try:
        delivery = Delivery.from_config(config, host)
    except Exception as exc:
        logger.error("cannot open the outbox to deliver pending points: {}", exc)
        return None
    try:
        return delivery.flush_pending("now")
    finally:
        delivery.close()
