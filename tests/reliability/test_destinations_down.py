"""Destinations down: points and release events wait in the durable outbox and arrive later, in
order, each once; a full outbox warns and never drops a release event; stopping the agent while
a destination is down loses nothing (the next process delivers).
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.delivery import Delivery
from agent.jobs import run_monitor_job
from agent.outbox import Outbox
from agent.plugins import build_plugin_host
from agent.qrs import QrsClient
from agent.release import run_release
from tests.fixtures_servers import InfluxDB1, InfluxDBClient1, free_port

from .helpers import (
    NOW,
    FlakyInflux,
    build_site,
    captured_logs,
    config_document,
    jsonl_events,
    load,
    real_now,
    release_section,
    run_agent,
    write_config,
)

INFLUX_FEATURES = {"destination": {"influxDb": {"enable": True}}}


def influx_section(port: int, db: str = "senseops") -> dict[str, Any]:
    return {
        "enable": True,
        "version": 1,
        "hostIP": "127.0.0.1",
        "hostPort": port,
        "dbName": db,
        "timeout": 2,
    }


def _need_influxd() -> None:
    if InfluxDB1.available():
        return
    if os.environ.get("CI"):
        pytest.fail("influxd is not installed, and CI is set: .ci/run must provide it")
    pytest.skip("influxd is not installed")


@pytest.mark.influxdb
def test_nothing_is_lost_when_the_agent_stops_while_influxdb_is_down(
    simulator, certs, workdir, tmp_path
) -> None:
    """Three processes: a release and a monitor run while InfluxDB is down, then InfluxDB comes
    up and the next process delivers everything the others left in the outbox."""
    _need_influxd()
    now = real_now()  # the agent runs in subprocesses and measures from the real clock
    site = build_site(6, now=now)
    sim = simulator(site, now=now)
    port = free_port()  # nothing listens here yet: InfluxDB is down
    db = f"sla_{uuid.uuid4().hex[:10]}"
    document = config_document(
        sim.port,
        certs,
        workdir,
        influx=influx_section(port, db),
        monitor={"enable": True, **INFLUX_FEATURES},
        release=release_section(**INFLUX_FEATURES),
        sqlite=False,
    )
    config = write_config(workdir / "config.yaml", document)

    released = run_agent("release", "--once", "-c", str(config), cwd=workdir)
    assert released.returncode == 0, released.stderr
    first = run_agent("monitor", "--once", "-c", str(config), cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "cannot connect to InfluxDB" in first.stdout + first.stderr
    outbox = Outbox(workdir / "outbox.sqlite")
    # 6 release events + one point per license type of the monitor run, all for influxdb.
    pending = outbox.counts()
    outbox.close()
    assert pending["influxdb"] >= 6 + 2
    # The JSON lines destination was not held up by the failing one.
    assert len(jsonl_events(workdir / "events.jsonl")) == 6

    server = InfluxDB1(tmp_path / "influxdb", port).start()
    try:
        second = run_agent("monitor", "--once", "-c", str(config), cwd=workdir)
        assert second.returncode == 0, second.stderr
        client = InfluxDBClient1(server.url)
        events = client.rows("SELECT * FROM qlik_sense_license_release", db)
        points = client.rows("SELECT * FROM qlik_sense_license GROUP BY license_type", db)
    finally:
        server.stop()
    assert sorted(e["allocation_id"] for e in events) == sorted(site.candidates)
    times = {p["time"] for p in points}
    assert len(times) == 2  # both monitor runs, the one made while down included
    outbox = Outbox(workdir / "outbox.sqlite")
    assert outbox.count() == 0
    outbox.close()


def test_flaky_destination_gets_every_point_once_in_order_across_restarts(
    simulator, certs, workdir
) -> None:
    """Forty monitor runs and two release runs while InfluxDB fails at random and the agent is
    restarted at random; in the end the server holds every line exactly once, in the order the
    runs produced them (and the JSON lines file, never down, too)."""
    site = build_site(8)
    sim = simulator(site)
    flaky = FlakyInflux()
    document = config_document(
        sim.port,
        certs,
        workdir,
        influx=influx_section(flaky.port),
        monitor={"enable": True, **INFLUX_FEATURES},
        release=release_section(**INFLUX_FEATURES),
        sqlite=False,
    )
    config = load(write_config(workdir / "config.yaml", document))
    site_config = config.sites()[0]
    host = build_plugin_host(config)
    rng = random.Random(7)
    produced: list[Any] = []
    delivery = Delivery.from_config(config, host)
    try:
        for run in range(42):
            flaky.up = rng.random() < 0.4 and run < 40  # down at the end, too
            if rng.random() < 0.25:  # the agent restarts: a new delivery on the same files
                delivery.close()
                delivery = Delivery.from_config(config, host)
            if run in (10, 30):
                with QrsClient(site_config) as qrs:
                    result = run_release(config, site_config, host, qrs, delivery=delivery, now=NOW)
                produced += result.events
            else:
                (result,) = run_monitor_job(config, host, delivery)
                produced += result.points
        assert flaky.refused > 0 and delivery.outbox.count() > 0  # it really was down
        flaky.up = True
        delivery.close()
        delivery = Delivery.from_config(config, host)
        delivery.flush()
        assert delivery.outbox.count() == 0
    finally:
        delivery.close()
        flaky.close()

    from plugins.destinations.influxdb import line_protocol

    expected = [line_protocol(p) for p in produced]
    assert len(produced) >= 40 * 3 + 8 and len(set(expected)) == len(expected)
    assert flaky.lines == expected
    jsonl = (workdir / "events.jsonl").read_text("utf-8").splitlines()
    assert len(jsonl) == len(produced)


def test_a_full_outbox_warns_drops_old_monitor_points_and_keeps_every_release_event(
    simulator, certs, workdir
) -> None:
    site = build_site(9)
    sim = simulator(site)
    flaky = FlakyInflux()
    flaky.up = False
    document = config_document(
        sim.port,
        certs,
        workdir,
        influx=influx_section(flaky.port),
        monitor={"enable": True, **INFLUX_FEATURES},
        release=release_section(**INFLUX_FEATURES),
        agent={"outbox": {"maxRows": 100}},
        sqlite=False,
        jsonl=False,
    )
    config = load(write_config(workdir / "config.yaml", document))
    site_config = config.sites()[0]
    host = build_plugin_host(config)
    delivery = Delivery.from_config(config, host)
    try:
        with captured_logs("WARNING") as lines:
            for _ in range(30):  # about 6 points per run: the limit is passed at run 17
                run_monitor_job(config, host, delivery)
            with QrsClient(site_config) as qrs:
                result = run_release(config, site_config, host, qrs, delivery=delivery, now=NOW)
            run_monitor_job(config, host, delivery)
        events = len(result.events)
        assert events == 9
        full = [line.message for line in lines if "outbox is full" in line.message]
        assert full and "maxRows = 100" in full[0] and "dropped" in full[0]
        assert delivery.outbox.count() == 100  # bounded
        flaky.up = True
        delivery.flush()
    finally:
        delivery.close()
        flaky.close()
    release_lines = [x for x in flaky.lines if x.startswith("qlik_sense_license_release")]
    assert len(release_lines) == events
    assert len(flaky.lines) == 100
    # The oldest monitor points went first: what arrived is the newest, in order.
    monitor_times = [
        int(x.rsplit(" ", 1)[1]) for x in flaky.lines if x.startswith("qlik_sense_license,")
    ]
    assert monitor_times == sorted(monitor_times)


def test_an_outbox_that_cannot_be_opened_stops_the_release_job_before_any_delete(
    simulator, certs, workdir: Path
) -> None:
    """A release whose event could not be kept must not happen: without an outbox the release
    job does not run at all, and says why in one line."""
    site = build_site(3)
    sim = simulator(site)
    blocker = workdir / "not-a-folder"
    blocker.write_text("a file where the state folder should be", "utf-8")
    document = config_document(sim.port, certs, blocker / "state")
    config = load(write_config(workdir / "config.yaml", document))
    from agent.jobs import run_release_job

    with captured_logs("WARNING") as lines:
        results = run_release_job(config, build_plugin_host(config))
    assert list(results) == [] and results.error and "outbox" in results.error
    assert len(lines) == 1 and "outbox" in lines[0].message, [x.message for x in lines]
    assert sim.get_stats()["total"] == 0
