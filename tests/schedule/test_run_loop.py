"""The run loop on a fake clock: runs at start, fires at the UTC fire times, never overlaps a
job with itself (the late run is skipped with a warning), stops gracefully, and several loops
live side by side. No test sleeps for real."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from loguru import logger

from agent.schedule import RunLoop, parse_frequency

UTC = timezone.utc
START = datetime(2026, 3, 5, 13, 7, 22, tzinfo=UTC)


class FakeClock:
    """``now`` and ``sleep`` for a RunLoop: sleeping advances time instantly.

    Before time moves on, the runs in progress are allowed to finish (unless a test holds one
    on purpose), so what a job records as "now" is the moment it was started. ``on_sleep``
    sees the clock at the moment whose due runs were just started, and may stop the loop.
    """

    def __init__(self, start: datetime = START) -> None:
        self.moment = start
        self.loop: RunLoop | None = None
        #: Jobs whose runs must end before time moves on (``None``: all of them).
        self.settle: list[str] | None = None
        self.wait_for_jobs = True
        self.on_sleep: Callable[[FakeClock], None] | None = None
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        """Called by the loop after it started the runs due at ``moment``."""
        assert self.loop is not None
        if self.wait_for_jobs:
            assert self.loop.wait_for_jobs(timeout=5, names=self.settle), "a run did not end"
        if self.on_sleep:
            self.on_sleep(self)
        if not self.loop.stopping:
            self.slept.append(seconds)
            self.moment += timedelta(seconds=seconds)

    def stop_at(self, moment: datetime) -> None:
        def check(clock: FakeClock) -> None:
            if clock.moment >= moment:
                assert clock.loop is not None
                clock.loop.stop()

        self.on_sleep = check


def make_loop(clock: FakeClock, **kwargs: object) -> RunLoop:
    loop = RunLoop(now=clock.now, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]
    clock.loop = loop
    return loop


def recorder(clock: FakeClock, name: str, log: list[tuple[str, str]]) -> Callable[[], None]:
    def job() -> None:
        log.append((name, clock.now().strftime("%d %H:%M:%S")))

    return job


@pytest.fixture
def warnings() -> list[str]:
    found: list[str] = []
    handler = logger.add(lambda m: found.append(m.record["message"]), level="WARNING")
    yield found
    logger.remove(handler)


def test_runs_at_start_then_at_the_aligned_utc_times() -> None:
    clock = FakeClock()
    loop = make_loop(clock)
    log: list[tuple[str, str]] = []
    loop.add_job("monitor", parse_frequency("every 6 hours"), recorder(clock, "monitor", log))
    loop.add_job("release", parse_frequency("every 24 hours"), recorder(clock, "release", log))
    clock.stop_at(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))

    loop.run()

    assert sorted(log) == sorted(
        [
            ("monitor", "05 13:07:22"),  # at start
            ("release", "05 13:07:22"),  # at start
            ("monitor", "05 18:00:00"),
            ("monitor", "06 00:00:00"),
            ("release", "06 00:00:00"),
            ("monitor", "06 06:00:00"),
            ("monitor", "06 12:00:00"),
        ]
    )
    assert loop.started == {"monitor": 5, "release": 2}
    assert loop.skipped == {"monitor": 0, "release": 0}


def test_run_at_start_can_be_switched_off() -> None:
    clock = FakeClock()
    loop = make_loop(clock, run_at_start=False)
    log: list[tuple[str, str]] = []
    loop.add_job("monitor", parse_frequency("every 6 hours"), recorder(clock, "monitor", log))
    clock.stop_at(datetime(2026, 3, 5, 18, 0, tzinfo=UTC))

    loop.run()

    assert log == [("monitor", "05 18:00:00")]


def test_waits_are_cut_into_max_sleep_slices() -> None:
    clock = FakeClock()
    loop = make_loop(clock, max_sleep=600, run_at_start=False)
    loop.add_job("monitor", parse_frequency("every 6 hours"), lambda: None)
    clock.stop_at(datetime(2026, 3, 5, 18, 0, tzinfo=UTC))

    loop.run()

    # 13:07:22 -> 18:00:00 is 17558 s: 29 slices of 600 s and one of 158 s.
    assert clock.slept == [600.0] * 29 + [158.0]


def test_a_run_still_going_when_due_again_is_skipped_with_a_warning(warnings: list[str]) -> None:
    clock = FakeClock(datetime(2026, 3, 5, 11, 59, 0, tzinfo=UTC))
    clock.wait_for_jobs = False  # the first run is held on purpose
    loop = make_loop(clock)
    release_held_run = threading.Event()
    calls: list[str] = []
    first_started = threading.Event()

    def slow_release() -> None:
        calls.append(clock.now().strftime("%H:%M"))
        if len(calls) == 1:
            first_started.set()
            assert release_held_run.wait(5)

    loop.add_job("release", parse_frequency("every 5 mins"), slow_release)

    def on_sleep(c: FakeClock) -> None:
        assert first_started.wait(5)
        if c.moment == datetime(2026, 3, 5, 12, 10, tzinfo=UTC):
            release_held_run.set()  # the held run ends after the 12:00, 12:05, 12:10 fires
            assert loop.wait_for_jobs(timeout=5)
        if c.moment >= datetime(2026, 3, 5, 12, 15, tzinfo=UTC):
            loop.stop()

    clock.on_sleep = on_sleep
    loop.run()

    # 11:59 at start (held); 12:00, 12:05 and 12:10 found it still going; 12:15 ran.
    assert calls == ["11:59", "12:15"]
    assert loop.skipped == {"release": 3}
    skipped = [w for w in warnings if "skipped" in w]
    assert len(skipped) == 3
    assert "release: run due at 2026-03-05 12:00:00 UTC skipped" in skipped[0]
    assert "the previous run (started 2026-03-05 11:59:00 UTC) is still going" in skipped[0]


def test_jobs_run_in_their_own_threads_so_one_does_not_block_another() -> None:
    clock = FakeClock(datetime(2026, 3, 5, 11, 59, 0, tzinfo=UTC))
    clock.settle = ["monitor"]  # the release run is stuck on purpose
    loop = make_loop(clock)
    hold = threading.Event()
    monitor_runs: list[str] = []

    loop.add_job("release", parse_frequency("every 24 hours"), lambda: hold.wait(5))
    loop.add_job(
        "monitor",
        parse_frequency("every 1 minute"),
        lambda: monitor_runs.append(clock.now().strftime("%H:%M")),
    )

    def on_sleep(c: FakeClock) -> None:
        assert loop.running() in (["release"], [])
        if c.moment >= datetime(2026, 3, 5, 12, 3, tzinfo=UTC):
            assert loop.running() == ["release"]  # still stuck, yet the monitor ran
            loop.stop()
            hold.set()

    clock.on_sleep = on_sleep
    loop.run()

    assert monitor_runs == ["11:59", "12:00", "12:01", "12:02", "12:03"]
    assert loop.started == {"release": 1, "monitor": 5}


def test_stop_waits_for_the_run_in_progress() -> None:
    clock = FakeClock()
    clock.wait_for_jobs = False
    loop = make_loop(clock)
    finished = threading.Event()
    started = threading.Event()
    proceed = threading.Event()

    def job() -> None:
        started.set()
        proceed.wait(5)
        finished.set()

    loop.add_job("release", parse_frequency("every 24 hours"), job)

    def on_sleep(c: FakeClock) -> None:
        assert started.wait(5)
        loop.stop()
        assert loop.running() == ["release"]
        proceed.set()

    clock.on_sleep = on_sleep
    loop.run()

    assert finished.is_set()  # run() returned only after the job finished
    assert loop.running() == []


def test_stop_before_run_runs_nothing() -> None:
    clock = FakeClock()
    loop = make_loop(clock)
    calls: list[int] = []
    loop.add_job("monitor", parse_frequency("every 6 hours"), lambda: calls.append(1))
    loop.stop()
    loop.run()
    assert calls == []


def test_a_failing_run_is_logged_and_the_loop_carries_on() -> None:
    clock = FakeClock(datetime(2026, 3, 5, 11, 0, 0, tzinfo=UTC))
    loop = make_loop(clock)
    errors: list[str] = []
    handler = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    calls: list[str] = []

    def flaky() -> None:
        calls.append(clock.now().strftime("%H:%M"))
        if len(calls) == 1:
            raise ConnectionError("QRS unreachable")

    loop.add_job("monitor", parse_frequency("every 30 minutes"), flaky)
    clock.stop_at(datetime(2026, 3, 5, 12, 0, tzinfo=UTC))
    try:
        loop.run()
    finally:
        logger.remove(handler)

    assert calls == ["11:00", "11:30", "12:00"]
    assert errors == ["monitor: run failed: ConnectionError: QRS unreachable"]


def test_two_loops_coexist_without_sharing_jobs_or_clocks() -> None:
    first, second = FakeClock(), FakeClock(datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC))
    loop_a, loop_b = make_loop(first, name="site-a"), make_loop(second, name="site-b")
    log_a: list[tuple[str, str]] = []
    log_b: list[tuple[str, str]] = []
    loop_a.add_job("monitor", parse_frequency("every 6 hours"), recorder(first, "a", log_a))
    loop_b.add_job("monitor", parse_frequency("every 1 minute"), recorder(second, "b", log_b))
    first.stop_at(datetime(2026, 3, 5, 18, 0, tzinfo=UTC))
    second.stop_at(datetime(2030, 1, 1, 0, 2, tzinfo=UTC))

    threads = [threading.Thread(target=loop.run) for loop in (loop_a, loop_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert log_a == [("a", "05 13:07:22"), ("a", "05 18:00:00")]
    assert log_b == [("b", "01 00:00:30"), ("b", "01 00:01:00"), ("b", "01 00:02:00")]
    assert list(loop_a.next_runs()) == ["monitor"]


def test_job_names_are_unique_and_a_loop_needs_jobs() -> None:
    loop = RunLoop(now=lambda: START, sleep=lambda s: None)
    with pytest.raises(ValueError, match="no jobs"):
        loop.run()
    loop.add_job("monitor", parse_frequency("every 6 hours"), lambda: None)
    with pytest.raises(ValueError, match="already registered"):
        loop.add_job("monitor", parse_frequency("every 1 hour"), lambda: None)
    assert loop.next_runs() == {"monitor": datetime(2026, 3, 5, 18, 0, tzinfo=UTC)}
