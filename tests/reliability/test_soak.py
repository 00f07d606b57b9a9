"""Soak: 1,000 scheduled cycles on a fake clock with random faults in QRS and the destination.

The real run loop fires the monitor every hour and the release every six hours, against the
simulator over mutual TLS, with the real jobs (journal, outbox, rules). Before each cycle the
simulator gets a random set of faults (5xx, 429, resets, malformed JSON, rare hangs) and the
destination (an in-process fake) goes down, half-fails or comes back at random; now and then
the agent "restarts" (a new delivery on the same files) and the site gets new allocations.

After every cycle: no protected allocation is gone; every allocation QRS no longer has was
released according to the journal; no event reached the destination twice. At the end, with the
destination back: every release has exactly one event, and memory did not grow without bound.
"""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
from loguru import logger

from agent.delivery import Delivery
from agent.jobs import run_monitor_job, run_release_job
from agent.journal import EVENT_STATES, SqliteJournal, journal_path
from agent.models import MEASUREMENT_RELEASE, DestinationError, Point
from agent.outbox import Outbox
from agent.plugins import build_plugin_host
from agent.qrs import QrsClient
from agent.schedule import RunLoop, parse_frequency

from .helpers import (
    FakeClock,
    build_site,
    config_document,
    load,
    no_sleep,
    present,
    real_now,
    release_section,
    write_config,
)

CYCLES = 1000
#: Memory is traced over the last 300 cycles, after 700 have warmed every cache up.
TRACED_FROM = 700
UTC = timezone.utc


class FlakyDestination:
    """Fails, half-fails or works as the test says. Counts what it wrote, compactly (the memory
    check must see the agent's memory, not a list of every point kept by the test)."""

    name = "flaky"
    features = frozenset({"license_monitor", "license_release", "server_license"})

    def __init__(self) -> None:
        self.mode = "up"  # "up", "down" or "partial"
        self.events = Counter[str]()  # release events by allocation id
        self.monitor = Counter[int]()  # other points by a hash of what identifies them
        self.written = 0

    def write(self, points: Sequence[Point]) -> None:
        if self.mode == "down":
            raise DestinationError("flaky: down")
        if self.mode == "partial" and len(points) > 1:
            half = len(points) // 2
            self._record(points[:half])
            raise DestinationError("flaky: half written", failed=points[half:])
        self._record(points)

    def _record(self, points: Sequence[Point]) -> None:
        for point in points:
            self.written += 1
            if point.measurement == MEASUREMENT_RELEASE:
                self.events[str(point.fields["allocation_id"])] += 1
            else:
                self.monitor[_key(point)] += 1

    def describe(self) -> str:
        return "an in-process flaky destination"

    def close(self) -> None:
        pass


FAULTS = [
    ("*", "error", {"status": 503}),
    ("*", "error", {"status": 500}),
    ("GET *", "error", {"status": 429, "retry_after": 0}),
    ("*", "reset", {}),
    ("GET *", "malformed", {}),
    ("DELETE *", "error", {"status": 502}),
    ("DELETE *", "reset", {}),
    ("GET /qrs/user/full", "error", {"status": 503}),
]


