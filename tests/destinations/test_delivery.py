"""Delivery through the outbox: fan-out, isolation, order, durability and bounds."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import pytest
from loguru import logger

from agent.delivery import Delivery
from agent.models import DestinationError, Point
from agent.outbox import Outbox, OutboxError
from agent.statedir import StateDirError

from .conftest import Recording, down, monitor_point, release_point


@pytest.fixture
def log_lines() -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    sink = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"])))
    yield lines
    logger.remove(sink)


@pytest.fixture
def outbox_path(tmp_path):
    return tmp_path / "outbox.sqlite"


def test_points_go_to_the_destinations_enabled_for_their_feature(outbox_path):
    monitor_only = Recording("m", ["license_monitor"])
    release_only = Recording("r", ["license_release"])
    delivery = Delivery([monitor_only, release_only], Outbox(outbox_path))
    points = [monitor_point(1), release_point(1), monitor_point(2, "analyzer")]
    report = delivery.deliver(points)
    assert monitor_only.written == [points[0], points[2]]
    assert release_only.written == [points[1]]
    assert [(d.name, d.written, d.failed, d.pending) for d in report.destinations] == [
        ("m", 2, 0, 0),
        ("r", 1, 0, 0),
    ]
    assert report.ok and delivery.outbox.count() == 0


def test_a_failing_destination_never_stops_the_others(outbox_path, log_lines):
    def bug(points: Sequence[Point]) -> None:
        raise ZeroDivisionError("plugin bug")

    failing, buggy, good = (
        Recording("failing", fail=down),
        Recording("buggy", fail=bug),
        Recording("good"),
    )
    delivery = Delivery([failing, buggy, good], Outbox(outbox_path))
    report = delivery.deliver([monitor_point(1), monitor_point(2)])
    assert len(good.written) == 2
    by_name = {d.name: d for d in report.destinations}
    assert (by_name["failing"].failed, by_name["failing"].pending) == (2, 2)
    assert by_name["failing"].error == "server down"
    assert "ZeroDivisionError" in by_name["buggy"].error and by_name["buggy"].pending == 2
    assert not report.ok
    errors = [m for level, m in log_lines if level == "ERROR"]
    assert len(errors) == 2  # one line per failing destination and delivery
    assert errors[0].startswith("destination failing failed: server down")
    assert errors[1].startswith("destination buggy failed: unexpected ZeroDivisionError")


def test_pending_points_arrive_in_order_without_duplicates(outbox_path):
    dest = Recording("influx", fail=down)
    delivery = Delivery([dest], Outbox(outbox_path))
    produced = []
    for run in range(3):
        points = [monitor_point(run), monitor_point(run, "analyzer")]
        produced += points
        assert delivery.deliver(points).destinations[0].pending == len(produced)
    dest.fail = None  # back
    produced.append(monitor_point(3))
    report = delivery.deliver([produced[-1]])
    assert dest.written == produced
    assert (report.destinations[0].written, report.destinations[0].pending) == (7, 0)
    assert delivery.flush().destinations[0].written == 0  # nothing left, nothing re-sent


def test_pending_points_survive_a_restart(outbox_path):
    first = Delivery([Recording("influx", fail=down)], Outbox(outbox_path))
    points = [monitor_point(1), release_point(1)]
    first.deliver(points)
    first.close()  # the agent stops while the destination is down

    back = Recording("influx")
    second = Delivery([back], Outbox(outbox_path))
    assert second.pending() == {"influx": 2}
    assert second.flush().destinations[0].written == 2
    assert back.written == points  # same points, same microsecond timestamps
    assert back.written[0].time.microsecond == 250001


def test_rows_are_stored_before_any_destination_is_tried(outbox_path):
    seen: list[int] = []
    outbox = Outbox(outbox_path)

    def look(points: Sequence[Point]) -> None:
        # What a crash at this moment would leave behind: every row, durably.
        with sqlite3.connect(outbox_path) as other:
            seen.append(other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    Delivery([Recording("a", fail=look), Recording("b")], outbox).deliver([monitor_point(1)])
    assert seen == [2]


def test_a_partial_failure_keeps_only_the_failed_points_and_later_ones_wait(outbox_path):
    points = [monitor_point(n) for n in range(5)]

    def second_fails(batch: Sequence[Point]) -> None:
        raise DestinationError("one bad", failed=[p for p in batch if p == points[1]])

    dest = Recording("influx", fail=second_fails)
    delivery = Delivery([dest], Outbox(outbox_path), batch_size=3)
    report = delivery.deliver(points).destinations[0]
    # Batch 1 (points 0-2): 0 and 2 written, 1 kept; batch 2 is not tried, to keep the order.
    assert (report.written, report.failed, report.pending) == (2, 1, 3)
    assert dest.calls == 1
    dest.fail = None
    delivery.flush()
    assert [p.fields["allocated"] for p in dest.written] == [1.0, 3.0, 4.0]


def test_rejected_points_are_dropped_and_do_not_block_the_queue(outbox_path, log_lines):
    points = [monitor_point(n) for n in range(4)]

    def reject_first(batch: Sequence[Point]) -> None:
        if points[0] in batch:
            raise DestinationError("field type conflict", rejected=[points[0]])

    dest = Recording("influx", fail=reject_first)
    report = Delivery([dest], Outbox(outbox_path), batch_size=2).deliver(points).destinations[0]
    assert (report.written, report.rejected, report.failed, report.pending) == (3, 1, 0, 0)
    assert dest.calls == 2  # the second batch went on
    assert any("refused 1 points for good" in m for level, m in log_lines if level == "ERROR")


def test_no_list_of_failed_points_means_nothing_was_written(outbox_path):
    dest = Recording("influx", fail=down)
    report = Delivery([dest], Outbox(outbox_path)).deliver([monitor_point(1)]).destinations[0]
    assert (report.written, report.failed, report.pending) == (0, 1, 1)


def test_full_outbox_drops_oldest_monitor_points_never_release_events(outbox_path, log_lines):
    delivery = Delivery([Recording("influx", fail=down)], Outbox(outbox_path, max_rows=5))
    delivery.deliver([release_point(1), monitor_point(1), monitor_point(2)])
    report = delivery.deliver([monitor_point(3), monitor_point(4), release_point(2)])
    assert report.dropped == 1
    dest = Recording("influx")
    Delivery([dest], delivery.outbox).flush()
    assert [(p.measurement[-7:], p.time) for p in dest.written] == [
        (p.measurement[-7:], p.time)
        for p in [
            release_point(1),
            monitor_point(2),
            monitor_point(3),
            monitor_point(4),
            release_point(2),
        ]
    ]
    warnings = [m for level, m in log_lines if level == "WARNING"]
    assert any("the outbox is full (Butler.licenseAgent.outbox.maxRows = 5)" in m for m in warnings)


def test_release_events_are_kept_beyond_the_limit(outbox_path, log_lines):
    delivery = Delivery([Recording("influx", fail=down)], Outbox(outbox_path, max_rows=3))
    delivery.deliver([monitor_point(1)])
    report = delivery.deliver([release_point(n) for n in range(5)])
    assert report.dropped == 1  # the monitor point
    assert delivery.outbox.count() == 5  # every release event
    assert any("holds 2 release events beyond maxRows = 3" in m for _, m in log_lines)


def test_rows_of_a_destination_no_longer_enabled_are_kept_with_a_warning(outbox_path, log_lines):
    Delivery([Recording("old", fail=down)], Outbox(outbox_path)).deliver([monitor_point(1)])
    delivery = Delivery([Recording("new")], Outbox(outbox_path))
    assert delivery.pending() == {"old": 1}
    assert any("destination old, which is not enabled" in m for _, m in log_lines)


def test_an_outbox_from_a_newer_agent_is_refused(outbox_path):
    with sqlite3.connect(outbox_path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(OutboxError, match="newer version of the agent"):
        Outbox(outbox_path)


def test_an_outbox_that_cannot_be_created_names_the_setting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # A configuration problem (exit 2), naming the setting, the folder and the cause.
    with pytest.raises(StateDirError, match="Butler.licenseAgent.stateDir: the folder .* regular"):
        Outbox(blocker / "outbox.sqlite")


def test_from_config_uses_state_dir_and_max_rows(make_config, tmp_path):
    from agent.plugins import build_plugin_host

    config = make_config(
        {
            "licenseAgent": {
                "stateDir": str(tmp_path / "var"),
                "outbox": {"maxRows": 250},
                "destinations": {"jsonl": {"enable": True, "path": "out.jsonl"}},
            }
        }
    )
    delivery = Delivery.from_config(config, build_plugin_host(config))
    assert delivery.outbox.path == tmp_path / "var" / "outbox.sqlite"
    assert delivery.outbox.max_rows == 250
    assert [d.name for d in delivery.destinations] == ["jsonl"]
    delivery.close()


def test_flush_outbox_delivers_what_a_previous_process_left(make_config, tmp_path):
    from agent.delivery import flush_outbox
    from agent.plugins import build_plugin_host

    config = make_config(
        {"licenseAgent": {"destinations": {"jsonl": {"enable": True, "path": "out.jsonl"}}}}
    )
    host = build_plugin_host(config)
    Outbox(config.state_dir / "outbox.sqlite").add(
        [("jsonl", monitor_point(1)), ("jsonl", monitor_point(2))]
    )
    report = flush_outbox(config, host)
    assert report is not None and report.destinations[0].written == 2
    assert len((tmp_path / "out.jsonl").read_text("utf-8").splitlines()) == 2
    assert flush_outbox(config, host).destinations == []  # nothing pending: no destination touched
