"""The clock check: a live release refuses to run when this machine's clock and QRS's (its
``Date`` header) differ by more than ``configQRS.maxClockSkewMinutes``, or when QRS's clock
cannot be read; a dry run warns. Through ``license-agent release --once`` against the simulator
over mutual TLS, whose ``Date`` header follows its own clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.clockskew import ServerClock, check_clock, describe, read_date_header
from agent.simulator.certs import CertPaths
from tests.release.helpers import (
    ReleaseHarness,
    allocation,
    config_text,
    release_block,
    state,
    user,
)

ALICE, BOB = user("alice"), user("bob")


def real_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def harness(qrs_certs: CertPaths, tmp_path: Path) -> Iterator[ReleaseHarness]:
    h = ReleaseHarness(qrs_certs, tmp_path)
    # Two allocations unused for 400 days, measured from the real clock.
    h.start(
        state(
            [ALICE, BOB],
            professional=[
                allocation(ALICE, _days_ago(400)),
                allocation(BOB, _days_ago(400)),
            ],
        )
    )
    yield h
    h.stop()


def _days_ago(days: int) -> str:
    return (real_now() - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _config(harness: ReleaseHarness, *, dry_run: bool = False, qrs: str = "") -> Path:
    text = config_text(
        release_block("", analyzer=False, dry_run=dry_run), **harness.config_options()
    )
    if qrs:
        text = text.replace("    port:", f"    {qrs}\n    port:", 1)
    path = harness.tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _release(harness: ReleaseHarness, config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    report = harness.tmp_path / "report.json"
    code = main(["release", "--once", "-c", str(config), "--report", str(report), *extra])
    return code, json.loads(report.read_text(encoding="utf-8")), str(report)


def _skew_sim(harness: ReleaseHarness, delta: timedelta) -> None:
    """QRS's clock = this machine's + ``delta`` (frozen: a test takes seconds)."""
    assert harness.sim is not None
    harness.sim.set_now(real_now() + delta)


# --------------------------------------------------------------------------- live runs refuse


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(hours=-3), "3 h 0 min ahead of QRS's"),  # this machine is ahead
        # this machine is behind (30 s of leeway for the time the test takes)
        (timedelta(days=2, seconds=30), "2 days 0 h 0 min behind QRS's"),
    ],
)
def test_a_live_release_refuses_when_the_clocks_differ(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str], delta: timedelta, words: str
) -> None:
    _skew_sim(harness, delta)
    code, report, _ = _release(harness, _config(harness))
    captured = capsys.readouterr()
    assert code == 1
    assert harness.requests("DELETE") == 0
    assert len(harness.remaining()) == 2
    (error,) = report["run"]["errors"]
    assert f"this machine's clock is {words}" in error
    assert "configQRS.maxClockSkewMinutes is 60" in error
    assert error.endswith("Nothing was released")
    assert report["run"]["aborted"] == error
    kept = [d for d in report["decisions"] if d["decision"] == "kept"]
    assert len(kept) == 2
    assert all(d["reasons"][0]["rule"] == "clock" for d in kept)
    assert words in captured.out + captured.err


def test_within_the_bound_the_release_runs(harness: ReleaseHarness) -> None:
    _skew_sim(harness, timedelta(minutes=-50))  # this machine 50 minutes ahead: allowed
    code, report, _ = _release(harness, _config(harness))
    assert code == 0, report["run"]
    assert report["run"]["errors"] == []
    assert harness.requests("DELETE") == 2
    assert harness.remaining() == {}


def test_the_bound_is_configurable(harness: ReleaseHarness) -> None:
    _skew_sim(harness, timedelta(minutes=-50))
    config = _config(harness, qrs="maxClockSkewMinutes: 10")
    code, report, _ = _release(harness, config)
    assert code == 1
    assert harness.requests("DELETE") == 0
    (error,) = report["run"]["errors"]
    assert "this machine's clock is 50 min" in error and "ahead of QRS's" in error
    assert "configQRS.maxClockSkewMinutes is 10" in error

    # A wider bound lets the same skew through.
    code, report, _ = _release(harness, _config(harness, qrs="maxClockSkewMinutes: 120"))
    assert code == 0 and harness.requests("DELETE") == 2


@pytest.mark.parametrize("value", ["0", "-5", "abc", "20000"])
def test_a_bad_bound_is_a_config_error(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code = main(
        ["release", "--once", "-c", str(_config(harness, qrs=f"maxClockSkewMinutes: {value}"))]
    )
    assert code == 2
    assert "Butler.configQRS.maxClockSkewMinutes" in capsys.readouterr().err
    assert harness.requests("") == 0


@pytest.mark.parametrize(
    ("mode", "words"),
    [("omit", "QRS's answer carried no Date header"), ("garbled", "is not a date")],
)
def test_without_a_readable_date_header_a_live_release_refuses(
    harness: ReleaseHarness, mode: str, words: str
) -> None:
    # Safe side: an unknown server clock is uncertain data, so nothing is released.
    assert harness.sim is not None
    harness.sim.set_now(None)
    harness.sim.set_date_header(mode)
    code, report, _ = _release(harness, _config(harness))
    assert code == 1
    assert harness.requests("DELETE") == 0 and len(harness.remaining()) == 2
    (error,) = report["run"]["errors"]
    assert words in error and "cannot be checked" in error


# --------------------------------------------------------------------------- dry runs warn


@pytest.mark.parametrize("mode", ["clock", "omit"])
def test_a_dry_run_warns_and_still_decides(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    _skew_sim(harness, timedelta(days=-3))
    assert harness.sim is not None
    harness.sim.set_date_header(mode)
    code, report, _ = _release(harness, _config(harness), "--dry-run")
    captured = capsys.readouterr()
    assert code == 0
    assert report["run"]["errors"] == [] and report["run"]["aborted"] is None
    assert [d["decision"] for d in report["decisions"]] == ["would_release"] * 2
    warning = "3 days 0 h 0 min ahead of QRS's" if mode == "clock" else "no Date header"
    assert warning in captured.err


def test_a_dry_run_with_now_compares_that_moment(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    # --now moves the moment the run measures from; QRS's clock is compared with it.
    _skew_sim(harness, timedelta(days=-10))
    moment = (real_now() - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, report, _ = _release(harness, _config(harness), "--dry-run", "--now", moment)
    assert code == 0
    assert "clock" not in capsys.readouterr().err


# --------------------------------------------------------------------------- the comparison


LOCAL = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "header",
    [
        "Mon, 01 Jun 2026 12:00:00 GMT",  # IMF-fixdate (what HTTP/1.1 servers send)
        "Monday, 01-Jun-26 12:00:00 GMT",  # RFC 850
        "Mon Jun  1 12:00:00 2026",  # asctime
    ],
)
def test_every_http_date_form_is_read(header: str) -> None:
    assert read_date_header(header, LOCAL).server == LOCAL


@pytest.mark.parametrize("header", [None, "", "soon", "Mon, 99 Foo 2026 25:61:00 GMT"])
def test_a_missing_or_garbled_header_is_no_reading(header: str | None) -> None:
    reading = read_date_header(header, LOCAL)
    assert reading.server is None
    check = check_clock(reading, timedelta(hours=1))
    assert check.problem is not None and "cannot be checked" in check.problem


def test_the_bound_is_inclusive_and_both_directions_count() -> None:
    hour = timedelta(hours=1)
    for delta, ok in ((hour, True), (-hour, True), (hour + timedelta(seconds=1), False)):
        reading = ServerClock("x", LOCAL - delta, LOCAL)
        assert (check_clock(reading, hour).problem is None) is ok


def test_hostile_header_text_is_cut_and_escaped() -> None:
    reading = read_date_header("\x1b[31mred\nforged line" + "x" * 500, LOCAL)
    problem = check_clock(reading, timedelta(hours=1)).problem
    assert problem is not None
    assert "\x1b" not in problem and "\n" not in problem and "x" * 100 not in problem


def test_describe() -> None:
    assert describe(timedelta(days=1, hours=2, minutes=3)) == "1 day 2 h 3 min"
    assert describe(-timedelta(minutes=12, seconds=5)) == "12 min 5 s"
    assert describe(timedelta(seconds=40)) == "40 s"