@pytest.mark.soak
def test_soak_thousand_cycles_with_random_faults(simulator, certs, workdir) -> None:
    rng = random.Random(20260601)
    generation = 0
    site = build_site(4, tag="g0", now=real_now())
    sim = simulator(site, now=real_now())
    released_ever: set[str] = set()
    candidates_ever: set[str] = set(site.candidates)
    protected_now: set[str] = set(site.protected) | set(site.recent)

    document = config_document(
        sim.port,
        certs,
        workdir,
        qrs={"readTimeout": 0.25, "connectTimeout": 1, "retries": 1},
        monitor={"enable": True, "frequency": "every 1 hours"},
        release=release_section(frequency="every 6 hours", deleteConcurrency=2),
        sqlite=False,
        jsonl=False,
    )
    config = load(write_config(workdir / "config.yaml", document))
    host = build_plugin_host(config)
    flaky = FlakyDestination()
    outbox_path = workdir / "outbox.sqlite"
    box: dict[str, Delivery] = {"delivery": Delivery([flaky], Outbox(outbox_path))}
    produced_monitor = Counter[int]()

    def qrs_factory(site_config: Any) -> QrsClient:
        return QrsClient(site_config, sleep=no_sleep)

    def monitor_job() -> None:
        for result in run_monitor_job(config, host, box["delivery"], qrs_factory=qrs_factory):
            produced_monitor.update(_key(p) for p in result.points)

    def release_job() -> None:
        run_release_job(config, host, box["delivery"], qrs_factory=qrs_factory)

    clock = FakeClock(datetime(2026, 1, 1, 0, 30, tzinfo=UTC))
    loop = RunLoop(now=clock.now, sleep=clock.sleep, name="soak", max_sleep=86400)
    clock.loop = loop
    loop.add_job("monitor", parse_frequency("every 1 hours"), monitor_job)
    loop.add_job("release", parse_frequency("every 6 hours"), release_job)

    alerts = Counter[str]()
    state = {"cycles": 0, "snapshot": None, "baseline": None}
    journal_file = journal_path(config.state_dir, config.sites()[0].name)

    def check() -> None:
        """The invariants, after every cycle."""
        after = present(sim)
        lost = protected_now - set(after)
        assert not lost, f"protected allocations gone: {lost}"
        assert all(after[a]["quarantined"] is False for a in protected_now)
        if journal_file.exists():
            with SqliteJournal(journal_file) as journal:
                records = journal.records()
            released = {r.entry.allocation_id for r in records if r.state in EVENT_STATES}
            touched = {r.entry.allocation_id for r in records}
        else:
            released, touched = set(), set()
        released_ever.update(released)
        assert released <= candidates_ever, "released something that was never a candidate"
        gone = (set(site.all()) - set(after)) if site else set()
        assert gone <= touched, f"QRS lost allocations the journal never sent: {gone - touched}"
        assert all(n == 1 for n in flaky.events.values()), "an event arrived twice"
        assert set(flaky.events) <= released_ever

    def tick(clock: FakeClock) -> None:
        nonlocal site, generation, protected_now
        check()
        state["cycles"] += 1
        cycles = state["cycles"]
        if cycles == TRACED_FROM:
            # Traced from here on (tracing doubles the cost of every allocation): whatever the
            # last cycles allocate and keep shows up in the final comparison.
            gc.collect()
            tracemalloc.start()
            state["baseline"] = tracemalloc.take_snapshot()
        if cycles >= CYCLES:
            loop.stop()
            return
        # The world changes for the next cycle.
        sim.clear_faults()
        if rng.random() < 0.35:
            for match, action, options in rng.sample(FAULTS, rng.randint(1, 2)):
                sim.add_fault(match, action, rate=rng.choice([0.1, 0.3, 1.0]), **options)
        if rng.random() < 0.005:
            sim.add_fault("GET *", "hang", seconds=0.3, count=1)
        flaky.mode = rng.choices(["up", "down", "partial"], [0.5, 0.35, 0.15])[0]
        if rng.random() < 0.05:  # the agent restarts
            box["delivery"].close()
            box["delivery"] = Delivery([flaky], Outbox(outbox_path))
        if cycles % 12 == 0:  # new allocations every half day (the old ones are settled)
            generation += 1
            site = build_site(4, tag=f"g{generation}", now=real_now())
            sim.set_now(real_now())
            sim.load_state(site.document)
            candidates_ever.update(site.candidates)
            protected_now = set(site.protected) | set(site.recent)

    clock.on_tick = tick
    previous_handlers = logger._core.handlers.copy()  # noqa: SLF001 - restored by conftest
    logger.remove()
    logger.add(lambda m: alerts.update([m.record["level"].name]), level="WARNING")
    started = time.perf_counter()
    try:
        loop.run()
    finally:
        gc.collect()
        tracemalloc_final = tracemalloc.take_snapshot()
        tracemalloc.stop()
        elapsed = time.perf_counter() - started
        del previous_handlers

    assert state["cycles"] == CYCLES
    assert loop.started["monitor"] >= CYCLES - 1 and loop.skipped == {"monitor": 0, "release": 0}
    # The destination comes back for good: everything pending is delivered, exactly once.
    flaky.mode = "up"
    sim.clear_faults()
    release_job()  # settles what a faulty last run left unverified
    box["delivery"].flush()
    assert box["delivery"].outbox.count() == 0
    box["delivery"].close()
    check()
    with SqliteJournal(journal_file) as journal:
        records = journal.records()
    released = Counter(r.entry.allocation_id for r in records if r.state in EVENT_STATES)
    assert released and all(n == 1 for n in released.values())
    assert flaky.events == released, "every performed release has exactly one event"
    assert flaky.monitor == produced_monitor  # and every monitor point, once
    assert len(released) > 100, "the soak released too little to mean anything"
    assert alerts["ERROR"] > 0  # the faults were real

    # Memory: what the traced cycles added and kept is small (a leak of 3 kB per cycle fails).
    assert state["baseline"] is not None
    # The test's own bookkeeping (counters of what was produced and written) is left out.
    own = [tracemalloc.Filter(False, __file__), tracemalloc.Filter(False, tracemalloc.__file__)]
    changes = tracemalloc_final.filter_traces(own).compare_to(
        state["baseline"].filter_traces(own), "lineno"
    )
    growth = sum(stat.size_diff for stat in changes)
    top = "; ".join(str(stat) for stat in changes[:3])
    traced = CYCLES - TRACED_FROM
    assert growth < 1024 * 1024, f"memory grew by {growth / 1e6:.1f} MB in {traced} cycles: {top}"
    print(
        f"soak: {CYCLES} cycles in {elapsed:.1f} s, {sum(released.values())} releases,"
        f" {flaky.written} points written, memory growth {growth / 1e3:.0f} kB,"
        f" log alerts {dict(alerts)}"
    )


def _key(point: Point) -> int:
    return hash((point.measurement, tuple(sorted(point.tags.items())), point.time))
